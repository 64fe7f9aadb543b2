"""The bias adder in Keras: `add_weight(trainable=False)` for the state, `Variable.assign`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import keras
import optax
from jaxtyping import Array, Float

from shared import NativeLoop
from shared.models.bias_adder import check_input

from ._adapter import KerasAdapter, built
from ._native import keras_native_loop
from ._variants import keras_variants


# --8<-- [start:keras-model]
class BiasAdderWithRunningMean(keras.layers.Layer):
    """The Flax page's model in Keras: the state is a non-trainable weight, assigned in call."""

    def __init__(
        self,
        momentum: float = 0.9,
        keepdims: bool = False,
        axis_name: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.momentum = momentum  # a Python float: a traced one breaks bitwise equality
        self.keepdims = keepdims  # True raises: assign() checks the variable's shape
        self.axis_name = axis_name

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        # --8<-- [start:keras-declare-param]
        self.bias = self.add_weight(shape=input_shape[1:], initializer="zeros", name="bias")
        # --8<-- [end:keras-declare-param]
        # --8<-- [start:keras-declare-state]
        self.mean = self.add_weight(
            shape=input_shape[1:], initializer="zeros", trainable=False, name="mean"
        )
        # --8<-- [end:keras-declare-state]

    # --8<-- [start:keras-write-state]
    def call(self, x: Float[Array, "batch features"], training: bool = False) -> Array:
        if training:
            batch_mean = keras.ops.mean(x, axis=0, keepdims=self.keepdims)
            if self.axis_name is not None:
                batch_mean = jax.lax.pmean(batch_mean, self.axis_name)
            self.mean.assign(self.momentum * self.mean + (1.0 - self.momentum) * batch_mean)
        return self.mean + self.bias

    # --8<-- [end:keras-write-state]


# --8<-- [end:keras-model]


# --8<-- [start:keras-train-step]
class BiasAdderModel(keras.Model):
    """The layer as a model for `compile`/`train_on_batch`; its loss is against its input."""

    def __init__(self, adder: BiasAdderWithRunningMean, **kwargs: Any):
        super().__init__(**kwargs)
        self.adder = adder

    def call(self, x: Float[Array, "batch features"], training: bool = False) -> Array:
        return self.adder(x, training=training)

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Array:
        return keras.ops.sum((x - y_pred) ** 2)


# --8<-- [end:keras-train-step]


class KerasBiasAdder(KerasAdapter):
    """Adapter from the Keras layer to the harness protocol (`stateless_call`)."""

    model = "bias-adder"

    def make(self) -> BiasAdderWithRunningMean:
        c = self.config
        # --8<-- [start:keras-init]
        layer = BiasAdderWithRunningMean(c.momentum, c.keepdims, c.axis_name, name="bias_adder")
        layer.build((None, c.features))  # creates the weights; nothing is called or updated
        # --8<-- [end:keras-init]
        return layer

    def check(self, x: jax.Array) -> None:
        check_input(self.name, x, self.config)

    def native_loop(
        self, params: list[Array], state: list[Array], tx: optax.GradientTransformation
    ) -> NativeLoop:
        model = BiasAdderModel(self.make(), name="bias_adder_model")
        return keras_native_loop(
            self.name, model, params, state, tx, lambda m, x: m.train_on_batch(x)
        )

    def native_variants(
        self, params: list[Array], state: list[Array], tx: optax.GradientTransformation
    ) -> Mapping[str, NativeLoop]:
        # stateless_call needs the model's own variables created (a call on zeros).
        model = built(BiasAdderModel(self.make(), name="bias_adder_model"), self.config.features)
        return keras_variants(model, params, state, tx)
