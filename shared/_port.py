"""`check_port`: a reference and its port, as their frameworks' own objects, cross-validated.

Each object is wrapped by its framework's package (`shared.wrap`), the port's leaves are
aligned to the reference's (`core/_align`), the port starts from the reference's init mapped
through that alignment, and both train in the shared harness; the result is the engine's,
as from [`cross_validate`][].
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from ._wrap import wrap
from .core import ModelSpec, RunOptions
from .core._align import Alignment, AlignmentError, align_group, shapes_of, split_mapping
from .core._crossval import check_agreement
from .core._dataflow import forward_order
from .core._harness import unstack
from .core._result import CompareResult
from .core._run import run_model
from .core._spec import AnalysisResult
from .core._tolerance import Tolerance, parse_tolerance


def default_inputs(batch: Any) -> Any:
    """`batch["x"]` for a dict, `batch[0]` for a tuple or list, the batch itself otherwise."""
    if isinstance(batch, Mapping):
        if "x" not in batch:
            raise ValueError(
                f"inputs: the batch is a dict with keys {sorted(batch)} and no 'x'; expected "
                "an 'x' field, or inputs= naming what the model sees"
            )
        return batch["x"]
    if isinstance(batch, tuple | list):
        return batch[0]
    return batch


class ModelCallError(ValueError):
    """A user's model raised in its own `init` or `apply`: bad input, not this tool's fault."""


def guarded(label: str, what: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, with whatever it raises re-raised as a `ModelCallError` naming `label` and
    `what`, so that a model's own failure is one line, not an internal error."""

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ModelCallError:
            raise
        except Exception as e:
            raise ModelCallError(f"{label}: its {what} raised {type(e).__name__}: {e}") from e

    return call


