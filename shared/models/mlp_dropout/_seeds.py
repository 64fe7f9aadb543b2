"""`--native`: do the four frameworks' own key plumbings train to the same distribution?

Each framework trains from the same init on the same batches with `--seeds` different
integer seeds for its own dropout keys; the final test accuracies of every pair of
frameworks are compared with a two-sided Mann-Whitney U test. The frameworks agree when no
pair's p-value falls below 0.05 / (number of pairs) (Bonferroni).
"""

from __future__ import annotations

import io
import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from shared.core import (
    AnalysisContext,
    AnalysisResult,
    Implementation,
    TrainStep,
    step_keys,
    unstack,
    write_atomic,
)

from ._config import MlpDropoutConfig, canonical_init

ALPHA = 0.05
TEST = "two-sided Mann-Whitney U (scipy.stats.mannwhitneyu)"


def final_accuracies(
    context: AnalysisContext, impl: Implementation, config: MlpDropoutConfig, seeds: list[int]
) -> np.ndarray:
    """Test accuracy after the last step, one per seed of the framework's own key plumbing.

    All seeds run in one program: the harness step inside `lax.scan`, `vmap`ped over the
    seeds' initial random states and per-step keys.
    """
    params = {k: jnp.asarray(v) for k, v in canonical_init(config, context.settings.seed).items()}
    native_params, _ = impl.from_canonical(params, {})
    states = []
    for seed in seeds:
        one = context.rebuild(impl.name, replace(config, seed=seed))
        assert one is not None
        states.append(one.from_canonical(params, {})[1])
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states) if states[0] is not None else None
    steps = len(unstack(context.batches))
    keys = jnp.stack([step_keys(seed, steps) for seed in seeds])
    tx = context.optimizer.make()
    step = TrainStep(impl, context.spec.loss, tx, context.spec.inputs)
    held_out = context.held_out
    x_test = context.spec.model_inputs(held_out)
    labels = jnp.asarray(held_out.labels)
    batches = jax.tree.map(jnp.asarray, context.batches)

    def accuracy(state: Any, keys: jax.Array) -> jax.Array:
        def body(carry: Any, xs: Any) -> Any:
            params, state, opt_state = carry
            batch, key = xs
            params, state, opt_state, _ = step(params, state, opt_state, batch, key)
            return (params, state, opt_state), None

        carry = (native_params, state, tx.init(native_params))
        (params, state, _), _ = jax.lax.scan(body, carry, (batches, keys))
        logits, _ = impl.apply(params, state, x_test, train=False)
        return jnp.mean(jnp.argmax(logits, axis=-1) == labels)

    return np.asarray(jax.jit(jax.vmap(accuracy))(stacked, keys))


def seed_distributions(context: AnalysisContext) -> AnalysisResult | None:
    """The statistical check of `--native` (see the module's docstring)."""
    if context.settings.mode != "native":
        return None
    from scipy.stats import mannwhitneyu

    n = int(context.settings["seeds"])
    if n < 2:
        raise ValueError(f"mlp-dropout: --seeds must be >= 2, got {n}")
    seeds = list(range(n))
    accuracies: dict[str, np.ndarray] = {}
    for impl in context.impls:
        if context.progress:
            context.progress(f"{impl.name}: {n} seeds of its own keys")
        accuracies[impl.name] = final_accuracies(context, impl, context.config, seeds)
    pairs = list(itertools.combinations(accuracies, 2))
    threshold = ALPHA / max(len(pairs), 1)
    rows, payload = [], []
    for a, b in pairs:
        result = mannwhitneyu(accuracies[a], accuracies[b], alternative="two-sided")
        p = float(result.pvalue)
        same = p >= threshold
        payload.append({"a": a, "b": b, "test": TEST, "u": float(result.statistic), "p": p})
        rows.append(
            (a, b, f"{float(result.statistic):.1f}", f"{p:.3g}", "same" if same else "DIFFER")
        )
    ok = all(row[-1] == "same" for row in rows)
    summary = {
        name: {"mean": float(v.mean()), "std": float(v.std()), "accuracies": v.tolist()}
        for name, v in accuracies.items()
    }
    return AnalysisResult(
        key="seeds",
        payload={
            "test": TEST,
            "alpha": ALPHA,
            "threshold": threshold,
            "seeds": seeds,
            "pairs": payload,
            "accuracies": summary,
        },
        title=f"final test accuracy over {n} seeds of each framework's own keys: {TEST}",
        head=("framework", "against", "U", "p-value", f"p >= {threshold:.3g}"),
        rows=rows,
        notes=[
            f"{name}: accuracy {s['mean']:.4f} +- {s['std']:.4f} over {n} seeds"
            for name, s in summary.items()
        ]
        + [
            "the frameworks' own key plumbings train to the same distribution"
            if ok
            else "the distributions differ: a framework's randomness is not the others'"
        ],
        ok=ok,
        plot=lambda path: _plot(accuracies, path),
    )


def _plot(accuracies: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    names = list(accuracies)
    ax.boxplot([accuracies[n] for n in names], showmeans=True)
    for i, name in enumerate(names, start=1):
        values = accuracies[name]
        jitter = np.linspace(-0.12, 0.12, len(values))
        ax.plot(np.full(len(values), i) + jitter, values, "o", alpha=0.5, markersize=4)
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.set(ylabel="test accuracy after the last step", title="one point per seed")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
