"""The MLP with BatchNorm in Flax Linen: `nn.Dense`, `nn.BatchNorm`, `batch_stats`, `mutable`."""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax
from flax.typing import Collection, VariableDict
from jaxtyping import Array, Float

from shared import Canonical
from shared.models.mlp_bn import Labelled, check_canonical, check_features, mlp_bn_loss

from ._adapter import LinenAdapter
from ._native import TrainState


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
        given: dict[str, Any] = {
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
    def loss_fn(params: Collection) -> tuple[Array, VariableDict]:
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


class LinenMlpBn(LinenAdapter):
    """Adapter from the Linen MLP to the harness protocol."""

    model = "mlp-bn"
    train_step = staticmethod(train_step)
    # The BatchNorm defaults that differ from the aligned settings.
    bn_defaults: ClassVar[dict[str, str]] = {"momentum": "momentum=0.99"}

    def make(self) -> MlpBn:
        """The module for the config: aligned settings, or Flax's defaults where kept."""
        c = self.config
        return MlpBn(
            hidden=c.hidden,
            classes=c.classes,
            dense1_bias=c.dense1_bias,
            momentum=None if c.keeps("momentum") else c.momentum,
            epsilon=None if c.keeps("epsilon") else c.epsilon,
            axis_name=c.axis_name,
        )

    def check(self, x: Any) -> None:
        check_features(self.name, x, self.config)

    def from_canonical(
        self, params: Canonical, state: Canonical
    ) -> tuple[Collection, VariableDict]:
        check_canonical(self.name, params, state, self.config)
        return super().from_canonical(params, state)