class Guarded:
    """A wrapped model whose `init` and `apply` name it in what they raise; every other
    attribute is the model's."""

    def __init__(self, model: Any, label: str):
        self._model = model
        self.init = guarded(f"{label} ({model.name})", "init", model.init)
        self.apply = guarded(f"{label} ({model.name})", "apply", model.apply)
        if hasattr(model, "native_loop"):
            self.native_loop = guarded(f"{label} ({model.name})", "native loop", model.native_loop)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class AlignedPort:
    """The port behind the protocol under the reference's canonical names and shapes."""

    def __init__(
        self,
        port: Any,
        alignment: Alignment,
        fill: tuple[dict[str, Any], dict[str, Any]],
        model: str,
        name: str,
    ):
        self.port = port
        self.alignment = alignment
        self.fill = fill  # the port's own values of the leaves that are set aside
        self.name = name
        self.model = model
        if hasattr(port, "native_loop"):  # the port's own loop, in its own values
            self.native_loop = port.native_loop

    def init(self, key: jax.Array, x: Any) -> Any:
        return self.port.init(key, x)

    def apply(self, params: Any, state: Any, x: Any, *, train: bool, key: Any = None) -> Any:
        return self.port.apply(params, state, x, train=train, key=key)

    def to_canonical(self, params: Any, state: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        p, s = self.port.to_canonical(params, state)
        return self.alignment.to_ref("params", p), self.alignment.to_ref("state", s)

    def from_canonical(self, params: Any, state: Any) -> Any:
        p = self.alignment.to_port("params", params, self.fill[0])
        s = self.alignment.to_port("state", state, self.fill[1])
        return self.port.from_canonical(p, s)


class _Reference:
    """The reference's wrapped object, its compared state only (set-aside leaves hidden)."""

    def __init__(self, ref: Any, alignment: Alignment, fill: dict[str, Any], model: str):
        self.ref, self.alignment, self.fill = ref, alignment, fill
        self.name, self.model = ref.name, model
        self.init, self.apply = ref.init, ref.apply
        if hasattr(ref, "native_loop"):
            self.native_loop = ref.native_loop

    def to_canonical(self, params: Any, state: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        p, s = self.ref.to_canonical(params, state)
        kept = set(self.alignment.names("state"))
        return dict(p), {k: v for k, v in s.items() if k in kept}

    def from_canonical(self, params: Any, state: Any) -> Any:
        return self.ref.from_canonical(params, {**self.fill, **state})


def _order(
    impl: Any, params: Any, state: Any, x: Any, key: Any
) -> Callable[[str], Callable[[str], Any]]:
    leaf_order = forward_order(impl, params, state, x, key)

    def by(group: str) -> Callable[[str], Any]:
        return lambda name: (leaf_order.positions.get(f"{group}.{name}", 1 << 30), name)

    return by


def align(
    ref: Any,
    port: Any,
    ref_values: tuple[Any, Any],
    port_values: tuple[Any, Any],
    x: Any,
    *,
    mapping: Mapping[str, str] | None = None,
    key: Any = None,
) -> Alignment:
    """Match the port's canonical leaves to the reference's (see `core/_align`).

    **Raises:** `AlignmentError` naming both sides' leaves and a mapping to edit.
    """
    by_group = split_mapping(mapping)
    rp, rs = ref.to_canonical(*ref_values)
    pp, ps = port.to_canonical(*port_values)
    ref_order = _order(ref, *ref_values, x, key)
    port_order = _order(port, *port_values, x, key)
    labels = (f"reference ({ref.name})", f"port ({port.name})")
    matches, aside = [], []
    for group, r, p in (("params", rp, pp), ("state", rs, ps)):
        m, a = align_group(
            group,
            shapes_of(r),
            shapes_of(p),
            ref_order(group),
            port_order(group),
            mapping=by_group[group],
            ref_meanings=getattr(ref, "meanings", {}) if group == "state" else {},
            port_meanings=getattr(port, "meanings", {}) if group == "state" else {},
            labels=labels,
        )
        matches.extend(m)
        aside.extend(a)
    return Alignment(tuple(matches), tuple(aside))


def _training_call(model: Any, x: Any, key: Any) -> Callable[[Any, Any], Any]:
    extra = {} if key is None else {"key": key}
    return lambda p, s: model.apply(p, s, x, train=True, **extra)


def _check_loss(loss: Any, ref: Any, values: Any, x: Any, batch: Any, key: Any) -> None:
    """Trace the loss on the reference's output once, before training: an output it cannot
    read is bad input, named with the output's structure."""
    out = jax.eval_shape(_training_call(ref, x, key), *values)[0]
    try:
        jax.eval_shape(loss, out, batch)
    except (TypeError, IndexError, KeyError) as e:
        name = getattr(loss, "__name__", type(loss).__name__)
        raise TypeError(
            f"loss {name}: cannot read the reference's output {jax.tree.structure(out)} "
            f"({type(e).__name__}: {e}); expected the structure the loss indexes"
        ) from None


def _set_aside_report(alignment: Alignment) -> AnalysisResult | None:
    if not alignment.set_aside:
        return None
    rows = [(", ".join(s.ref), ", ".join(s.port), s.reason) for s in alignment.set_aside]
    return AnalysisResult(
        key="not_comparable",
        payload=[
            {"reference": list(s.ref), "port": list(s.port), "reason": s.reason}
            for s in alignment.set_aside
        ],
        title="state not compared: it differs in meaning",
        head=("reference", "port", "reason"),
        rows=rows,
    )


@dataclass(frozen=True)
class Pair:
    """A reference and its port, wrapped, initialised from one key and aligned."""

    ref: Any
    ported: Any
    ref_values: tuple[Any, Any]
    port_values: tuple[Any, Any]
    alignment: Alignment
    batches: Any
    first: Any
    x: Any
    pick: Callable[[Any], Any]
    step_key: Any
    steps: int


def prepare(
    reference: Any,
    port: Any,
    *,
    data: Any,
    inputs: Callable[[Any], Any] | None,
    steps: int | None,
    seed: int,
    mapping: Mapping[str, str] | None,
    random: bool,
    loss: Callable[[Any, Any], jax.Array] | None = None,
) -> Pair:
    """Check the data, wrap both models, initialise each with `seed`'s key, check that the
    loss reads the reference's output (where there is one), align them."""
    pick = default_inputs if inputs is None else inputs
    leaves = jax.tree.leaves(data)
    if not leaves:
        raise ValueError("data: expected arrays stacked on a leading steps axis, got none")
    available = int(np.shape(leaves[0])[0])
    steps = available if steps is None else steps
    if not 1 <= steps <= available:
        raise ValueError(f"steps: expected 1 to {available} (the data's steps), got {steps}")
    batches = jax.tree.map(lambda a: np.asarray(a)[:steps], data)
    first = unstack(batches)[0]
    x = pick(first)
    ref = Guarded(wrap(reference, label="reference"), "reference")
    ported = Guarded(wrap(port, label="port"), "port")
    key0 = jax.random.key(seed)
    ref_values = ref.init(key0, x)
    port_values = ported.init(key0, x)
    step_key = jax.random.key(0) if random else None
    # Both models' training calls traced once before anything else reads them: a model that
    # fails is named here, not mistaken for an order the alignment cannot read.
    jax.eval_shape(_training_call(ported, x, step_key), *port_values)
    if loss is None:
        jax.eval_shape(_training_call(ref, x, step_key), *ref_values)
    else:  # the reference's call, traced with the loss on its output
        _check_loss(loss, ref, ref_values, x, first, step_key)
    alignment = align(ref, ported, ref_values, port_values, x, mapping=mapping, key=step_key)
    return Pair(
        ref, ported, ref_values, port_values, alignment, batches, first, x, pick, step_key, steps
    )


def check_port(
    reference: Any,
    port: Any,
    *,
    data: Any,
    loss: Callable[[Any, Any], jax.Array],
    inputs: Callable[[Any], Any] | None = None,
    steps: int | None = None,
    optimizer: str = "sgd",
    lr: float = 0.02,
    seed: int = 0,
    mapping: Mapping[str, str] | None = None,
    tolerance: Tolerance | str | None = None,
    random: bool = False,
    loops: Sequence[str] = ("harness",),
    lockstep: bool = True,
) -> CompareResult:
    """Cross-validate `port` against `reference`, each a framework's own object.

    **Arguments:**

    - `reference`, `port`: an `hk.Transformed`/`hk.TransformedWithState`, a Linen
      `nn.Module`, an `nnx.Module`, an Equinox module (or `(module, eqx.nn.State)`), a Keras
      model, or what [`wrap`][] made of one (to pass its keywords).
    - `data`: the batches, stacked on a leading steps axis (any pytree); `steps` takes the
      first ones, so a short run's batches are a long run's first.
    - `loss`: `(output, batch) -> scalar`; outputs may be pytrees.
    - `inputs`: `batch -> model input` (default: [`default_inputs`][]).
    - `optimizer`, `lr`, `seed`, `tolerance`, `lockstep`: as for `cross_validate`.
    - `loops`: which loops train, as for `cross_validate`: `"harness"` (the default),
      `"scan"`, and `"native"`, each framework's own loop (`jax.jit` of Haiku's and Linen's
      step, a Linen `TrainState`, NNX's `nnx.Optimizer` under `nnx.jit`, Equinox's
      `eqx.filter_jit`, Keras's `stateless_call` with its own optimizer) on `loss`.
    - `mapping`: `{"params.REF": "params.PORT", ...}` for the pairs the alignment cannot
      decide (the error of an ambiguous case prints one to edit).
    - `random`: pass each step's key to both models (dropout).

    **Returns:** the [`CompareResult`][]; the alignment is `result.config["alignment"]`.

    **Raises:** `AlignmentError`, `TypeError` or `ValueError` naming the framework, the
    argument and what was expected; `ModelCallError` (a `ValueError`) when a model's own
    `init` or `apply` raises, naming the model and what it raised.
    """
    pair = prepare(
        reference, port, data=data, inputs=inputs, steps=steps, seed=seed, mapping=mapping,
        random=random, loss=loss,
    )  # fmt: skip
    ref, ported, alignment = pair.ref, pair.ported, pair.alignment
    for model in (ref, ported):  # a wrapped model's native loop trains on the given loss
        if hasattr(model, "use_loss"):
            model.use_loss(loss, pair.pick)
    ref_values, port_values, batches, pick = (
        pair.ref_values,
        pair.port_values,
        pair.batches,
        pair.pick,
    )
    _, ref_state = ref.to_canonical(*ref_values)
    fill_ref = {k: v for k, v in ref_state.items() if k not in set(alignment.names("state"))}
    pp, ps = ported.to_canonical(*port_values)
    fill_port = (
        {k: v for k, v in pp.items() if ("params", k) not in alignment.by_port},
        {k: v for k, v in ps.items() if ("state", k) not in alignment.by_port},
    )
    model = "port"
    aligned_ref = _Reference(ref, alignment, fill_ref, model)
    port_name = ported.name if ported.name != ref.name else f"{ported.name}-port"
    aligned_port = AlignedPort(ported, alignment, fill_port, model, port_name)
    canonical_init = aligned_ref.to_canonical(*ref_values)

    def init(impl: Any, config: Any, batches: Any, seed: int) -> Any:
        if impl is aligned_ref:
            return ref_values
        return impl.from_canonical(*canonical_init)  # the port starts from the reference's

    report = _set_aside_report(alignment)
    spec = ModelSpec(
        name=model,
        config_type=type(None),
        configure=lambda settings: None,
        data=lambda config, settings: batches,
        loss=loss,
        inputs=pick,
        init=init,
        steps=pair.steps,
        learning_rate=lr,
        random=random,
        analyses=() if report is None else (lambda context: report,),
        describe=lambda config, settings, batches: {
            "alignment": [list(row) for row in alignment.table()]
        },
    )
    if isinstance(tolerance, str):
        tolerance = parse_tolerance(tolerance, reason="given to check_port")
    options = RunOptions(
        loops=tuple(loops),
        optimizer=optimizer,
        lr=lr,
        seed=seed,
        tolerance=tolerance,
        lockstep=lockstep,
    )
    factories: list[tuple[str, Any]] = [
        (f"reference ({ref.name})", lambda config: aligned_ref),
        (f"port ({ported.name})", lambda config: aligned_port),
    ]
    return run_model(spec, factories, options)


def assert_port(reference: Any, port: Any, **kwargs: Any) -> CompareResult:
    """[`check_port`][], then [`check_agreement`][]: raises `AssertionError` naming the
    first step and leaf where the port parts from the reference."""
    result = check_port(reference, port, **kwargs)
    check_agreement(result)
    return result


__all__ = ["AlignmentError", "ModelCallError", "assert_port", "check_port", "default_inputs"]
