"""The MLP with BatchNorm in Flax NNX: `nnx.Linear`, `nnx.BatchStat`, `model.train()/eval()`."""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jaxtyping import Array, Float

from shared import Canonical, NativeLoop
from shared.models.mlp_bn import Labelled, MlpBnConfig, check_canonical, check_features, mlp_bn_loss

from ._native import nnx_native_loop


# --8<-- [start:nnx-mlp-bn-model]
class MlpBn(nnx.Module):
    """Dense -> BatchNorm -> relu -> Dense; `bn_kwargs` left out keep NNX's defaults."""

    def __init__(
        self,
        features: int,
        hidden: int,
        classes: int,
        *,
        dense1_bias: bool = True,
        rngs: nnx.Rngs,
        **bn_kwargs: Any,
    ):
        self.dense1 = nnx.Linear(features, hidden, use_bias=dense1_bias, rngs=rngs)
        self.bn = nnx.BatchNorm(hidden, rngs=rngs, **bn_kwargs)
        self.dense2 = nnx.Linear(hidden, classes, rngs=rngs)

    def __call__(self, x: Float[Array, "batch features"]) -> Array:
        return self.dense2(nnx.relu(self.bn(self.dense1(x))))


# --8<-- [end:nnx-mlp-bn-model]


# --8<-- [start:nnx-mlp-bn-train-step]
@nnx.jit
def train_step(model: MlpBn, optimizer: nnx.Optimizer, batch: Labelled) -> Array:
    def loss_fn(model):
        return mlp_bn_loss(model(batch.x), batch)  # updates model.bn's BatchStats in place

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


# --8<-- [end:nnx-mlp-bn-train-step]


def bn_kwargs(config: MlpBnConfig) -> dict[str, Any]:
    """nnx.BatchNorm's arguments: the aligned values, except where NNX's defaults are kept."""
    # --8<-- [start:nnx-cross-device]
    # The mapped axis (shard_map, vmap) to average the batch statistics over; None: this
    # device's batch only.
    kwargs: dict[str, Any] = {"axis_name": config.axis_name}
    # --8<-- [end:nnx-cross-device]
    if not config.keeps("momentum"):
        kwargs["momentum"] = config.momentum
    if not config.keeps("epsilon"):
        kwargs["epsilon"] = config.epsilon
    return kwargs


class NNXMlpBn:
    """Adapter from the NNX MLP to the harness protocol (split once, merge per call)."""

    name = "flax_nnx"
    model = "mlp-bn"
    # The BatchNorm defaults that differ from the aligned settings.
    bn_defaults: ClassVar[dict[str, str]] = {"momentum": "momentum=0.99"}

    def __init__(self, config: MlpBnConfig):
        self.config = config
        self.graphdef = nnx.graphdef(nnx.eval_shape(lambda: self._make_model(nnx.Rngs(0))))

    def _make_model(self, rngs: nnx.Rngs) -> MlpBn:
        c = self.config
        return MlpBn(
            c.features, c.hidden, c.classes, dense1_bias=c.dense1_bias, rngs=rngs, **bn_kwargs(c)
        )

    def init(self, key: jax.Array, x: jax.Array) -> tuple[nnx.State, nnx.State]:
        check_features(self.name, x, self.config)
        _, params, state = nnx.split(self._make_model(nnx.Rngs(key)), nnx.Param, nnx.BatchStat)
        return params, state

    def _merge(self, params: nnx.State, state: nnx.State) -> MlpBn:
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
        check_features(self.name, x, self.config)
        model = self._merge(params, state)
        model.train() if train else model.eval()  # NNX's train/eval switch
        logits = model(x)
        return logits, nnx.state(model, nnx.BatchStat)

    def to_canonical(self, params: nnx.State, state: nnx.State) -> tuple[Canonical, Canonical]:
        p, s = nnx.to_pure_dict(params), nnx.to_pure_dict(state)
        out = {
            "dense1.kernel": p["dense1"]["kernel"],
            "bn.scale": p["bn"]["scale"],
            "bn.bias": p["bn"]["bias"],
            "dense2.kernel": p["dense2"]["kernel"],
            "dense2.bias": p["dense2"]["bias"],
        }
        if self.config.dense1_bias:
            out["dense1.bias"] = p["dense1"]["bias"]
        return out, {"bn.mean": s["bn"]["mean"], "bn.var": s["bn"]["var"]}

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[nnx.State, nnx.State]:
        check_canonical(self.name, params, state, self.config)
        p = {k: jnp.asarray(v) for k, v in params.items()}
        dense1 = {"kernel": p["dense1.kernel"]}
        if self.config.dense1_bias:
            dense1["bias"] = p["dense1.bias"]
        _, new_params, new_state = nnx.split(
            nnx.eval_shape(lambda: self._make_model(nnx.Rngs(0))), nnx.Param, nnx.BatchStat
        )
        nnx.replace_by_pure_dict(
            new_params,
            {
                "dense1": dense1,
                "bn": {"scale": p["bn.scale"], "bias": p["bn.bias"]},
                "dense2": {"kernel": p["dense2.kernel"], "bias": p["dense2.bias"]},
            },
        )
        stats = {"mean": jnp.asarray(state["bn.mean"]), "var": jnp.asarray(state["bn.var"])}
        nnx.replace_by_pure_dict(new_state, {"bn": stats})
        return new_params, new_state

    def native_loop(
        self, params: nnx.State, state: nnx.State, tx: optax.GradientTransformation
    ) -> NativeLoop:
        return nnx_native_loop(train_step, self._merge(params, state), tx)
