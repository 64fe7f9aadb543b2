"""Data-parallel training over N devices: the harness step three ways, every replica read.

- `shard_map`: the step runs once per device on its slice of the batch; the model's own
  cross-device argument averages its batch statistics, and each replica's gradient and loss
  are combined with `pmean` (or `psum`, for a loss summed over the batch), which gives the
  single-device gradient. The map runs with `check_vma=False`: with `check_vma=True` JAX
  sums the replicated params' cotangents itself (a second `psum` would make the gradient N
  times too large), and it refuses a `pmean` over a vmap axis and the device axis together,
  which is how a per-example BatchNorm under a named vmap reduces over a batch spread
  across devices.
- `jit`: plain `jax.jit` of the ordinary step, the batch sharded across the mesh
  (`NamedSharding(mesh, P("data"))`) and everything else replicated: XLA partitions the
  program (GSPMD), so the statistics are global without any axis name.
- `unsynced`: `shard_map` without the model's cross-device argument, the bug users ship:
  every replica keeps its own statistics, and all of them are read back, not device 0's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ._faults import fault_hooks
from ._harness import InputsFn, LossFn, TrainStep, _keys_for, run_native, unstack
from ._protocol import Batch, Implementation, Params, State
from ._trajectory import Trajectory

ParallelMode = Literal["shard_map", "jit", "unsynced"]
PARALLEL_MODES: tuple[str, ...] = get_args(ParallelMode)
DATA_AXIS = "data"
"""The mesh axis the batch is split over, and the models' cross-device axis name."""

REPLICATED: P = P()
BY_BATCH: P = P(DATA_AXIS)
BY_STEP_BATCH: P = P(None, DATA_AXIS)


@dataclass(frozen=True)
class Parallel:
    """How to spread training over devices.

    **Arguments:**

    - `devices`: how many devices (of this process, or of all processes together).
    - `mode`: `"shard_map"`, `"jit"` or `"unsynced"` (see the module's docstring).
    """

    devices: int
    mode: str = "shard_map"

    def __post_init__(self) -> None:
        if isinstance(self.devices, bool) or not isinstance(self.devices, int):
            raise TypeError(f"--devices: expected an int, got {type(self.devices).__name__}")
        if self.devices < 1:
            raise ValueError(f"--devices: expected at least 1 device, got {self.devices}")
        if self.mode not in PARALLEL_MODES:
            raise ValueError(
                f"--parallel: unknown mode {self.mode!r}; expected one of "
                f"{', '.join(PARALLEL_MODES)}"
            )

    @property
    def synced(self) -> bool:
        """Does the model get its cross-device argument (`shard_map` only)?"""
        return self.mode == "shard_map"

    @property
    def mapped(self) -> bool:
        """Does the step run per device under `shard_map`?"""
        return self.mode != "jit"


@dataclass
class ParallelRun:
    """A data-parallel trajectory and, for `unsynced`, every replica's canonical state.

    **Fields:**

    - `trajectory`: params, replica 0's state and the combined loss at every step.
    - `replicas`: per recorded step (initial included), canonical state name -> array with
      one row per replica; `None` when the state is replicated.
    """

    trajectory: Trajectory
    replicas: list[dict[str, np.ndarray]] | None = field(default=None)


def data_mesh(devices: int) -> Mesh:
    """A one-axis mesh (`"data"`) over the first `devices` JAX devices (of all processes)."""
    available = jax.devices()
    if len(available) < devices:
        raise ValueError(
            f"--devices {devices}: JAX sees {len(available)} device(s); expected at least "
            f"{devices}. On CPU, XLA_FLAGS=--xla_force_host_platform_device_count={devices} "
            "must be set before JAX starts (state-rosetta compare --devices sets it itself)"
        )
    return Mesh(np.array(available[:devices]), (DATA_AXIS,))


