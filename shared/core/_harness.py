"""The harness: one generic optax step for any implementation, run per call or in `lax.scan`,
and each implementation's own loop; each recorded step by step as a trajectory."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, cast, get_args

import jax
import numpy as np
import optax

from ._protocol import Batch, Implementation, Params, State
from ._runners import HarnessRunner, NativeRunner, ScanRunner, split
from ._step import InputsFn, LossFn, StepFn, TrainStep, scan_body
from ._trajectory import Trajectory
from ._validate import check_finite

Loop = Literal["harness", "native", "scan"]
LOOPS: tuple[str, ...] = get_args(Loop)

__all__ = ["LOOPS", "InputsFn", "LossFn", "StepFn", "TrainStep", "scan_body"]


def check_batches(where: str, batches: Any) -> None:
    """Refuse non-finite data, naming `where`. Concrete floating data only: finiteness
    cannot be checked on tracers, nor on labels. A batch reused at every step (a
    broadcast, stride 0 on the steps axis) is checked once, not once per step."""
    for leaf in jax.tree.leaves(batches):
        concrete = isinstance(leaf, np.ndarray | jax.Array) and not isinstance(
            leaf, jax.core.Tracer
        )
        if concrete and np.issubdtype(leaf.dtype, np.floating):
            while isinstance(leaf, np.ndarray) and leaf.ndim and leaf.strides[0] == 0:
                leaf = leaf[0]
            check_finite(where, leaf, name="batches")


def unstack(batches: Any) -> list[Batch]:
    """Stacked batches (any pytree of arrays with a leading steps axis) -> one per step.

    A plain sequence of batches (a list) is returned as it is.
    """
    if isinstance(batches, list | tuple) and not hasattr(batches, "_fields"):
        return list(batches)
    leaves = jax.tree.leaves(batches)
    if not leaves:
        raise ValueError("batches: expected arrays stacked on a leading steps axis, got none")
    steps = int(np.shape(leaves[0])[0])
    return [jax.tree.map(lambda a, s=s: a[s], batches) for s in range(steps)]


def _keys_for(keys: jax.Array | None, steps: int) -> list[jax.Array | None]:
    if keys is None:
        return [None] * steps
    if len(keys) != steps:
        raise ValueError(f"keys: expected one per step ({steps}), got {len(keys)}")
    return list(keys)


def _record(runner: Any, batches: Iterable[Batch], keys: jax.Array | None) -> Trajectory:
    """Train `runner` over `batches` (and `keys`), recording every step on the host."""
    trajectory = Trajectory()
    trajectory.record_initial(*split(runner.initial()))
    per_step = unstack(batches)
    for batch, key in zip(per_step, _keys_for(keys, len(per_step)), strict=True):
        runner.advance(batch, key)
        values = runner.values()
        trajectory.record_step(values["loss"], *split(values))
    return trajectory


def run_harness(
    impl: Implementation,
    params: Params,
    state: State,
    tx: optax.GradientTransformation,
    batches: Iterable[Batch],
    loss_fn: LossFn,
    *,
    jit: bool = True,
    inputs: InputsFn | None = None,
    keys: jax.Array | None = None,
) -> tuple[Trajectory, TrainStep]:
    """Train with the generic step, one call per batch.

    **Arguments:**

    - `impl`: the implementation to train.
    - `params`, `state`: its native initial params and state.
    - `tx`: any optax gradient transformation.
    - `batches`: one batch per step (e.g. an array shaped (steps, batch, features)).
    - `loss_fn`: `(model output, batch) -> scalar loss`.
    - `jit`: compile the step with `jax.jit` (the default) or run it op by op.
    - `inputs`: `batch -> model input`, when a batch holds more than the input (labels).
    - `keys`: one random key per step (see [`step_keys`][]), for a random model.

    **Returns:** the trajectory, and the step (whose `traces` counts compilations).
    """
    check_batches(impl.name, batches)
    runner = HarnessRunner(impl, params, state, tx, loss_fn, inputs, jit=jit)
    return _record(runner, batches, keys), runner.step


def run_scan(
    impl: Implementation,
    params: Params,
    state: State,
    tx: optax.GradientTransformation,
    batches: Batch,
    loss_fn: LossFn,
    *,
    jit: bool = True,
    inputs: InputsFn | None = None,
    keys: jax.Array | None = None,
) -> Trajectory:
    """Train with the generic step inside one `lax.scan`: many steps in one call.

    `batches` is stacked along its leading axis (one entry per step; any pytree of arrays).
    The canonical params and state of every step come out as the scan's stacked outputs.
    `inputs` and `keys` are as for [`run_harness`][]; the scan slices `keys` as it slices
    the batches, so every step sees the key the per-step loops give it.
    """
    check_batches(impl.name, batches)
    if keys is not None:
        _keys_for(keys, int(np.shape(jax.tree.leaves(batches)[0])[0]))
    runner = ScanRunner(impl, params, state, tx, loss_fn, batches, keys, inputs, jit=jit, host=True)
    return _record(runner, batches, keys)


def run_native(
    impl: Implementation,
    params: Params,
    state: State,
    tx: optax.GradientTransformation,
    batches: Iterable[Batch],
    *,
    keys: jax.Array | None = None,
) -> Trajectory:
    """Train with the implementation's own idiomatic loop, recording every step.

    With `keys` (a random model), each step is `native.step(batch, key)`.
    """
    check_batches(impl.name, batches)
    return _record(NativeRunner(impl, params, state, tx), batches, keys)


def run_loop(
    loop: str,
    impl: Implementation,
    params: Params,
    state: State,
    tx: optax.GradientTransformation,
    batches: Batch,
    loss_fn: LossFn,
    inputs: InputsFn | None = None,
    keys: jax.Array | None = None,
) -> Trajectory:
    """Dispatch to `run_harness`, `run_native` or `run_scan` by name (jitted).

    Native loops take whole batches; `inputs` is for the harness step (see `run_harness`);
    `keys`, one per step, for a random model.
    """
    if loop == "harness":
        return run_harness(impl, params, state, tx, batches, loss_fn, inputs=inputs, keys=keys)[0]
    if loop == "native":
        return run_native(impl, params, state, tx, batches, keys=keys)
    if loop == "scan":
        return run_scan(impl, params, state, tx, batches, loss_fn, inputs=inputs, keys=keys)
    raise ValueError(f"unknown loop {loop!r}; expected one of {', '.join(LOOPS)}")


class FlatStep:
    """The harness's fast path: the generic step on a flat list of arrays, with donation.

    Every framework keeps params and state in its own pytree types (NNX `State`, Equinox
    modules, ...), and `jax.jit` flattens those through Python callbacks on every call. Here
    they are flattened once; the jitted step takes and returns a plain list of arrays, closes
    over the structure, and donates the old buffers so XLA can update them in place. The
    numbers are those of `TrainStep` (the same program), and the caller's arrays are copied
    first, so donation never deletes them.

    **Arguments:**

    - `impl`, `loss_fn`, `tx`: as for [`TrainStep`][].
    - `params`, `state`: the native initial values.
    - `donate`: donate the flat buffers to each step (the default).
    - `inputs`: as for [`run_harness`][].

    Call it with a batch (and a key, for a random model) to take one step; it returns the
    loss. `read()` gives the current
    native params and state.
    """

    def __init__(
        self,
        impl: Implementation,
        loss_fn: LossFn,
        tx: optax.GradientTransformation,
        params: Params,
        state: State,
        *,
        donate: bool = True,
        inputs: InputsFn | None = None,
    ):
        leaves, treedef = jax.tree.flatten((params, state, tx.init(params)))
        self.leaves: list[jax.Array] = [jax.numpy.array(leaf, copy=True) for leaf in leaves]
        self.treedef = treedef
        step = TrainStep(impl, loss_fn, tx, inputs)

        def flat_step(
            leaves: list[jax.Array], batch: Batch, key: jax.Array | None = None
        ) -> tuple[list[jax.Array], jax.Array]:
            params, state, opt_state = jax.tree.unflatten(treedef, leaves)
            params, state, opt_state, loss = step(params, state, opt_state, batch, key)
            new_leaves, new_treedef = jax.tree.flatten((params, state, opt_state))
            if new_treedef != treedef:  # type: ignore[operator]
                raise ValueError(
                    f"{impl.name}: the training step changed the structure of params or state "
                    f"({treedef} -> {new_treedef}); the fast path needs a fixed structure"
                )
            return new_leaves, loss

        self.flat_step = flat_step  # un-jitted: `lax.scan` can run it as its body
        self.jitted = jax.jit(flat_step, donate_argnums=0 if donate else ())

    def __call__(self, batch: Batch, key: jax.Array | None = None) -> jax.Array:
        self.leaves, loss = self.jitted(self.leaves, batch, key)
        return cast(jax.Array, loss)

    def read(self) -> tuple[Params, State]:
        params, state, _ = jax.tree.unflatten(self.treedef, self.leaves)
        return params, state
