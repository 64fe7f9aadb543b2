"""`--defaults`: how far each framework, keeping its own BatchNorm defaults, drifts from the
aligned reference, and which default is responsible (rerun with one default at a time)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from shared.core import AnalysisContext, AnalysisResult, Trajectory

from ._config import MlpBnConfig
from ._tolerances import EVAL_ATOL, PARAMS


@dataclass(frozen=True)
class Drift:
    """How far one framework, keeping some of its BatchNorm defaults, drifts from the reference.

    **Fields:**

    - `impl`: the framework.
    - `knob`: the default kept (from `KNOBS`), or `"all"` for the `--defaults` run itself.
    - `default`: what that default is, in the framework's words.
    - `loss_max_abs`, `state_max_abs`: largest |difference| from the aligned reference over
      every step's training loss and running statistics.
    - `eval_max_abs`: largest |difference| of the final eval logits on the test split.
    - `eval_accuracy`: the framework's test accuracy in this run.
    """

    impl: str
    knob: str
    default: str
    loss_max_abs: float
    state_max_abs: float
    eval_max_abs: float
    eval_accuracy: float

    def responsible(self) -> bool:
        """Does this default move anything beyond the aligned tolerances?"""
        return (
            self.loss_max_abs > PARAMS.atol
            or self.state_max_abs > PARAMS.atol
            or self.eval_max_abs > EVAL_ATOL
        )


def _max_abs(a: Trajectory, b: Trajectory, group: str) -> float:
    if group == "loss":
        pairs = list(zip(a.loss, b.loss, strict=True))
    else:
        ga, gb = getattr(a, group), getattr(b, group)
        pairs = [(x, y) for k in ga for x, y in zip(ga[k], gb[k], strict=True)]
    return max(float(np.max(np.abs(np.float64(x) - np.float64(y)))) for x, y in pairs)


def _optimizer_drift(
    context: AnalysisContext, name: str, aligned: MlpBnConfig, default: str
) -> Drift:
    """The native loop keeping its own optimizer's defaults, against the same loop with the
    optimizer aligned: only the optimizer's defaults differ between the two."""
    if context.progress:
        context.progress(f"{name} keeping its optimizer's defaults")
    runs = []
    for config in (aligned, replace(aligned, native_defaults=("optimizer",))):
        impl = context.rebuild(name, config)
        assert impl is not None  # rebuilt from the factory that built it once already
        trajectory = context.train(impl, config, "native")
        runs.append((trajectory, *context.evaluate(impl, trajectory)))
    (base, base_logits, _), (kept, logits, metrics) = runs
    return Drift(
        name,
        "optimizer",
        f"{default}, native loop",
        _max_abs(kept, base, "loss"),
        _max_abs(kept, base, "state"),
        float(np.max(np.abs(np.float64(logits) - np.float64(base_logits)))),
        metrics["accuracy"],
    )


def drift_report(context: AnalysisContext) -> AnalysisResult | None:
    """For each framework: its drift with all defaults, then with one default kept at a time.

    The defaults tried are those the adapter lists in `bn_defaults` (knob -> description),
    measured in the harness loop against the reference; and, for an adapter whose native loop
    runs its framework's own optimizer, that optimizer's defaults (`optimizer_defaults`:
    optimizer name -> description), measured in the native loop against the same loop with
    the optimizer aligned. Only in `--defaults` mode.
    """
    if context.settings.mode != "defaults":
        return None
    reference = context.reference
    ref = context.trajectories[reference]
    ref_logits = context.outputs[reference]
    aligned: MlpBnConfig = replace(context.config, native_defaults=())
    out: list[Drift] = []

    def measure(
        impl: str,
        knob: str,
        default: str,
        key_or_run: Trajectory,
        logits: np.ndarray,
        accuracy: float,
    ) -> None:
        out.append(
            Drift(
                impl,
                knob,
                default,
                _max_abs(key_or_run, ref, "loss"),
                _max_abs(key_or_run, ref, "state"),
                float(np.max(np.abs(np.float64(logits) - ref_logits))),
                accuracy,
            )
        )

    for impl in context.impls:
        described: dict[str, str] = getattr(impl, "bn_defaults", {})
        key = f"{impl.name}/harness"
        if key in context.trajectories:
            measure(
                impl.name,
                "all",
                ", ".join(described) or "-",
                context.trajectories[key],
                context.outputs[key],
                context.evals[key]["accuracy"],
            )
        for knob, default in described.items():
            config = replace(aligned, native_defaults=(knob,))
            one = context.rebuild(impl.name, config)
            if one is None:
                continue
            if context.progress:
                context.progress(f"{impl.name} keeping its {knob} default")
            trajectory = context.train(one, config)
            logits, metrics = context.evaluate(one, trajectory)
            measure(impl.name, knob, default, trajectory, logits, metrics["accuracy"])
        optimizer_default = getattr(impl, "optimizer_defaults", {}).get(context.optimizer.name)
        if optimizer_default is not None:
            out.append(_optimizer_drift(context, impl.name, aligned, optimizer_default))
    rows = [
        (
            d.impl,
            d.knob,
            d.default,
            f"{d.loss_max_abs:.3g}",
            f"{d.state_max_abs:.3g}",
            f"{d.eval_max_abs:.3g}",
            f"{d.eval_accuracy:.4f}",
            "" if d.knob == "all" else "yes" if d.responsible() else "no",
        )
        for d in out
    ]
    return AnalysisResult(
        key="drift",
        payload=[asdict(d) | {"responsible": d.responsible()} for d in out],
        title=f"drift from {reference}, with all defaults and one default at a time",
        head=(
            "framework",
            "default kept",
            "what it is",
            "max |diff| loss",
            "max |diff| running stats",
            "max |diff| eval logits",
            "accuracy",
            "responsible",
        ),
        rows=rows,
        notes=[
            f"{d.impl} drifts because of its default {d.default}"
            for d in out
            if d.knob != "all" and d.responsible()
        ],
    )
