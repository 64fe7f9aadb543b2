"""A Keras model or layer behind the harness protocol, with no adapter class to write.

The values are the model's trainable and non-trainable variables, in its variable order;
`stateless_call(trainable, non_trainable, x, training=...)` is the pure call, and
`training=` Keras's own train/eval switch. Names come from the variables' paths.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import keras
import optax
from jaxtyping import Array

from shared import RUNNING_AVERAGE, Canonical, NativeLoop, NativeTraining

from ._canonical import derived_name, keras_canonical, keras_from_canonical
from ._optim import harness_optimizer, keras_optimizer

STATS = ("moving_mean", "moving_variance")


class WrappedKeras(NativeTraining):
    """A Keras layer behind the protocol (see `wrap`)."""

    wrapped_by_rosetta = True
    model = ""
    name = "keras"

    def __init__(self, layer: keras.Layer):
        self.layer = layer

    def init(self, key: jax.Array, x: Any) -> tuple[list[Array], list[Array]]:
        """The layer's own values (Keras draws them from its global seed when it builds)."""
        if not self.layer.built:
            self.layer(x[:1], training=False)  # a Sequential builds on its first call
        self.meanings = {
            derived_name(v): RUNNING_AVERAGE
            for v in self.layer.non_trainable_variables
            if v.path.rsplit("/", 1)[-1] in STATS
        }
        return (
            [v.value for v in self.layer.trainable_variables],
            [v.value for v in self.layer.non_trainable_variables],
        )

    def apply(
        self, params: list[Array], state: list[Array], x: Any, *, train: bool, key: Any = None
    ) -> tuple[Array, list[Array]]:
        y, new_state = self.layer.stateless_call(params, state, x, training=train)
        return y, (list(new_state) if train else state)

    def native_loop(
        self, params: list[Array], state: list[Array], tx: optax.GradientTransformation
    ) -> NativeLoop:
        """Keras's loop on the JAX backend, as its guide to training loops in JAX writes it:
        `stateless_call` for the loss, Keras's own optimizer (the harness's hyperparameters)
        through `stateless_apply`, the three lists of values threaded through `jax.jit`."""
        loss, inputs = self.training()
        layer = self.layer
        optimizer = keras_optimizer(harness_optimizer(self.name, tx))
        optimizer.build(layer.trainable_variables)

        def compute_loss(trainable: Any, non_trainable: Any, batch: Any) -> Any:
            out, non_trainable = layer.stateless_call(
                trainable, non_trainable, inputs(batch), training=True
            )
            return loss(out, batch), non_trainable

        grad_fn = jax.value_and_grad(compute_loss, has_aux=True)

        @jax.jit
        def train_step(values: Any, batch: Any) -> tuple[Any, Array]:
            trainable, non_trainable, optimizer_values = values
            (value, non_trainable), grads = grad_fn(trainable, non_trainable, batch)
            trainable, optimizer_values = optimizer.stateless_apply(
                optimizer_values, grads, trainable
            )
            return (trainable, non_trainable, optimizer_values), value

        values = (list(params), list(state), [v.value for v in optimizer.variables])

        def step(batch: Any, *key: Array) -> Array:  # Keras draws dropout from its own seeds
            nonlocal values
            values, value = train_step(values, batch)
            return jnp.asarray(value, jnp.float32)

        def checkpoint() -> dict[str, list[Array]]:
            return dict(zip(("trainable", "non_trainable", "optimizer"), values, strict=True))

        def restore(restored: dict[str, list[Array]]) -> None:
            nonlocal values
            values = (restored["trainable"], restored["non_trainable"], restored["optimizer"])

        return NativeLoop(step, lambda: (values[0], values[1]), checkpoint, restore)

    def to_canonical(self, params: list[Array], state: list[Array]) -> tuple[Canonical, Canonical]:
        return (
            keras_canonical(self.layer.trainable_variables, params),
            keras_canonical(self.layer.non_trainable_variables, state),
        )

    def from_canonical(
        self, params: Canonical, state: Canonical
    ) -> tuple[list[Array], list[Array]]:
        return (
            keras_from_canonical(self.layer.trainable_variables, params),
            keras_from_canonical(self.layer.non_trainable_variables, state),
        )


def wrap(obj: Any, *, label: str = "model") -> WrappedKeras:
    """A Keras 3 model or layer (JAX backend) behind the protocol, built on the first
    batch if it is not built yet.

    **Raises:** `TypeError` naming `label` for anything but a `keras.Layer`.
    """
    if not isinstance(obj, keras.Layer):
        raise TypeError(f"{label} (keras): got a {type(obj).__qualname__}; expected a keras.Model")
    return WrappedKeras(obj)