def check_batches_divide(batches: Any, devices: int) -> None:
    """Refuse a global batch that does not split evenly across the devices (flax #2417:
    unequal shards silently weight some examples more than others)."""
    for leaf in jax.tree.leaves(batches):
        shape = np.shape(leaf)
        if len(shape) < 2:
            raise ValueError(
                f"--devices {devices}: batches must be stacked (steps, batch, ...); got a "
                f"leaf of shape {shape}"
            )
        if shape[1] % devices:
            raise ValueError(
                f"--devices {devices}: the global batch of {shape[1]} examples does not "
                f"divide across {devices} devices; expected a multiple of {devices} "
                f"(--batch {shape[1] - shape[1] % devices or devices} would)"
            )


def to_host(tree: Any) -> Any:
    """Global arrays -> NumPy, gathered from every process when there are several."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)


def place(tree: Any, sharding: NamedSharding) -> Any:
    """Put host values on `sharding`'s devices; across processes, each process places its
    own shards of the same global values (`jax.make_array_from_callback`)."""
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def one(leaf: Any) -> Any:
        if jnp.issubdtype(jnp.result_type(leaf), jax.dtypes.prng_key):
            data = place(jax.random.key_data(leaf), sharding)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(one, tree)


def check_same_on_every_process(batches: Any) -> None:
    """Refuse to train when the processes do not hold the same global batches (each one
    feeds its shards of them, so different data would silently train on a mixture)."""
    if jax.process_count() == 1:
        return
    import hashlib

    from jax.experimental import multihost_utils

    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(batches):
        digest.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    mine = np.frombuffer(digest.digest()[:8], np.uint32)
    every = np.asarray(multihost_utils.process_allgather(mine))
    different = [p for p in range(every.shape[0]) if not np.array_equal(every[p], every[0])]
    if different:
        raise ValueError(
            f"--processes: the batches of process(es) {', '.join(map(str, different))} differ "
            "from process 0's; every process must hold the same global batches (same data, "
            "--seed and --batch)"
        )


def _combine(reduction: str) -> Callable[[jax.Array, str], jax.Array]:
    return jax.lax.psum if reduction == "sum" else jax.lax.pmean


def _per_replica(state: State, devices: int) -> State:
    return jax.tree.map(lambda a: jnp.broadcast_to(a[None], (devices, *a.shape)), state)


@dataclass(eq=False)
class _Record:
    """Canonical values of (replicated params, state) as host arrays, and each replica's."""

    impl: Implementation
    unsynced: bool

    def __post_init__(self) -> None:
        impl = self.impl
        if self.unsynced:

            def canonical(params: Params, state: State) -> Any:
                first = jax.tree.map(lambda a: a[0], state)
                if not jax.tree.leaves(state):  # a model without state: nothing per replica
                    return impl.to_canonical(params, first), {}
                each = jax.vmap(lambda s: impl.to_canonical(params, s)[1])(state)
                return impl.to_canonical(params, first), each

        else:

            def canonical(params: Params, state: State) -> Any:
                return impl.to_canonical(params, state), None

        self.canonical = jax.jit(canonical)
        self.replicas: list[dict[str, np.ndarray]] = []

    def __call__(self, trajectory: Trajectory, params: Params, state: State, loss: Any) -> None:
        (cparams, cstate), each = to_host(self.canonical(params, state))
        if each is not None:
            self.replicas.append(dict(each))
        if loss is None:
            trajectory.record_initial(cparams, cstate)
        else:
            trajectory.record_step(to_host(loss), cparams, cstate)


