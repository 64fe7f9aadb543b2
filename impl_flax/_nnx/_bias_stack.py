"""The bias stack in Flax NNX: `nnx.Linear` and the NNX bias adder per block, held in
`nnx.List`s."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import optax
from flax import nnx
from jaxtyping import Array, Float

from shared import Canonical, NativeLoop
from shared.models.bias_stack import BiasStackConfig, check_stack_input

from .._initializers import identity_init
from ._bias_adder import BiasAdderWithRunningMean
from ._canonical import nnx_canonical, nnx_from_canonical
from ._native import nnx_native_loop
from ._variants import nnx_variants


class BiasStack(nnx.Module):
    """L blocks in sequence: `z = Linear(h)`, then `h = z - adder(z)`, the bias adder's
    `mean + bias` subtracted from the Linear layer's output.

    Flax 0.12 refuses a plain list of modules as an attribute (a list is static by default);
    `nnx.List` makes it data, its Variables found at `dense.0.kernel`, `layers.0.bias`, ...
    """

    def __init__(
        self,
        depth: int,
        features: int,
        *,
        rngs: nnx.Rngs,
        momentum: float = 0.9,
        axis_name: str | None = None,
    ):
        self.dense = nnx.List(
            [
                nnx.Linear(features, features, use_bias=False, kernel_init=identity_init, rngs=rngs)
                for _ in range(depth)
            ]
        )
        self.layers = nnx.List(
            [
                BiasAdderWithRunningMean(features, momentum=momentum, axis_name=axis_name)
                for _ in range(depth)
            ]
        )

    def __call__(self, x: Float[Array, "batch features"]) -> Array:
        h = x
        for dense, layer in zip(self.dense, self.layers, strict=True):
            z = dense(h)
            h = z - layer(z)  # model.train() / model.eval() reach every layer
        return h


@nnx.jit
def train_step(model: BiasStack, optimizer: nnx.Optimizer, x: Array) -> Array:
    def loss_fn(model):
        y = model(x)  # updates every layer's mean in place; nnx.grad carries the updates out
        return ((x - y) ** 2).sum()

    loss, grads = nnx.value_and_grad(loss_fn)(model)  # gradients w.r.t. nnx.Param only
    optimizer.update(model, grads)
    return loss


class NNXBiasStack:
    """Adapter from the NNX stack to the harness protocol (split once, merge per call)."""

    name = "flax_nnx"
    model = "bias-stack"

    def __init__(self, config: BiasStackConfig):
        self.config = config
        abstract = nnx.eval_shape(lambda: self._make_model(nnx.Rngs(0)))
        self.graphdef, self.abstract_params, self.abstract_state = nnx.split(
            abstract, nnx.Param, nnx.BatchStat
        )
        # NNX's `dense.{l}` -> the canonical `layers.{l}`.
        self.params_rename = {
            f"dense.{i}.kernel": f"layers.{i}.kernel" for i in range(config.depth)
        }

    def _make_model(self, rngs: nnx.Rngs) -> BiasStack:
        c = self.config
        return BiasStack(c.depth, c.features, rngs=rngs, momentum=c.momentum, axis_name=c.axis_name)

    def init(self, key: jax.Array, x: jax.Array) -> tuple[nnx.State, nnx.State]:
        check_stack_input(self.name, x, self.config)
        # Identity kernels, zero biases and means: the key is passed on but draws nothing.
        model = self._make_model(nnx.Rngs(key))
        _, params, state = nnx.split(model, nnx.Param, nnx.BatchStat)
        return params, state

    def _merge(self, params: nnx.State, state: nnx.State) -> BiasStack:
        # copy=True: fresh Variables, so that neither a trace nor the native loop mutates
        # the caller's params and state.
        return nnx.merge(self.graphdef, params, state, copy=True)

    def apply(
        self,
        params: nnx.State,
        state: nnx.State,
        x: jax.Array,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> tuple[Array, nnx.State]:
        check_stack_input(self.name, x, self.config)
        model = self._merge(params, state)
        model.train() if train else model.eval()
        y = model(x)
        return y, nnx.state(model, nnx.BatchStat)

    def to_canonical(self, params: nnx.State, state: nnx.State) -> tuple[Canonical, Canonical]:
        return nnx_canonical(params, self.params_rename), nnx_canonical(state)

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[nnx.State, nnx.State]:
        return (
            nnx_from_canonical(self.abstract_params, params, self.params_rename),
            nnx_from_canonical(self.abstract_state, state),
        )

    def native_loop(
        self, params: nnx.State, state: nnx.State, tx: optax.GradientTransformation
    ) -> NativeLoop:
        return nnx_native_loop(train_step, self._merge(params, state), tx)

    def native_variants(
        self, params: nnx.State, state: nnx.State, tx: optax.GradientTransformation
    ) -> Mapping[str, NativeLoop]:
        return nnx_variants(train_step, self._merge(params, state), tx)
