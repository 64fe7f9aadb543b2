"""The MLP with BatchNorm in Haiku: `hk.Linear`, `hk.BatchNorm`, `hk.transform_with_state`.

Haiku's BatchNorm keeps its running statistics in two `hk.ExponentialMovingAverage`s with
zero debiasing: `hidden <- d * hidden + (1 - d) * value` from `hidden = 0`, and the value
used at eval is `average = hidden / (1 - d**counter)`. The canonical `bn.mean`/`bn.var` are
the `average`s; `from_canonical` writes them into both `hidden` and `average` with the counter
at `SATURATED_COUNT`, where the debiasing divides by exactly 1.
"""

from __future__ import annotations

from typing import Any, ClassVar

import haiku as hk
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float

from shared import Canonical
from shared.models.mlp_bn import (
    SATURATED_COUNT,
    Labelled,
    MlpBnConfig,
    check_canonical,
    check_features,
    mlp_bn_loss,
)

from ._adapter import HaikuAdapter
from ._native import HaikuStep

RESNET_DECAY_RATE = 0.999
"""hk.BatchNorm's `decay_rate` has no default; this is `hk.nets.ResNet`'s `bn_config` default,
the value a Haiku user meets first, used when the framework keeps its defaults."""

MEAN_EMA = "mlp_bn/bn/~/mean_ema"
VAR_EMA = "mlp_bn/bn/~/var_ema"


# --8<-- [start:haiku-mlp-bn-model]
class MlpBn(hk.Module):
    """Dense -> BatchNorm -> relu -> Dense, with Haiku's train/eval switch `is_training`."""

    def __init__(
        self,
        hidden: int,
        classes: int,
        *,
        dense1_bias: bool = True,
        decay_rate: float = RESNET_DECAY_RATE,
        eps: float | None = None,
        cross_replica_axis: str | None = None,
        name: str | None = None,
    ):
        super().__init__(name=name)
        self.hidden = hidden
        self.classes = classes
        self.dense1_bias = dense1_bias
        self.decay_rate = decay_rate
        self.eps = eps
        self.cross_replica_axis = cross_replica_axis

    def __call__(self, x: Float[Array, "batch features"], is_training: bool) -> Array:
        x = hk.Linear(self.hidden, with_bias=self.dense1_bias, name="dense1")(x)
        eps: dict[str, Any] = {} if self.eps is None else {"eps": self.eps}
        # --8<-- [start:haiku-cross-device]
        x = hk.BatchNorm(
            create_scale=True,
            create_offset=True,
            decay_rate=self.decay_rate,
            cross_replica_axis=self.cross_replica_axis,
            name="bn",
            **eps,
        )(x, is_training=is_training)
        # --8<-- [end:haiku-cross-device]
        x = jax.nn.relu(x)
        return hk.Linear(self.classes, name="dense2")(x)


# --8<-- [end:haiku-mlp-bn-model]


def make_forward(config: MlpBnConfig) -> hk.TransformedWithState:
    """The transformed model: aligned BatchNorm settings, or Haiku's where kept."""

    def forward(x: Array, is_training: bool) -> Array:
        return MlpBn(
            config.hidden,
            config.classes,
            dense1_bias=config.dense1_bias,
            decay_rate=RESNET_DECAY_RATE if config.keeps("momentum") else config.momentum,
            eps=None if config.keeps("epsilon") else config.epsilon,
            cross_replica_axis=config.axis_name,
            name="mlp_bn",
        )(x, is_training)

    return hk.without_apply_rng(hk.transform_with_state(forward))


# --8<-- [start:haiku-mlp-bn-train-step]
def make_train_step(
    forward: hk.TransformedWithState, tx: optax.GradientTransformation
) -> HaikuStep:
    @jax.jit
    def train_step(
        params: hk.Params, state: hk.State, opt_state: optax.OptState, batch: Labelled
    ) -> tuple[hk.Params, hk.State, optax.OptState, Array]:
        def loss_fn(params: hk.Params) -> tuple[Array, hk.State]:
            logits, state_out = forward.apply(params, state, batch.x, is_training=True)
            return mlp_bn_loss(logits, batch), state_out

        (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), state, opt_state, loss

    return train_step


# --8<-- [end:haiku-mlp-bn-train-step]


class HaikuMlpBn(HaikuAdapter[MlpBnConfig]):
    """Adapter from the Haiku MLP to the harness protocol; its canonical names are its own
    (the running statistics are the EMAs' debiased averages)."""

    model = "mlp-bn"
    make_train_step = staticmethod(make_train_step)
    bn_defaults: ClassVar[dict[str, str]] = {  # defaults that differ from the aligned ones
        "momentum": "decay_rate=0.999 (hk.nets.ResNet's)",
        "state": "zero-debiased EMA from 0, counter 0",
    }

    def make(self) -> hk.TransformedWithState:
        return make_forward(self.config)

    def check(self, x: Any) -> None:
        check_features(self.name, x, self.config)

    def to_canonical(self, params: hk.Params, state: hk.State) -> tuple[Canonical, Canonical]:
        h = self.config.hidden
        out = {
            "dense1.kernel": params["mlp_bn/dense1"]["w"],
            "bn.scale": params["mlp_bn/bn"]["scale"].reshape(h),  # stored as (1, H)
            "bn.bias": params["mlp_bn/bn"]["offset"].reshape(h),
            "dense2.kernel": params["mlp_bn/dense2"]["w"],
            "dense2.bias": params["mlp_bn/dense2"]["b"],
        }
        if self.config.dense1_bias:
            out["dense1.bias"] = params["mlp_bn/dense1"]["b"]
        return out, {
            "bn.mean": state[MEAN_EMA]["average"].reshape(h),
            "bn.var": state[VAR_EMA]["average"].reshape(h),
        }

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[hk.Params, hk.State]:
        check_canonical(self.name, params, state, self.config)
        p = {k: jnp.asarray(v) for k, v in params.items()}
        h = self.config.hidden
        dense1 = {"w": p["dense1.kernel"]}
        if self.config.dense1_bias:
            dense1["b"] = p["dense1.bias"]
        native = {
            "mlp_bn/dense1": dense1,
            "mlp_bn/bn": {
                "scale": p["bn.scale"].reshape(1, h),
                "offset": p["bn.bias"].reshape(1, h),
            },
            "mlp_bn/dense2": {"w": p["dense2.kernel"], "b": p["dense2.bias"]},
        }

        def ema(value: Any) -> dict[str, Array]:
            v = jnp.asarray(value).reshape(1, h)
            return {"counter": jnp.int32(SATURATED_COUNT), "hidden": v, "average": v}

        return native, {MEAN_EMA: ema(state["bn.mean"]), VAR_EMA: ema(state["bn.var"])}