def _mapped_step(
    impl: Implementation,
    loss_fn: LossFn,
    tx: optax.GradientTransformation,
    inputs: InputsFn | None,
    parallel: Parallel,
    reduction: str,
) -> Callable[..., Any]:
    """The per-device step for `shard_map` and `unsynced` (not yet mapped)."""
    combine = _combine(reduction)
    unsynced = not parallel.synced

    def local(params: Params, state: State, opt_state: Any, batch: Batch, key: Any) -> Any:
        if unsynced:  # this replica's own state: a leading axis of 1 under shard_map
            state = jax.tree.map(lambda a: a[0], state)
        extra = {} if key is None else {"key": key}

        def loss_of(params: Params) -> tuple[jax.Array, State]:
            x = batch if inputs is None else inputs(batch)
            y, new_state = impl.apply(params, state, x, train=True, **extra)
            return loss_fn(y, batch), new_state

        (loss, new_state), grads = jax.value_and_grad(loss_of, has_aux=True)(params)
        # This replica's gradient of its own loss; the single-device gradient is their mean
        # (a mean loss) or their sum (a summed loss), and so is the loss.
        grads = jax.tree.map(lambda g: combine(g, DATA_AXIS), grads)
        loss = combine(loss, DATA_AXIS)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        if unsynced:
            new_state = jax.tree.map(lambda a: a[None], new_state)
        return params, new_state, opt_state, loss

    return local


def parallel_step(
    impl: Implementation,
    loss_fn: LossFn,
    tx: optax.GradientTransformation,
    inputs: InputsFn | None,
    parallel: Parallel,
    mesh: Mesh,
    reduction: str = "mean",
) -> Callable[..., Any]:
    """The jitted data-parallel step `(params, state, opt_state, batch, key) -> (..., loss)`
    for `parallel`'s mode: the ordinary step under `jit`, else the per-device step mapped
    with `shard_map` (the state per replica for `unsynced`)."""
    if parallel.mode == "jit":
        return jax.jit(TrainStep(impl, loss_fn, tx, inputs))
    state_spec = REPLICATED if parallel.synced else BY_BATCH
    mapped = jax.shard_map(
        _mapped_step(impl, loss_fn, tx, inputs, parallel, reduction),
        mesh=mesh,
        in_specs=(REPLICATED, state_spec, REPLICATED, BY_BATCH, REPLICATED),
        out_specs=(REPLICATED, state_spec, REPLICATED, REPLICATED),
        check_vma=False,
    )
    return jax.jit(mapped)


def run_parallel(
    loop: str,
    impl: Implementation,
    params: Params,
    state: State,
    tx: optax.GradientTransformation,
    batches: Any,
    loss_fn: LossFn,
    *,
    parallel: Parallel,
    mesh: Mesh,
    inputs: InputsFn | None = None,
    keys: jax.Array | None = None,
    reduction: str = "mean",
) -> ParallelRun:
    """Train `impl` data-parallel over `mesh` in one loop, recording every step.

    **Arguments:**

    - `loop`: `"harness"` or `"scan"`; `"native"` under `jit` only (the framework's own
      jitted step, fed sharded batches).
    - `impl`: built with the model's cross-device argument for `shard_map`, without it
      otherwise.
    - `params`, `state`, `tx`, `batches`, `loss_fn`, `inputs`, `keys`: as for `run_harness`;
      `batches` are global (every example of every step).
    - `parallel`: the mode and device count; `mesh`: its one-axis mesh.
    - `reduction`: the loss's reduction over the batch (`ModelSpec.loss_reduction`).
    """
    devices = parallel.devices
    check_batches_divide(batches, devices)
    replicated = NamedSharding(mesh, REPLICATED)
    stacked = place(batches, NamedSharding(mesh, BY_STEP_BATCH))
    if parallel.mode == "jit":
        params, state = place((params, state), replicated)
        if loop == "scan":
            history = jax.jit(_scanned(TrainStep(impl, loss_fn, tx, inputs), tx))(
                params, state, stacked, keys
            )
            return _from_history(impl, params, state, history, unsynced=False)
        if loop == "native":
            if jax.process_count() > 1:
                raise ValueError(
                    f"{impl.name}: a native loop reads its values on the host after every "
                    "step, which one process cannot do for arrays that span several; across "
                    "processes run the harness and scan loops (--loop harness,scan)"
                )
            return ParallelRun(run_native(impl, params, state, tx, stacked, keys=keys))
        step = parallel_step(impl, loss_fn, tx, inputs, parallel, mesh, reduction)
        return _per_step(impl, step, params, state, tx, stacked, keys, unsynced=False)
    if loop == "native":
        raise ValueError(
            f"{impl.name}: --parallel {parallel.mode} runs the harness and scan loops; a "
            "framework's native loop is not written per device (it runs under --parallel jit)"
        )
    unsynced = not parallel.synced
    state_spec = BY_BATCH if unsynced else REPLICATED
    if unsynced:
        state = _per_replica(state, devices)
    params = place(params, replicated)
    state = place(state, NamedSharding(mesh, state_spec))
    if loop == "scan":
        local = _mapped_step(impl, loss_fn, tx, inputs, parallel, reduction)
        return _mapped_scan(impl, local, params, state, tx, stacked, keys, mesh, state_spec)
    step = parallel_step(impl, loss_fn, tx, inputs, parallel, mesh, reduction)
    return _per_step(impl, step, params, state, tx, stacked, keys, unsynced)


