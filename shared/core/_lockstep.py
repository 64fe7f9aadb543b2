"""Lockstep: every implementation takes each step from the reference's own values.

Running free, two correct implementations compiled to different programs may part: a
rounding difference of one step feeds the next, and a chaotic model (a relu near its
threshold, BatchNorm over a few examples) amplifies it until the trajectories have nothing
in common. A bug looks the same from afar. In lockstep, at every step t each implementation
is handed the reference's params, state, optimizer state and key after step t - 1 (through
canonical names; native leaves that no canonical name covers, an implementation's own
bookkeeping, keep its own values), takes one step, and its loss, gradients, new params,
new state and new optimizer state are compared with the reference's step from the same
values. That local
error cannot compound: a bug shows at its first step, far above the bound; rounding stays
within it, however far the free-running trajectories have parted.

The harness loop runs in lockstep: its generic step can start from any values. Native
loops keep their values inside framework objects, and a scan runs many steps in one call,
so those loops are checked against their own implementation's harness loop instead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp
import optax

from ._dataflow import LeafOrder, covered
from ._divergence import PairResult
from ._layers import LayerReport, first_layer, grads_at
from ._optstate import canonical_opt_state, opt_state_from_canonical
from ._plugin import contained  # the user's code may call sys.exit()
from ._protocol import Batch, Implementation, Params, State
from ._runners import HarnessRunner, flat
from ._step import InputsFn, LossFn, TrainStep
from ._stream import PairStream
from ._tolerance import Tolerance

Probe = Callable[..., Any]
"""A jitted step: its outputs under canonical names (and, `native`, the new native values)."""


def make_probe(
    impl: Implementation,
    tx: optax.GradientTransformation,
    loss_fn: LossFn,
    inputs: InputsFn | None,
    *,
    native: bool = False,
) -> Probe:
    """`impl`'s harness step, jitted, with every output under canonical names: `"loss"`,
    `"grads.NAME"`, `"params.NAME"`, `"state.NAME"`, `"opt_state.PATH"` (`native`: also
    the new params and state as the framework holds them, `(outputs, (params, state))`)."""
    step = TrainStep(impl, loss_fn, tx, inputs)

    def probe(
        params: Params, state: State, opt_state: Any, batch: Batch, key: jax.Array | None
    ) -> Any:
        new_params, new_state, new_opt, loss, grads = step.with_grads(
            params, state, opt_state, batch, key
        )
        out = flat(*impl.to_canonical(new_params, new_state), loss)
        out.update({f"grads.{k}": v for k, v in impl.to_canonical(grads, new_state)[0].items()})
        opt = canonical_opt_state(impl, new_params, new_state, new_opt)
        out.update({f"opt_state.{k}": v for k, v in opt.items()})
        return (out, (new_params, new_state)) if native else out

    return jax.jit(probe)


class Lockstep:
    """The lockstep of several implementations' harness loops against the reference's.

    **Arguments:**

    - `reference`: the reference's harness runner; its values before each step are what
      every implementation starts that step from.
    - `others`: `(trajectory key, runner)` of the other implementations' harness loops.
    - `reference_key`: the reference trajectory's key.
    - `tx`, `loss_fn`, `inputs`: the run's optimizer, loss and input selection.
    - `tolerances`: by trajectory key, `(tolerance, loss tolerance)`: each pair's own bound.
    - `order`: the data-flow order of the leaves, for the report.
    - `delegate`: let the free-running step stand for the lockstep step where it starts from
      the reference's own values (`False`: run every lockstep step, as the bench does).
    - `layers`: at a pair's first diverging step, name its first diverging layer (see
      `first_layer`); it holds the last steps' starting values (references to arrays the
      run has made anyway) until then.

    Call `step(batch, key)` before the free-running runners take the same step, then
    `results()`.
    """

    def __init__(
        self,
        reference: HarnessRunner,
        others: list[tuple[str, HarnessRunner]],
        reference_key: str,
        tx: optax.GradientTransformation,
        loss_fn: LossFn,
        inputs: InputsFn | None,
        tolerances: dict[str, tuple[Tolerance, Tolerance | None]],
        order: LeafOrder,
        *,
        delegate: bool = True,
        layers: bool = True,
    ):
        self.reference = reference
        self.inputs = inputs
        self.layers = layers
        # Each step's starting values, held (not copied) for as long as a divergence found
        # at that step is read: one step late, so three steps suffice.
        self._held: deque[dict[str, Any]] = deque(maxlen=3)
        self._wanted: dict[str, dict[str, Any]] = {}
        self.layer_errors: dict[str, BaseException] = {}
        self.reference_key = reference_key
        self.delegate = delegate
        self.tx = tx
        self._probe = make_probe(reference.impl, tx, loss_fn, inputs)
        self._others = {key: runner.impl for key, runner in others}
        self._runners = dict(others)
        self._covered = {key: covered(r.impl, r.params, r.state) for key, r in others}
        self._probes = {
            key: make_probe(impl, tx, loss_fn, inputs, native=True)
            for key, impl in self._others.items()
        }
        # The native leaves no canonical name covers (Haiku's EMA `hidden` and `counter`)
        # cannot be taken from the reference: each port's are carried from its own lockstep
        # step, not from its free-running run, which may have parted (and would then put its
        # parting into every lockstep step after it).
        self._kept: dict[str, tuple[Any, Any]] = {}
        self.streams: dict[str, PairStream] = {}
        for key in self._others:
            tolerance, loss_tolerance = tolerances[key]
            # Gradients and optimizer moments near zero are rounding noise: judged by the
            # pair's own ULP count at their leaf's scale too (see `Judge`).
            relax = {"grads": tolerance.max_ulp, "opt_state": tolerance.max_ulp}
            self.streams[key] = PairStream(
                (key, reference_key), tolerance, loss_tolerance, order, relax, kind="lockstep"
            )
        self.errors: dict[str, BaseException] = {}
        self.probed: dict[str, int] = {}
        self._delegated: list[str] = []
        self.steps = 0

    def step(self, batch: Batch, key: jax.Array | None) -> None:
        """Step t for every implementation, from the reference's values after step t - 1.

        An implementation whose own values after step t - 1 are bitwise the reference's
        (params, state and optimizer state) takes its free-running step t from the same
        values: that step is its lockstep step, and no second step is run (`probed` counts
        the steps that ran); `delegated()` names them, and `judge_free` takes their values.
        """
        self.steps += 1
        self._hold_divergences()
        impl = self.reference.impl
        params, state, opt_state = self.reference.native()
        cparams, cstate = impl.to_canonical(params, state)
        held: dict[str, Any] = {"step": self.steps, "ref": (params, state), "batch": batch}
        held.update(canonical=(cparams, cstate), key=key, own={})
        if self.layers:
            self._held.append(held)
        copt = canonical_opt_state(impl, params, state, opt_state)
        given = {**flat(cparams, cstate), **{f"opt_state.{k}": v for k, v in copt.items()}}
        expected: list[dict[str, Any]] = []  # the reference's own step, made once if needed
        self._delegated = []
        for name, other in self._others.items():
            if name in self.errors:
                continue
            try:
                with contained(f"the lockstep of {name}"):
                    own_params, own_state, own_opt = self._runners[name].native()
                    held["own"][name] = (own_params, own_state)
                    own = self.delegate and _canonical_values(other, own_params, own_state, own_opt)
                    if own and _same(own, given):
                        self._delegated.append(name)
                        self._kept.pop(name, None)  # the free run is the lockstep's own again
                        continue
                    own_params, own_state = self._kept.get(name, (own_params, own_state))
                    held["own"][name] = (own_params, own_state)  # what this step merges
                    self.probed[name] = self.probed.get(name, 0) + 1
                    if not expected:
                        expected.append(self._probe(params, state, opt_state, batch, key))
                    p, s = other.from_canonical(cparams, cstate)
                    keep_params, keep_state = self._covered[name]
                    p, s = _merge(p, own_params, keep_params), _merge(s, own_state, keep_state)
                    o = opt_state_from_canonical(other, p, s, self.tx, copt, cstate)
                    got, kept = self._probes[name](p, s, o, batch, key)
                    if not (all(keep_params) and all(keep_state)):
                        self._kept[name] = kept
                    self.streams[name].push(self.steps, got, expected[0])
            except Exception as e:  # reported with the pair: the free-running verdict stands
                self.errors[name] = e

    def delegated(self) -> list[str]:
        """The implementations whose step this step started from the reference's values."""
        return list(self._delegated)

    def judge_free(self, key: str, got: dict[str, Any], expected: dict[str, Any]) -> None:
        """Judge a delegated step by its free-running values (the same step, from the same
        values): the loss and the new params and state."""
        if key in self.streams and key not in self.errors:
            self.streams[key].push(self.steps, got, expected)

    def drop(self, key: str) -> None:
        """Stop the lockstep of a trajectory whose free-running training failed."""
        self._others.pop(key, None)
        self.streams.pop(key, None)

    def results(self) -> dict[str, PairResult]:
        """The lockstep verdict of each implementation that ran every step, its first
        divergence with its first diverging layer (`Divergence.layers`)."""
        out = {
            key: stream.result() for key, stream in self.streams.items() if key not in self.errors
        }
        self._hold_divergences()
        for key, result in out.items():
            div = result.first_divergence
            if div is not None and key in self._wanted:
                report = self._first_layer(key, result)
                out[key] = replace(result, first_divergence=replace(div, layers=report))
        return out

    def _hold_divergences(self) -> None:
        """Keep the starting values of each newly found first divergence's step."""
        for key, stream in self.streams.items():
            div = stream.first_divergence
            if div is None or key in self._wanted:
                continue
            held = next((h for h in self._held if h["step"] == div.step), None)
            if held is not None:
                self._wanted[key] = held

    def _first_layer(self, key: str, result: PairResult) -> LayerReport:
        """`key`'s first diverging layer at its first diverging step, from the values that
        step started from (a second forward and backward pass of both implementations)."""
        held = self._wanted.pop(key)
        div = result.first_divergence
        assert div is not None
        other = self._others[key]
        try:
            with contained(f"the layer trace of {key}"):
                p, s = other.from_canonical(*held["canonical"])
                if key in held["own"]:
                    own_params, own_state = held["own"][key]
                    keep_params, keep_state = self._covered[key]
                    p, s = _merge(p, own_params, keep_params), _merge(s, own_state, keep_state)
                return first_layer(
                    div.step,
                    (key, self.reference_key),
                    (other, self.reference.impl),
                    ((p, s), held["ref"]),
                    held["batch"],
                    held["key"],
                    self.inputs,
                    result.tolerance,
                    div,
                    grads_at(result.series, div.step),
                )
        except Exception as e:  # the lockstep's verdict stands; the report says why
            self.layer_errors[key] = e
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            return LayerReport(div.step, None, "unavailable", note=f"no layer trace: {first}")


