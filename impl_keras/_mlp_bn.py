"""The MLP with BatchNorm in Keras: `keras.layers.Dense`, `keras.layers.BatchNormalization`.

Keras's BatchNormalization keeps `moving_mean` and `moving_variance` as non-trainable
weights and updates them as `moving * momentum + batch * (1 - momentum)`, Flax's formula;
it takes the batch variance in two passes (`jnp.var`) and normalises as
`x * inv + (beta - mean * inv)` with `inv = gamma * rsqrt(var + eps)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import jax
import keras
import optax
from jaxtyping import Array, Float

from shared import Canonical, NativeLoop
from shared.models.mlp_bn import Labelled, MlpBnConfig, check_canonical, check_features, mlp_bn_loss

from ._adapter import KerasAdapter, built
from ._native import keras_native_loop
from ._optim import KERAS_DEFAULTS

MOMENTUM, EPSILON = 0.99, 1e-3
"""keras.layers.BatchNormalization's defaults."""


# --8<-- [start:keras-mlp-bn-model]
class MlpBn(keras.Model):
    """Dense -> BatchNorm -> relu -> Dense; Keras's `training` switch picks batch or moving
    statistics."""

    def __init__(
        self,
        hidden: int,
        classes: int,
        *,
        dense1_bias: bool = True,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.dense1 = keras.layers.Dense(hidden, use_bias=dense1_bias, name="dense1")
        self.bn = keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon, name="bn")
        self.dense2 = keras.layers.Dense(classes, name="dense2")

    def call(self, x: Float[Array, "batch features"], training: bool = False) -> Array:
        x = self.bn(self.dense1(x), training=training)  # training: update the moving stats
        return self.dense2(keras.ops.relu(x))

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Array:
        # The loss every framework trains on (optax's cross-entropy): Keras's built-in
        # SparseCategoricalCrossentropy rounds differently, a few ULP in the first step.
        return mlp_bn_loss(y_pred, Labelled(x, y))


# --8<-- [end:keras-mlp-bn-model]


# --8<-- [start:keras-mlp-bn-train]
def train_on_batch(model: MlpBn, batch: Labelled) -> float:
    return model.train_on_batch(batch.x, batch.labels)  # after model.compile(optimizer)


# --8<-- [end:keras-mlp-bn-train]


class KerasMlpBn(KerasAdapter):
    """Adapter from the Keras MLP to the harness protocol (`stateless_call`)."""

    model = "mlp-bn"
    params_rename: Mapping[str, str] = {"bn.gamma": "bn.scale", "bn.beta": "bn.bias"}
    state_rename: Mapping[str, str] = {
        "bn.moving_mean": "bn.mean",
        "bn.moving_variance": "bn.var",
    }
    bn_defaults: ClassVar[dict[str, str]] = {  # defaults that differ from the aligned ones
        "momentum": f"momentum={MOMENTUM}",
        "epsilon": f"epsilon={EPSILON}",
    }
    optimizer_defaults: ClassVar[dict[str, str]] = KERAS_DEFAULTS  # Keras's own, native loop

    def __init__(self, config: MlpBnConfig):
        # --8<-- [start:keras-cross-device]
        # Keras's cross-replica switch is BatchNormalization(synchronized=True), which the
        # JAX backend refuses: under --parallel shard_map each replica would keep its own
        # statistics, silently. Refuse the config instead (--parallel jit works: XLA sees
        # the whole batch).
        if config.axis_name is not None:
            raise ValueError(
                f"keras: mlp-bn with axis_name={config.axis_name!r}: "
                "keras.layers.BatchNormalization(synchronized=True) is only supported with the "
                "TensorFlow backend; expected axis_name=None"
            )
        # --8<-- [end:keras-cross-device]
        super().__init__(config)

    def make(self) -> MlpBn:
        c = self.config
        bn: dict[str, Any] = {}
        if not c.keeps("momentum"):
            bn["momentum"] = c.momentum
        if not c.keeps("epsilon"):
            bn["epsilon"] = c.epsilon
        model = MlpBn(c.hidden, c.classes, dense1_bias=c.dense1_bias, name="mlp_bn", **bn)
        return built(model, c.features)

    def check(self, x: jax.Array) -> None:
        check_features(self.name, x, self.config)

    def from_canonical(
        self, params: Canonical, state: Canonical
    ) -> tuple[list[Array], list[Array]]:
        check_canonical(self.name, params, state, self.config)
        return super().from_canonical(params, state)

    def native_loop(
        self, params: list[Array], state: list[Array], tx: optax.GradientTransformation
    ) -> NativeLoop:
        return keras_native_loop(
            self.name,
            self.make(),
            params,
            state,
            tx,
            train_on_batch,
            keep_optimizer_defaults=self.config.keeps("optimizer"),
        )
