"""The MLP with dropout in Keras: `keras.layers.Dropout`, whose `SeedGenerator` is state.

Keras keeps a dropout layer's randomness in the model: its `SeedGenerator` holds a (2,)
uint32 seed as a non-trainable variable, hands it to `jax.random.bernoulli` as the key of
the call, and advances it by `[0, 1]`. Under `stateless_call` that variable is one of the
non-trainable values in and out, like BatchNorm's statistics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import keras
import optax
from jaxtyping import Array, Float

from shared import Canonical, NativeLoop
from shared.models.mlp_bn import Labelled, check_features, mlp_bn_loss
from shared.models.mlp_dropout import check_params, dropout_key

from ._adapter import KerasAdapter, built, values
from ._canonical import keras_canonical
from ._native import keras_native_loop


# --8<-- [start:keras-dropout-model]
class MlpDropout(keras.Model):
    """Dense -> relu -> Dropout -> Dense."""

    def __init__(self, hidden: int, classes: int, rate: float, *, seed: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.dense1 = keras.layers.Dense(hidden, activation="relu", name="dense1")
        # An explicit seed: unseeded, each layer draws one at random when it is built.
        self.dropout = keras.layers.Dropout(rate, seed=seed, name="dropout")
        self.dense2 = keras.layers.Dense(classes, name="dense2")

    def call(self, x: Float[Array, "batch features"], training: bool = False) -> Array:
        return self.dense2(self.dropout(self.dense1(x), training=training))

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Array:
        return mlp_bn_loss(y_pred, Labelled(x, y))  # optax's cross-entropy, as everywhere


# --8<-- [end:keras-dropout-model]


# --8<-- [start:keras-dropout-key]
def set_dropout_key(model: MlpDropout, key: jax.Array) -> None:
    """Aligned keys: the dropout's next draw uses `key` (its seed state is the key's data)."""
    model.dropout.seed_generator.state.assign(jax.random.key_data(key))


# --8<-- [end:keras-dropout-key]


class KerasMlpDropout(KerasAdapter):
    """Adapter from the Keras MLP with dropout to the harness protocol (`stateless_call`).

    Native keys: the state is the dropout's seed (canonical `"dropout.seed"`), threaded
    through every call and advanced by Keras; the harness's `key` is ignored. Aligned keys:
    the seed given to each call is `dropout_key(key, 0)`'s data, and the canonical state is
    empty, as in the other frameworks.
    """

    model = "mlp-dropout"
    # The seed generator's variable is named outside the model:
    # "seed_generator/seed_generator_state".
    state_rename: Mapping[str, str] = {"seed_generator_state": "dropout.seed"}

    def make(self) -> MlpDropout:
        c = self.config
        model = MlpDropout(c.hidden, c.classes, c.rate, seed=c.seed, name="mlp_dropout")
        return built(model, c.features)

    def check(self, x: jax.Array) -> None:
        check_features(self.name, x, self.config)

    def _with_key(self, state: list[Array], key: jax.Array | None) -> list[Array]:
        if key is None:
            raise ValueError(f"{self.name}: mlp-dropout needs a key when training (aligned mode)")
        seed = self.layer.dropout.seed_generator.state
        index = next(i for i, v in enumerate(self.layer.non_trainable_variables) if v is seed)
        out = list(state)
        out[index] = jax.random.key_data(dropout_key(key, 0))
        return out

    def apply(
        self,
        params: list[Array],
        state: list[Array],
        x: Any,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> tuple[Array, list[Array]]:
        if not (train and self.config.aligned):
            return super().apply(params, state, x, train=train)
        y, _ = super().apply(params, self._with_key(state, key), x, train=True)
        return y, state  # aligned: the seed is the step's, not state carried between steps

    def to_canonical(self, params: list[Array], state: list[Array]) -> tuple[Canonical, Canonical]:
        cparams, cstate = super().to_canonical(params, state)
        return cparams, {} if self.config.aligned else cstate

    def from_canonical(
        self, params: Canonical, state: Canonical
    ) -> tuple[list[Array], list[Array]]:
        check_params(self.name, params, self.config)
        if self.config.aligned and state:
            raise ValueError(
                f"{self.name}: mlp-dropout keeps no state with aligned keys; unexpected "
                f"canonical state entry {sorted(state)[0]!r}"
            )
        if not state:  # the fresh seed, SeedGenerator(config.seed)'s
            fresh = values(self.make().non_trainable_variables)
            state = keras_canonical(self.layer.non_trainable_variables, fresh, self.state_rename)
        return super().from_canonical(params, state)

    def native_loop(
        self, params: list[Array], state: list[Array], tx: optax.GradientTransformation
    ) -> NativeLoop:
        """Keras's loop. Aligned: the step's layer key is written into the dropout's seed
        before each `train_on_batch`. Native: the key argument is ignored."""
        aligned = self.config.aligned

        # --8<-- [start:keras-dropout-train-step]
        def train_on_batch(model: MlpDropout, batch: Labelled, key: jax.Array) -> float:
            if aligned:
                set_dropout_key(model, dropout_key(key, 0))
            return model.train_on_batch(batch.x, batch.labels)

        # --8<-- [end:keras-dropout-train-step]
        return keras_native_loop(self.name, self.make(), params, state, tx, train_on_batch)
