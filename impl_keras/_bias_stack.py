"""The bias stack in Keras: a `keras.Model` holding lists of `keras.layers.Dense` and of the
Keras bias adder layers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import keras
import optax
from jaxtyping import Array, Float

from shared import NativeLoop
from shared.models.bias_stack import BiasStackConfig, check_stack_input

from ._adapter import KerasAdapter, built
from ._bias_adder import BiasAdderWithRunningMean
from ._native import keras_native_loop
from ._variants import keras_variants


class BiasStack(keras.Model):
    """L blocks in sequence: `z = Dense(h)`, then `h = z - adder(z)`, the bias adder's
    `mean + bias` subtracted from the Dense layer's output.

    Keras tracks a list of layers assigned as an attribute: their variables are the model's,
    at paths `bias_stack/dense_0/kernel`, `bias_stack/layer_0/bias`, ... (`keras.Model.layers`
    is taken, hence `adders`).
    """

    def __init__(
        self,
        depth: int,
        features: int,
        momentum: float = 0.9,
        axis_name: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.denses = [
            keras.layers.Dense(
                features, use_bias=False, kernel_initializer="identity", name=f"dense_{i}"
            )
            for i in range(depth)
        ]
        self.adders = [
            BiasAdderWithRunningMean(momentum, axis_name=axis_name, name=f"layer_{i}")
            for i in range(depth)
        ]

    def call(self, x: Float[Array, "batch features"], training: bool = False) -> Array:
        h = x
        for dense, adder in zip(self.denses, self.adders, strict=True):
            z = dense(h)
            h = z - adder(z, training=training)
        return h

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Array:
        return keras.ops.sum((x - y_pred) ** 2)


class KerasBiasStack(KerasAdapter):
    """Adapter from the Keras stack to the harness protocol (`stateless_call`)."""

    model = "bias-stack"

    def __init__(self, config: BiasStackConfig):
        # The depth sets the names: Keras's `dense_{i}` and `layer_{i}` -> the canonical
        # `layers.{i}`.
        self.params_rename = {
            **{f"dense_{i}.kernel": f"layers.{i}.kernel" for i in range(config.depth)},
            **{f"layer_{i}.bias": f"layers.{i}.bias" for i in range(config.depth)},
        }
        self.state_rename = {f"layer_{i}.mean": f"layers.{i}.mean" for i in range(config.depth)}
        super().__init__(config)

    def make(self) -> BiasStack:
        c = self.config
        model = BiasStack(c.depth, c.features, c.momentum, c.axis_name, name="bias_stack")
        return built(model, c.features)  # one eval call: creates the weights, updates nothing

    def check(self, x: jax.Array) -> None:
        check_stack_input(self.name, x, self.config)

    def native_loop(
        self, params: list[Array], state: list[Array], tx: optax.GradientTransformation
    ) -> NativeLoop:
        return keras_native_loop(
            self.name, self.make(), params, state, tx, lambda m, x: m.train_on_batch(x)
        )

    def native_variants(
        self, params: list[Array], state: list[Array], tx: optax.GradientTransformation
    ) -> Mapping[str, NativeLoop]:
        return keras_variants(self.make(), params, state, tx)
