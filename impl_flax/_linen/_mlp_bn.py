"""The MLP with BatchNorm in Flax Linen: `nn.Dense`, `nn.BatchNorm`, `batch_stats`, `mutable`."""

from __future__ import annotations

from typing import Any, ClassVar

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float

from shared import Canonical, NativeLoop
from shared.models.mlp_bn import Labelled, MlpBnConfig, check_canonical, check_features, mlp_bn_loss

from ._native import TrainState, linen_native_loop


# --8<-- [start:linen-mlp-bn-model]
class MlpBn(nn.Module):
    """Dense -> BatchNorm -> relu -> Dense; BatchNorm settings left `None` keep Flax's default."""

    hidden: int = 32
    classes: int = 10
    dense1_bias: bool = True
    momentum: float | None = None
    epsilon: float | None = None
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: Float[Array, "batch features"], train: bool) -> Array:
        given = {
            "momentum": self.momentum,
            "epsilon": self.epsilon,
        }
        x = nn.Dense(self.hidden, use_bias=self.dense1_bias, name="dense1")(x)
        # --8<-- [start:linen-cross-device]
        x = nn.BatchNorm(
            use_running_average=not train,  # Linen's train/eval switch
            axis_name=self.axis_name,
            name="bn",
            **{k: v for k, v in given.items() if v is not None},
        )(x)
        # --8<-- [end:linen-cross-device]
        x = nn.relu(x)
        return nn.Dense(self.classes, name="dense2")(x)


# --8<-- [end:linen-mlp-bn-model]


# --8<-- [start:linen-mlp-bn-train-step]
@jax.jit
def train_step(state: TrainState, batch: Labelled) -> tuple[TrainState, Array]:
    def loss_fn(params):
        logits, updates = state.apply_fn(
            {"params": params, "batch_stats": state.batch_stats},
            batch.x,
            train=True,
            mutable=["batch_stats"],
        )
        return mlp_bn_loss(logits, batch), updates

    (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    state = state.apply_gradients(grads=grads, batch_stats=updates["batch_stats"])
    return state, loss


# --8<-- [end:linen-mlp-bn-train-step]


def module_for(config: MlpBnConfig) -> MlpBn:
    """The Linen module for a config: aligned settings, or Flax's defaults where kept."""
    return MlpBn(
        hidden=config.hidden,
        classes=config.classes,
        dense1_bias=config.dense1_bias,
        momentum=None if config.keeps("momentum") else config.momentum,
        epsilon=None if config.keeps("epsilon") else config.epsilon,
        axis_name=config.axis_name,
    )


class LinenMlpBn:
    """Adapter from the Linen MLP to the harness protocol."""

    name = "flax_linen"
    model = "mlp-bn"
    # The BatchNorm defaults that differ from the aligned settings.
    bn_defaults: ClassVar[dict[str, str]] = {"momentum": "momentum=0.99"}

    def __init__(self, config: MlpBnConfig):
        self.config = config
        self.module = module_for(config)

    def init(self, key: jax.Array, x: jax.Array) -> tuple[Any, Any]:
        check_features(self.name, x, self.config)
        state, params = flax.core.pop(self.module.init(key, x, train=True), "params")
        return params, state

    def apply(
        self, params: Any, state: Any, x: jax.Array, *, train: bool, key: jax.Array | None = None
    ) -> tuple[Array, Any]:
        check_features(self.name, x, self.config)
        variables = {"params": params, **state}
        if not train:
            return self.module.apply(variables, x, train=False), state
        return self.module.apply(variables, x, train=True, mutable=["batch_stats"])

    def to_canonical(self, params: Any, state: Any) -> tuple[Canonical, Canonical]:
        out = {
            "dense1.kernel": params["dense1"]["kernel"],
            "bn.scale": params["bn"]["scale"],
            "bn.bias": params["bn"]["bias"],
            "dense2.kernel": params["dense2"]["kernel"],
            "dense2.bias": params["dense2"]["bias"],
        }
        if self.config.dense1_bias:
            out["dense1.bias"] = params["dense1"]["bias"]
        stats = state["batch_stats"]["bn"]
        return out, {"bn.mean": stats["mean"], "bn.var": stats["var"]}

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[Any, Any]:
        check_canonical(self.name, params, state, self.config)
        p = {k: jnp.asarray(v) for k, v in params.items()}
        dense1 = {"kernel": p["dense1.kernel"]}
        if self.config.dense1_bias:
            dense1["bias"] = p["dense1.bias"]
        native = {
            "dense1": dense1,
            "bn": {"scale": p["bn.scale"], "bias": p["bn.bias"]},
            "dense2": {"kernel": p["dense2.kernel"], "bias": p["dense2.bias"]},
        }
        stats = {"mean": jnp.asarray(state["bn.mean"]), "var": jnp.asarray(state["bn.var"])}
        return native, {"batch_stats": {"bn": stats}}

    def native_loop(self, params: Any, state: Any, tx: optax.GradientTransformation) -> NativeLoop:
        return linen_native_loop(train_step, self.module.apply, params, state, tx)
