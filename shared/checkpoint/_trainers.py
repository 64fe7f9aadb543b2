"""Training that can stop and go on: each loop's objects, stepped, saved and restored.

A trainer holds what one loop keeps between steps. The harness and scan trainers keep the
native params and state and optax's state, and save them as they are; the native trainer
keeps whatever the framework's own loop keeps and saves what its `NativeLoop.checkpoint`
hands over (the framework's own idiom). Stepping a trainer runs the same compiled program
as `run_harness`, `run_scan` or `run_native`.
"""

from __future__ import annotations

from typing import Any

import jax
import optax

from ..core import (
    Batch,
    Batches,
    Canonical,
    Implementation,
    InputsFn,
    LossFn,
    Params,
    State,
    TrainStep,
    Trajectory,
    scan_body,
    unstack,
)


def _per_step(batches: Batches, keys: jax.Array | None) -> list[tuple[Batch, Any]]:
    per_step = unstack(batches)
    return list(zip(per_step, [None] * len(per_step) if keys is None else list(keys), strict=True))


class Trainer:
    """One loop's objects: `run` steps them, `checkpoint` and `restore` save and load them."""

    loop: str
    impl: Implementation

    def run(self, batches: Batches, keys: jax.Array | None, out: Trajectory) -> None:
        """Take one step per batch (stacked on a leading axis) with its key (`keys`, stacked
        likewise, or `None` for a deterministic model), recording each step into `out`."""
        raise NotImplementedError

    def canonical(self) -> tuple[Canonical, Canonical]:
        """The current params and state under canonical names."""
        raise NotImplementedError

    def checkpoint(self) -> Any:
        """Everything this loop needs to go on, as a pytree."""
        raise NotImplementedError

    def restore(self, tree: Any) -> None:
        """Go on from `tree`, a `checkpoint()` restored."""
        raise NotImplementedError


class HarnessTrainer(Trainer):
    """The harness loop: the jitted generic step, one call per batch."""

    loop = "harness"

    def __init__(
        self,
        impl: Implementation,
        params: Params,
        state: State,
        tx: optax.GradientTransformation,
        loss_fn: LossFn,
        inputs: InputsFn | None = None,
    ) -> None:
        self.impl = impl
        self.tx = tx
        self.train_step = TrainStep(impl, loss_fn, tx, inputs)
        self.jitted = jax.jit(self.compiled())
        self.params, self.state, self.opt_state = params, state, tx.init(params)

    def compiled(self) -> Any:
        """What `jitted` compiles: one step."""
        return self.train_step

    def run(self, batches: Batches, keys: jax.Array | None, out: Trajectory) -> None:
        for batch, key in _per_step(batches, keys):
            self.params, self.state, self.opt_state, loss = self.jitted(
                self.params, self.state, self.opt_state, batch, key
            )
            out.record_step(loss, *self.canonical())

    def canonical(self) -> tuple[Canonical, Canonical]:
        return self.impl.to_canonical(self.params, self.state)

    def checkpoint(self) -> Any:
        return {"params": self.params, "state": self.state, "opt_state": self.opt_state}

    def restore(self, tree: Any) -> None:
        self.params, self.state, self.opt_state = tree["params"], tree["state"], tree["opt_state"]


class ScanTrainer(HarnessTrainer):
    """The scan loop: the same generic step, all of a segment's steps in one `lax.scan`."""

    loop = "scan"

    def compiled(self) -> Any:
        """What `jitted` compiles: a segment of steps in one `lax.scan` (`run_scan`'s body)."""
        body = scan_body(self.train_step)

        def train(carry: Any, batches: Batch, keys: jax.Array | None) -> Any:
            return jax.lax.scan(body, carry, (batches, keys))

        return train

    def run(self, batches: Batches, keys: jax.Array | None, out: Trajectory) -> None:
        carry = (self.params, self.state, self.opt_state)
        (self.params, self.state, self.opt_state), history = self.jitted(carry, batches, keys)
        losses, (cparams, cstate) = jax.device_get(history)
        for s in range(len(losses)):
            out.record_step(
                losses[s],
                {k: v[s] for k, v in cparams.items()},
                {k: v[s] for k, v in cstate.items()},
            )


class NativeTrainer(Trainer):
    """The framework's own loop, saved and restored the framework's own way."""

    loop = "native"

    def __init__(
        self, impl: Implementation, params: Params, state: State, tx: optax.GradientTransformation
    ) -> None:
        if not hasattr(impl, "native_loop"):
            raise TypeError(f"{impl.name}: has no native_loop; only the harness loops can run it")
        self.impl = impl
        self.native = impl.native_loop(params, state, tx)
        if self.native.checkpoint is None or self.native.restore is None:
            raise TypeError(
                f"{impl.name}: its native loop cannot be checkpointed; expected a NativeLoop "
                "with checkpoint and restore"
            )

    def run(self, batches: Batches, keys: jax.Array | None, out: Trajectory) -> None:
        for batch, key in _per_step(batches, keys):
            loss = self.native.step(batch) if key is None else self.native.step(batch, key)
            out.record_step(loss, *self.canonical())

    def canonical(self) -> tuple[Canonical, Canonical]:
        return self.impl.to_canonical(*self.native.read())

    def checkpoint(self) -> Any:
        assert self.native.checkpoint is not None
        return self.native.checkpoint()

    def restore(self, tree: Any) -> None:
        assert self.native.restore is not None
        self.native.restore(tree)


def make_trainer(
    loop: str,
    impl: Implementation,
    params: Params,
    state: State,
    tx: optax.GradientTransformation,
    loss_fn: LossFn,
    inputs: InputsFn | None = None,
) -> Trainer:
    """A trainer for `loop` (`"harness"`, `"scan"` or `"native"`), from these values."""
    if loop == "harness":
        return HarnessTrainer(impl, params, state, tx, loss_fn, inputs)
    if loop == "scan":
        return ScanTrainer(impl, params, state, tx, loss_fn, inputs)
    if loop == "native":
        return NativeTrainer(impl, params, state, tx)
    raise ValueError(f"unknown loop {loop!r}; expected harness, native or scan")
