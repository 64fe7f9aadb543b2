"""The harness: one generic optax step for any implementation, run per call or in `lax.scan`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

import jax
import numpy as np
import optax

from ._protocol import Batch, Implementation, Params, State
from ._trajectory import Trajectory
from ._validate import check_finite

Loop = Literal["harness", "native", "scan"]
LOOPS: tuple[str, ...] = get_args(Loop)
LossFn = Callable[[jax.Array, Batch], jax.Array]
InputsFn = Callable[[Batch], Any]
StepFn = Callable[..., tuple[Params, State, optax.OptState, jax.Array]]


@dataclass(eq=False)  # hashable by identity, as jax.jit requires
class TrainStep:
    """A generic training step: `(params, state, opt_state, batch) -> (..., loss)`.

    Gradients are taken with respect to params only; the state returned by the model's
    training call is threaded through. `traces` counts how often JAX traced the step, which
    shows retracing (a state that changes shape compiles a second program). `inputs` picks
    what the model sees of a batch (default: the batch itself; a classifier sees the
    features while its loss also reads the labels). A `key`, when given, is passed on to the
    model's `apply` (random models: dropout).
    """

    impl: Implementation
    loss_fn: LossFn
    tx: optax.GradientTransformation
    inputs: InputsFn | None = None
    traces: int = field(default=0, init=False)

    def __call__(
        self,
        params: Params,
        state: State,
        opt_state: optax.OptState,
        batch: Batch,
        key: jax.Array | None = None,
    ) -> tuple[Params, State, optax.OptState, jax.Array]:
        self.traces += 1  # A Python side effect: runs once per trace under jit.
        # Deterministic models are called without `key`, so their `apply` may omit it.
        extra = {} if key is None else {"key": key}

        def loss_of(params: Params) -> tuple[jax.Array, State]:
            x = batch if self.inputs is None else self.inputs(batch)
            y, new_state = self.impl.apply(params, state, x, train=True, **extra)
            return self.loss_fn(y, batch), new_state

        (loss, new_state), grads = jax.value_and_grad(loss_of, has_aux=True)(params)
        updates, opt_state = self.tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, new_state, opt_state, loss


def _check_batches(impl: Implementation, batches: Any) -> None:
    # Concrete floating data only: finiteness cannot be checked on tracers, nor on labels.
    for leaf in jax.tree.leaves(batches):
        concrete = isinstance(leaf, np.ndarray | jax.Array) and not isinstance(
            leaf, jax.core.Tracer
        )
        if concrete and np.issubdtype(leaf.dtype, np.floating):
            check_finite(impl.name, leaf, name="batches")


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
    _check_batches(impl, batches)
    step = TrainStep(impl, loss_fn, tx, inputs)
    step_fn: StepFn = jax.jit(step) if jit else step
    opt_state = tx.init(params)
    trajectory = Trajectory()
    trajectory.record_initial(*impl.to_canonical(params, state))
    per_step = unstack(batches)
    for batch, key in zip(per_step, _keys_for(keys, len(per_step)), strict=True):
        params, state, opt_state, loss = step_fn(params, state, opt_state, batch, key)
        trajectory.record_step(loss, *impl.to_canonical(params, state))
    return trajectory, step


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
    _check_batches(impl, batches)
    step = TrainStep(impl, loss_fn, tx, inputs)
    if keys is not None:
        _keys_for(keys, int(np.shape(jax.tree.leaves(batches)[0])[0]))

    def train(params: Params, state: State, batches: Batch, keys: jax.Array | None) -> Any:
        carry = (params, state, tx.init(params))
        _, history = jax.lax.scan(scan_body(step), carry, (batches, keys))
        return history

    run = jax.jit(train) if jit else train
    losses, (cparams, cstate) = run(params, state, batches, keys)
    losses, cparams, cstate = jax.device_get((losses, cparams, cstate))
    trajectory = Trajectory()
    trajectory.record_initial(*impl.to_canonical(params, state))
    for s in range(len(losses)):
        trajectory.record_step(
            losses[s], {k: v[s] for k, v in cparams.items()}, {k: v[s] for k, v in cstate.items()}
        )
    return trajectory


def scan_body(step: TrainStep) -> Callable[[Any, Any], Any]:
    """`lax.scan`'s body for `step`: carry `(params, state, opt_state)`, one `(batch, key)`
    in, the loss and the canonical params and state out."""

    def body(carry: Any, xs: Any) -> Any:
        batch, key = xs
        params, state, opt_state = carry
        params, state, opt_state, loss = step(params, state, opt_state, batch, key)
        return (params, state, opt_state), (loss, step.impl.to_canonical(params, state))

    return body


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
    _check_batches(impl, batches)
    if not hasattr(impl, "native_loop"):
        raise TypeError(f"{impl.name}: has no native_loop; only the harness loops can run it")
    trajectory = Trajectory()
    trajectory.record_initial(*impl.to_canonical(params, state))
    native = impl.native_loop(params, state, tx)
    per_step = unstack(batches)
    for batch, key in zip(per_step, _keys_for(keys, len(per_step)), strict=True):
        loss = native.step(batch) if key is None else native.step(batch, key)
        trajectory.record_step(loss, *impl.to_canonical(*native.read()))
    return trajectory


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
