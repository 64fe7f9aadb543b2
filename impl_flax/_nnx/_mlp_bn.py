"""The MLP with BatchNorm in Flax NNX: `nnx.Linear`, `nnx.BatchStat`, `model.train()/eval()`."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from flax import nnx
from jaxtyping import Array, Float

from shared import Canonical
from shared.models.mlp_bn import Labelled, MlpBnConfig, check_canonical, check_features, mlp_bn_loss

from ._adapter import NNXAdapter, NNXState


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
def train_step(model: MlpBn, optimizer: nnx.Optimizer[MlpBn], batch: Labelled) -> Array:
    def loss_fn(model: MlpBn) -> Array:
        # Updates model.bn's BatchStats in place. (Labelled.x may be NumPy outside a trace;
        # under nnx.jit it is an Array.)
        return mlp_bn_loss(model(batch.x), batch)  # type: ignore[arg-type]

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return cast(Array, loss)  # nnx.value_and_grad's annotation: Any


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


class NNXMlpBn(NNXAdapter[MlpBnConfig, MlpBn]):
    """Adapter from the NNX MLP to the harness protocol (split once, merge per call)."""

    model = "mlp-bn"
    train_step = staticmethod(train_step)
    # The BatchNorm defaults that differ from the aligned settings.
    bn_defaults: ClassVar[dict[str, str]] = {"momentum": "momentum=0.99"}

    def make(self, rngs: nnx.Rngs) -> MlpBn:
        c = self.config
        return MlpBn(
            c.features, c.hidden, c.classes, dense1_bias=c.dense1_bias, rngs=rngs, **bn_kwargs(c)
        )

    def check(self, x: Any) -> None:
        check_features(self.name, x, self.config)

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[NNXState, NNXState]:
        check_canonical(self.name, params, state, self.config)
        return super().from_canonical(params, state)
