"""A Keras model or layer behind the harness protocol, with no adapter class to write.

The values are the model's trainable and non-trainable variables, in its variable order;
`stateless_call(trainable, non_trainable, x, training=...)` is the pure call, and
`training=` Keras's own train/eval switch. Names come from the variables' paths.
"""

from __future__ import annotations

from typing import Any

import jax
import keras
from jaxtyping import Array

from shared import RUNNING_AVERAGE, Canonical

from ._canonical import derived_name, keras_canonical, keras_from_canonical

STATS = ("moving_mean", "moving_variance")


class WrappedKeras:
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
