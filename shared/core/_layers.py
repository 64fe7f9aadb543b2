"""The first diverging layer: where inside a diverging step two implementations part.

The lockstep names the first step and the leaves that diverge there; a leaf is where the
damage lands, not where it starts (a relu moved before a residual add shows up as the next
block's BatchNorm statistics). At that step, from the same values the lockstep step started
from, each implementation's forward pass is traced layer by layer (`layer_trace`, each
framework's own way of seeing inside a call) and the layers are paired by their canonical
path. The first diverging layer is the first one, in the order the reference's layers
return, whose output differs while its input agrees: a layer returns after the layers it
calls, so a block is named only when each of its sublayers agrees (the difference is in
the block's own code between them). Where every layer's output agrees, the divergence is
in a layer's state update (a BatchNorm momentum) or its backward pass, and the report says
which layer's leaves those are.

This runs only for a pair whose lockstep diverges, once, at its first diverging step: an
agreeing run pays nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import numpy as np

from ._divergence import Divergence, LeafDiff, json_float
from ._protocol import Batch, Implementation, Params, State
from ._step import InputsFn
from ._stream import PairStream
from ._tolerance import Tolerance

LAYER_SCALE_ULP = 64
"""A layer's input or output also agrees within this many ULP of its largest magnitude.

Activations are compared by the pair's own bound (made for params and state), and, where
that is tighter, by their scale: two correct frameworks' BatchNorm outputs differ by
rounding that is many ULP of an element near zero but few of the layer (up to 15 ULP
between two frameworks' forms, the field notes). 64 is a choice with room over that, not a
measured floor: every pair of the five frameworks' built-in BatchNorm MLP agrees within it
at every layer before its BatchNorm (`tests/layers`, slow), and each planted bug there is
thousands of ULP or more beyond it.
"""

MODEL = ""
"""The canonical path of the model itself (its root module), in a `layer_trace`."""


@dataclass(frozen=True)
class LayerDiff:
    """One layer at the diverging step, both implementations from the same values.

    **Fields:** `layer` (the canonical path, `""` for the model itself); `input_agrees`,
    `output_agrees`; `input_max_abs`, `output_max_abs`; `worst`: the output's worst
    element (a [`LeafDiff`][] named `output.LAYER`) where it differs; `grads_max_abs`: the
    largest |diff| of the layer's own parameter gradients (`None`: it has none); `problem`:
    a shape or arity that differs, or `None`.
    """

    layer: str
    input_agrees: bool
    output_agrees: bool
    input_max_abs: float = 0.0
    output_max_abs: float = 0.0
    worst: LeafDiff | None = None
    grads_max_abs: float | None = None
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.layer,
            "input_agrees": self.input_agrees,
            "output_agrees": self.output_agrees,
            "input_max_abs": json_float(self.input_max_abs),
            "output_max_abs": json_float(self.output_max_abs),
            "grads_max_abs": None if self.grads_max_abs is None else json_float(self.grads_max_abs),
        }
        if self.worst is not None and self.worst.problem is None:
            out["worst"] = self.worst.to_json()
        if self.problem is not None:
            out["problem"] = self.problem
        return out


@dataclass(frozen=True)
class LayerReport:
    """Where inside the diverging step a pair parts.

    **Fields:** `step`; `layer`: the first diverging layer (the reference's canonical path;
    `None` where none could be named); `where`: `"output"` (its forward output differs while
    its input agrees), `"state"` (every forward output agrees; the layer's state update
    differs), `"gradient"` (forward and state agree; its parameter gradients differ),
    `"outside"` (the loss, outside every layer), or `"unavailable"`; `layers`: every paired
    layer in the reference's order; `unpaired`: `(implementation, path)` of the layers that
    have no partner; `note`: the one line the report prints.
    """

    step: int
    layer: str | None
    where: str
    layers: tuple[LayerDiff, ...] = ()
    unpaired: tuple[tuple[str, str], ...] = ()
    note: str = ""
    first_gradient: str | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "layer": self.layer,
            "where": self.where,
            "first_gradient_layer": self.first_gradient,
            "note": self.note,
            "layers": [layer.to_json() for layer in self.layers],
            "unpaired": [{"implementation": i, "path": p} for i, p in self.unpaired],
        }


def shown(layer: str) -> str:
    """A layer's path as the report shows it (`the model itself` for the root)."""
    return "the model itself" if layer == MODEL else f"`{layer}`"


def owner(leaf: str, layers: Sequence[str]) -> str | None:
    """The layer a canonical leaf belongs to (`"state.bn.var"` -> `"bn"`): the longest path
    among `layers` that prefixes its name, or `None`."""
    name = leaf.partition(".")[2] if leaf.split(".")[0] in _GROUPS else leaf
    best = None
    for layer in layers:
        if layer != MODEL and (name == layer or name.startswith(layer + ".")):
            best = layer if best is None or len(layer) > len(best) else best
    return best


_GROUPS = ("params", "state", "grads", "opt_state")


def trace_layers(
    impl: Implementation, params: Params, state: State, x: Any, key: jax.Array | None
) -> dict[str, tuple[list[Any], list[Any]]]:
    """`impl.layer_trace` under `jax.jit` (as the step runs), each layer's input and output
    as lists of arrays, in the order the layers return."""
    extra = {} if key is None else {"key": key}

    def run(params: Params, state: State, x: Any) -> dict[str, tuple[list[Any], list[Any]]]:
        trace = impl.layer_trace(params, state, x, train=True, **extra)
        return {
            name: (jax.tree.leaves(call.input), jax.tree.leaves(call.output))
            for name, call in trace.items()
        }

    order: list[str] = []

    def ordered(params: Params, state: State, x: Any) -> Any:
        out = run(params, state, x)
        order[:] = list(out)
        return list(out.values())

    values = jax.jit(ordered)(params, state, x)
    return dict(zip(order, values, strict=True))


def first_layer(
    step: int,
    names: tuple[str, str],
    impls: tuple[Implementation, Implementation],
    native: tuple[tuple[Params, State], tuple[Params, State]],
    batch: Batch,
    key: jax.Array | None,
    inputs: InputsFn | None,
    tolerance: Tolerance,
    divergence: Divergence,
    grads: Mapping[str, float],
) -> LayerReport:
    """The first diverging layer of `impls[0]` (the port) against `impls[1]` (the
    reference), each started from its `native` (params, state) at `step`.

    **Arguments:**

    - `step`, `names`: the diverging step and the pair's keys (for the report).
    - `batch`, `key`, `inputs`: the step's data, key and input selection.
    - `tolerance`: the pair's bound (relaxed to `LAYER_SCALE_ULP` at each layer's scale).
    - `divergence`: the lockstep's first divergence (its leaves in data-flow order).
    - `grads`: `"grads.NAME"` -> the step's largest |diff| of that gradient.
    """
    missing = [n for n, impl in zip(names, impls, strict=True) if not hasattr(impl, "layer_trace")]
    if missing:
        note = f"no layer trace: {missing[0]} has no `layer_trace`"
        return LayerReport(step, None, "unavailable", note=note)
    x = batch if inputs is None else inputs(batch)
    a, b = (trace_layers(impl, *nv, x, key) for impl, nv in zip(impls, native, strict=True))
    paired = [layer for layer in b if layer in a]
    unpaired = tuple((names[1], p) for p in b if p not in a) + tuple(
        (names[0], p) for p in a if p not in b
    )
    stats = _compare(names, a, b, paired, tolerance)
    per_grad: dict[str, float] = {}
    for leaf, value in grads.items():
        layer = owner(leaf, paired)
        if layer is not None:
            per_grad[layer] = max(per_grad.get(layer, 0.0), value)
    layers = tuple(LayerDiff(**stats[layer], grads_max_abs=per_grad.get(layer)) for layer in paired)
    failing_grads = [d.leaf for d in divergence.leaves if d.leaf.startswith("grads.")]
    first_grad = next((owner(g, paired) for g in failing_grads if owner(g, paired)), None)
    first = next((d for d in layers if d.input_agrees and not d.output_agrees), None)
    if first is not None:
        return LayerReport(
            step, first.layer, "output", layers, unpaired, _output_note(step, first), first_grad
        )
    if any(not d.output_agrees for d in layers):  # a layer differs only after its input
        note = f"step {step}: every layer whose output differs also takes an input that does"
        return LayerReport(step, None, "unavailable", layers, unpaired, note, first_grad)
    stat = next((d for d in divergence.leaves if d.leaf.startswith("state.")), None)
    at = None if stat is None else owner(stat.leaf, paired)
    if stat is not None and at is not None:
        note = (
            f"step {step}: every layer's forward output agrees; {shown(at)}'s state update "
            f"differs ({stat.describe()})"
        )
        return LayerReport(step, at, "state", layers, unpaired, note, first_grad)
    if first_grad is not None:
        note = (
            f"step {step}: every layer's forward output agrees; the backward pass first "
            f"differs at {shown(first_grad)}'s gradients"
        )
        return LayerReport(step, first_grad, "gradient", layers, unpaired, note, first_grad)
    note = f"step {step}: every layer's forward output agrees; the loss differs outside them"
    return LayerReport(step, None, "outside", layers, unpaired, note, first_grad)


def _output_note(step: int, d: LayerDiff) -> str:
    if d.problem is not None:
        apart = d.problem
    elif d.worst is not None:
        apart = f"output {d.output_max_abs:.3g} apart, {d.worst.describe()}"
    else:
        apart = f"output {d.output_max_abs:.3g} apart"
    return f"step {step}: first differs at layer {shown(d.layer)} ({apart}; its input agrees)"


def _compare(
    names: tuple[str, str],
    a: Mapping[str, tuple[list[Any], list[Any]]],
    b: Mapping[str, tuple[list[Any], list[Any]]],
    paired: Sequence[str],
    tolerance: Tolerance,
) -> dict[str, dict[str, Any]]:
    """Per paired layer: does its input agree, its output, their largest |diff|s, and the
    output's worst element (one summary on the device, read back once)."""
    leaves_a: dict[str, Any] = {}
    leaves_b: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for layer in paired:
        for side, (xa, xb) in (
            ("input", (a[layer][0], b[layer][0])),
            ("output", (a[layer][1], b[layer][1])),
        ):
            if len(xa) != len(xb):
                problems.setdefault(
                    f"{side}.{layer}", f"{side}: {len(xa)} arrays against {len(xb)}"
                )
                continue
            for i, (va, vb) in enumerate(zip(xa, xb, strict=True)):
                leaves_a[f"{side}.{layer}#{i}"], leaves_b[f"{side}.{layer}#{i}"] = va, vb
    relax = {"input": LAYER_SCALE_ULP, "output": LAYER_SCALE_ULP}
    stream = PairStream(names, tolerance, None, scale_ulp=relax, kind="layers")
    stream.push(0, leaves_a, leaves_b)
    result = stream.result()
    failing: dict[str, LeafDiff] = {}
    if result.first_divergence is not None:
        for d in result.first_divergence.leaves:
            failing.setdefault(d.leaf.rpartition("#")[0], d)
    out: dict[str, dict[str, Any]] = {}
    for layer in paired:
        row: dict[str, Any] = {"layer": layer}
        for side in ("input", "output"):
            name = f"{side}.{layer}"
            maxes = [
                float(series[0, 1])
                for leaf, series in result.series.items()
                if leaf.rpartition("#")[0] == name
            ]
            row[f"{side}_max_abs"] = max(maxes, default=0.0)
            bad = failing.get(name)
            row[f"{side}_agrees"] = bad is None and name not in problems
            problem = problems.get(name) or (bad.problem if bad is not None else None)
            if problem is not None:
                row["problem"] = f"{side} {problem}" if side not in problem else problem
            if side == "output" and bad is not None and bad.problem is None:
                row["worst"] = LeafDiff(**{**_fields(bad), "leaf": name})
        out[layer] = row
    return out


def _fields(d: LeafDiff) -> dict[str, Any]:
    return {k: getattr(d, k) for k in d.__dataclass_fields__}


def grads_at(series: Mapping[str, np.ndarray], step: int) -> dict[str, float]:
    """`"grads.NAME"` -> its largest |diff| at `step`, from a lockstep pair's `series`."""
    out: dict[str, float] = {}
    for leaf, rows in series.items():
        if leaf.startswith("grads.") and len(rows):
            at = rows[rows[:, 0] == step]
            if len(at):
                out[leaf] = float(at[0, 1])
    return out