def _per_step(
    impl: Implementation,
    step: Callable[..., Any],
    params: Params,
    state: State,
    tx: optax.GradientTransformation,
    stacked: Any,
    keys: jax.Array | None,
    unsynced: bool,
) -> ParallelRun:
    """One call of `step` per batch, every step recorded."""
    record = _Record(impl, unsynced)
    opt_state = jax.jit(tx.init)(params)
    trajectory = Trajectory()
    record(trajectory, params, state, None)
    per_step = unstack(stacked)
    hooks = fault_hooks()
    for s, (batch, key) in enumerate(
        zip(per_step, _keys_for(keys, len(per_step)), strict=True), start=1
    ):
        params, state, opt_state, loss = step(params, state, opt_state, batch, key)
        record(trajectory, params, state, loss)
        hooks.after_step(s)  # a test's process may die here (tests/parallel)
    return ParallelRun(trajectory, record.replicas if unsynced else None)


def _mapped_scan(
    impl: Implementation,
    local: Callable[..., Any],
    params: Params,
    state: State,
    tx: optax.GradientTransformation,
    stacked: Any,
    keys: jax.Array | None,
    mesh: Mesh,
    state_spec: P,
) -> ParallelRun:
    """All steps in one `lax.scan`, the scan itself per device."""
    unsynced = state_spec != REPLICATED

    train = _scanned(local, tx)
    history_spec = (REPLICATED, REPLICATED, BY_STEP_BATCH if unsynced else REPLICATED)
    mapped = jax.shard_map(
        train,
        mesh=mesh,
        in_specs=(REPLICATED, state_spec, BY_STEP_BATCH, REPLICATED),
        out_specs=history_spec,
        check_vma=False,
    )
    history = jax.jit(mapped)(params, state, stacked, keys)
    return _from_history(impl, params, state, history, unsynced)


def _scanned(step: Callable[..., Any], tx: optax.GradientTransformation) -> Callable[..., Any]:
    """`(params, state, batches, keys) -> (losses, params, states)`, one `lax.scan`."""

    def train(params: Params, state: State, batches: Any, keys: Any) -> Any:
        def body(carry: Any, xs: Any) -> Any:
            batch, key = xs
            params, state, opt_state = carry
            params, state, opt_state, loss = step(params, state, opt_state, batch, key)
            return (params, state, opt_state), (loss, params, state)

        carry = (params, state, tx.init(params))
        _, history = jax.lax.scan(body, carry, (batches, keys))
        return history

    return train


def _from_history(
    impl: Implementation, params: Params, state: State, history: Any, unsynced: bool
) -> ParallelRun:
    """The trajectory of a scan's stacked outputs, recorded step by step."""
    losses, all_params, all_states = history
    record = _Record(impl, unsynced)
    trajectory = Trajectory()
    record(trajectory, params, state, None)
    for s in range(int(np.shape(losses)[0])):
        pick = cast(Callable[[Any], Any], lambda tree, s=s: jax.tree.map(lambda a: a[s], tree))
        record(trajectory, pick(all_params), pick(all_states), losses[s])
    return ParallelRun(trajectory, record.replicas if unsynced else None)
