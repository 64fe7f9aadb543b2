"""The bias adder in Flax NNX: `nnx.Param`, `nnx.BatchStat`, `nnx.Optimizer`, `nnx.jit`."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jaxtyping import Array, Float

from shared import Canonical, NativeLoop
from shared.models.bias_adder import BiasAdderConfig, check_input

from ._native import nnx_native_loop
from ._variants import nnx_variants


class BiasAdderWithRunningMean(nnx.Module):
    """The Flax page's model in NNX: state lives on the module as an `nnx.BatchStat`."""

    def __init__(
        self,
        features: int,
        *,
        momentum: float = 0.9,
        keepdims: bool = False,
        axis_name: str | None = None,
        use_running_average: bool = False,
    ):
        # --8<-- [start:nnx-declare-param]
        self.bias = nnx.Param(jnp.zeros((features,)))
        # --8<-- [end:nnx-declare-param]
        # --8<-- [start:nnx-declare-state]
        self.mean = nnx.BatchStat(jnp.zeros((features,)))
        # --8<-- [end:nnx-declare-state]
        self.momentum = momentum
        self.keepdims = keepdims
        self.axis_name = axis_name
        self.use_running_average = use_running_average  # set by model.train() / model.eval()

    # --8<-- [start:nnx-write-state]
    def __call__(self, x: Float[Array, "batch features"]) -> Array:
        if not self.use_running_average:
            batch_mean = jnp.mean(x, axis=0, keepdims=self.keepdims)
            if self.axis_name is not None:
                batch_mean = jax.lax.pmean(batch_mean, self.axis_name)
            self.mean[...] = self.momentum * self.mean[...] + (1.0 - self.momentum) * batch_mean
        return self.mean[...] + self.bias[...]

    # --8<-- [end:nnx-write-state]


# --8<-- [start:nnx-train-step]
@nnx.jit
def train_step(model: BiasAdderWithRunningMean, optimizer: nnx.Optimizer, x: Array) -> Array:
    # --8<-- [start:nnx-apply-update]
    def loss_fn(model):
        y = model(x)  # updates model.mean in place; nnx.grad carries the update out
        return ((x - y) ** 2).sum()

    # --8<-- [end:nnx-apply-update]

    loss, grads = nnx.value_and_grad(loss_fn)(model)  # gradients w.r.t. nnx.Param only
    optimizer.update(model, grads)
    return loss


# --8<-- [end:nnx-train-step]


class NNXBiasAdder:
    """Adapter from the NNX model to the harness protocol (split once, merge per call)."""

    name = "flax_nnx"
    model = "bias-adder"

    def __init__(self, config: BiasAdderConfig):
        self.config = config
        # The graph (structure and static attributes) is fixed; only the arrays travel.
        model = nnx.eval_shape(self._make_model)  # abstract: shapes only, nothing allocated
        # --8<-- [start:nnx-split]
        graphdef, params, state = nnx.split(model, nnx.Param, nnx.BatchStat)
        # --8<-- [end:nnx-split]
        self.graphdef = graphdef

    def _make_model(self) -> BiasAdderWithRunningMean:
        config = self.config
        # --8<-- [start:nnx-init]
        # The variables are made in __init__, which never calls the model: no state update.
        model = BiasAdderWithRunningMean(
            config.features,
            momentum=config.momentum,
            keepdims=config.keepdims,
            axis_name=config.axis_name,
        )
        # --8<-- [end:nnx-init]
        return model

    def init(self, key: jax.Array, x: jax.Array) -> tuple[nnx.State, nnx.State]:
        del key  # zeros: nothing random to draw
        check_input(self.name, x, self.config)
        _, params, state = nnx.split(self._make_model(), nnx.Param, nnx.BatchStat)
        return params, state

    def _merge(self, params: nnx.State, state: nnx.State) -> BiasAdderWithRunningMean:
        graphdef = self.graphdef
        # --8<-- [start:nnx-merge]
        # copy=True: fresh Variables, so that neither a trace nor the native loop mutates
        # the caller's params and state (NNX 0.12 merges the State's Variables by reference).
        model = nnx.merge(graphdef, params, state, copy=True)
        # --8<-- [end:nnx-merge]
        return model

    def apply(
        self,
        params: nnx.State,
        state: nnx.State,
        x: jax.Array,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> tuple[Array, nnx.State]:
        check_input(self.name, x, self.config)
        model = self._merge(params, state)
        # --8<-- [start:nnx-eval]
        model.train() if train else model.eval()
        y = model(x)
        # --8<-- [end:nnx-eval]
        return y, nnx.state(model, nnx.BatchStat)

    def to_canonical(self, params: nnx.State, state: nnx.State) -> tuple[Canonical, Canonical]:
        p, s = nnx.to_pure_dict(params), nnx.to_pure_dict(state)
        return {"bias": p["bias"]}, {"mean": s["mean"]}

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[nnx.State, nnx.State]:
        _, new_params, new_state = nnx.split(self._make_model(), nnx.Param, nnx.BatchStat)
        nnx.replace_by_pure_dict(new_params, {"bias": jnp.asarray(params["bias"])})
        nnx.replace_by_pure_dict(new_state, {"mean": jnp.asarray(state["mean"])})
        return new_params, new_state

    def native_loop(
        self, params: nnx.State, state: nnx.State, tx: optax.GradientTransformation
    ) -> NativeLoop:
        return nnx_native_loop(train_step, self._merge(params, state), tx)

    def native_variants(
        self, params: nnx.State, state: nnx.State, tx: optax.GradientTransformation
    ) -> Mapping[str, NativeLoop]:
        return nnx_variants(train_step, self._merge(params, state), tx)
