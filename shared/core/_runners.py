"""Training loops one step at a time, so that every loop of every implementation can run
side by side and be compared as it goes (see `_stream_run`).

A runner takes one step with `advance(batch, key)` and gives the values after it with
`values()`: the loss and the canonical params and state, as flat names (`"loss"`,
`"params.bias"`, `"state.mean"`), left on the device. Nothing is copied to the host here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._protocol import Batch, Canonical, Implementation, Params, State
from ._step import TrainStep, scan_body


def flat(cparams: Canonical, cstate: Canonical, loss: Any = None) -> dict[str, Any]:
    """Canonical params and state (and the loss) as one mapping of leaf names."""
    out = {f"state.{k}": v for k, v in cstate.items()}
    out.update({f"params.{k}": v for k, v in cparams.items()})
    if loss is not None:
        out["loss"] = loss
    return out


def split(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Undo `flat`: (canonical params, canonical state); the loss is left out."""
    params = {k[7:]: v for k, v in values.items() if k.startswith("params.")}
    state = {k[6:]: v for k, v in values.items() if k.startswith("state.")}
    return params, state


class HarnessRunner:
    """The harness's generic jitted step, one call per batch.

    **Arguments:** `impl`; its native initial `params` and `state`; `tx`; `loss_fn`;
    `inputs` (batch -> model input); `jit` (compile the step, or run it op by op).
    `native()` gives the current native (params, state, optimizer state): the lockstep
    starts every implementation from them.
    """

    def __init__(
        self,
        impl: Implementation,
        params: Params,
        state: State,
        tx: optax.GradientTransformation,
        loss_fn: Callable[[Any, Batch], Any],
        inputs: Callable[[Batch], Any] | None = None,
        *,
        jit: bool = True,
    ):
        self.impl = impl
        self.step = TrainStep(impl, loss_fn, tx, inputs)
        self._step = jax.jit(self.step) if jit else self.step
        self.params, self.state, self.opt_state = params, state, tx.init(params)
        self.loss: Any = None

    def initial(self) -> dict[str, Any]:
        return flat(*self.impl.to_canonical(self.params, self.state))

    def advance(self, batch: Batch, key: jax.Array | None) -> None:
        self.params, self.state, self.opt_state, self.loss = self._step(
            self.params, self.state, self.opt_state, batch, key
        )

    def values(self) -> dict[str, Any]:
        return flat(*self.impl.to_canonical(self.params, self.state), self.loss)

    def native(self) -> tuple[Params, State, optax.OptState]:
        return self.params, self.state, self.opt_state


class NativeRunner:
    """The implementation's own loop (`native_loop`), one `step` per batch."""

    def __init__(
        self, impl: Implementation, params: Params, state: State, tx: optax.GradientTransformation
    ):
        if not hasattr(impl, "native_loop"):
            raise TypeError(f"{impl.name}: has no native_loop; only the harness loops can run it")
        self.impl = impl
        self._initial = flat(*impl.to_canonical(params, state))
        self.loop = impl.native_loop(params, state, tx)
        self.loss: Any = None

    def initial(self) -> dict[str, Any]:
        return self._initial

    def advance(self, batch: Batch, key: jax.Array | None) -> None:
        self.loss = self.loop.step(batch) if key is None else self.loop.step(batch, key)

    def values(self) -> dict[str, Any]:
        # Copies on the device: a native loop may donate its buffers to its next step
        # (Keras's jitted train step does), and a run holds the last steps' values for the
        # window around a divergence; a canonical leaf may be the framework's own array.
        values = flat(*self.impl.to_canonical(*self.loop.read()), self.loss)
        return {k: jnp.copy(v) if isinstance(v, jax.Array) else v for k, v in values.items()}


class ScanRunner:
    """The harness's step inside `lax.scan`, many steps per call.

    With `chunk` None (or at least the number of steps) every step runs in one call, as
    `run_scan` always has; otherwise `chunk` steps at a time, the carry handed from one
    call to the next, so that only `chunk` steps of outputs (and of batches) are held.
    """

    def __init__(
        self,
        impl: Implementation,
        params: Params,
        state: State,
        tx: optax.GradientTransformation,
        loss_fn: Callable[[Any, Batch], Any],
        batches: Batch,
        keys: jax.Array | None,
        inputs: Callable[[Batch], Any] | None = None,
        *,
        jit: bool = True,
        chunk: int | None = None,
        host: bool = False,
    ):
        self.impl = impl
        self.batches, self.keys = batches, keys
        self.steps = int(np.shape(jax.tree.leaves(batches)[0])[0])
        self.chunk = self.steps if chunk is None else max(1, min(chunk, self.steps))
        self.host = host  # read each chunk back to the host at once (a recorded run)
        self._initial = flat(*impl.to_canonical(params, state))
        body = scan_body(TrainStep(impl, loss_fn, tx, inputs))

        def whole(params: Params, state: State, batches: Batch, keys: Any) -> Any:
            carry = (params, state, tx.init(params))
            _, history = jax.lax.scan(body, carry, (batches, keys))
            return history

        def part(carry: Any, batches: Batch, keys: Any) -> Any:
            return jax.lax.scan(body, carry, (batches, keys))

        self._whole = jax.jit(whole) if jit else whole
        self._part = jax.jit(part) if jit else part
        self._carry: Any = None
        self._params, self._state = params, state
        self._tx = tx
        self._start, self._history, self._done = 0, None, 0

    def initial(self) -> dict[str, Any]:
        return self._initial

    def advance(self, batch: Batch, key: jax.Array | None) -> None:
        del batch, key  # the scan reads its own slice of the stacked batches and keys
        if self._history is None or self._done - self._start >= self.chunk:
            self._run_chunk()
        self._done += 1

    def _run_chunk(self) -> None:
        start = self._done
        stop = min(start + self.chunk, self.steps)
        if start == 0 and stop == self.steps:
            history = self._whole(self._params, self._state, self.batches, self.keys)
        else:
            if self._carry is None:
                self._carry = (self._params, self._state, self._tx.init(self._params))
            batches = jax.tree.map(lambda a: a[start:stop], self.batches)
            keys = None if self.keys is None else self.keys[start:stop]
            self._carry, history = self._part(self._carry, batches, keys)
        if self.host:
            history = jax.device_get(history)
        self._start, self._history = start, history

    def values(self) -> dict[str, Any]:
        i = self._done - 1 - self._start
        assert self._history is not None
        losses, (cparams, cstate) = self._history
        pick = _host_row(i) if self.host else _row(i)  # host: NumPy views, no copies
        return flat(
            {k: pick(v) for k, v in cparams.items()},
            {k: pick(v) for k, v in cstate.items()},
            pick(losses),
        )


def _row(i: int) -> Callable[[jax.Array], jax.Array]:
    return lambda v: _take(v, i)


def _host_row(i: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda v: v[i]


@jax.jit
def _take(stacked: jax.Array, i: int) -> jax.Array:
    return stacked[i]