def _merge(given: Any, own: Any, covered: list[bool]) -> Any:
    """`given`'s leaves where a canonical name covers them, `own`'s elsewhere."""
    leaves, treedef = jax.tree.flatten(given)
    mine = jax.tree.leaves(own)
    if len(mine) != len(leaves) or all(covered):
        return given
    merged = [g if c else m for g, m, c in zip(leaves, mine, covered, strict=True)]
    return jax.tree.unflatten(treedef, merged)


def _canonical_values(
    impl: Implementation, params: Params, state: State, opt_state: Any
) -> dict[str, Any]:
    copt = canonical_opt_state(impl, params, state, opt_state)
    return {
        **flat(*impl.to_canonical(params, state)),
        **{f"opt_state.{k}": v for k, v in copt.items()},
    }


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Bitwise the same leaves (read back to the host: one bool, after both steps ran)."""
    if a.keys() != b.keys():
        return False
    if not a:
        return True
    if any(jnp.shape(a[k]) != jnp.shape(b[k]) for k in a):
        return False
    return bool(_all_equal({k: a[k] for k in sorted(a)}, {k: b[k] for k in sorted(b)}))


@jax.jit
def _all_equal(a: dict[str, Any], b: dict[str, Any]) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(a[k] == b[k]) for k in a]))
