"""The MLP with dropout in Equinox: `eqx.nn.Linear`, `eqx.nn.Dropout`, explicit keys.

Equinox keeps no random state: the model takes a `key` and hands it to its `eqx.nn.Dropout`
(a model with two dropout layers would split it). The Linears act on one example and are
`jax.vmap`ped over the batch; the dropout is called once on the whole (batch, hidden) array,
so one key draws the whole mask. `eqx.nn.inference_mode` switches the dropout off. The
model has no `StateIndex`, so its state is `None`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PyTree

from shared import Canonical, NativeLoop
from shared.models.mlp_bn import Labelled, check_features, mlp_bn_loss
from shared.models.mlp_dropout import MlpDropoutConfig, check_params, dropout_key

from ._adapter import EquinoxAdapter


# --8<-- [start:equinox-dropout-model]
class MlpDropout(eqx.Module):
    """Dense -> relu -> Dropout -> Dense, called on a whole batch."""

    dense1: eqx.nn.Linear
    dropout: eqx.nn.Dropout
    dense2: eqx.nn.Linear

    def __init__(self, features: int, hidden: int, classes: int, rate: float, *, key: Array):
        k1, k2 = jax.random.split(key)
        self.dense1 = eqx.nn.Linear(features, hidden, key=k1)
        self.dropout = eqx.nn.Dropout(rate)
        self.dense2 = eqx.nn.Linear(hidden, classes, key=k2)

    def __call__(self, x: Float[Array, "batch features"], *, key: Array | None = None) -> Array:
        h = jax.nn.relu(jax.vmap(self.dense1)(x))
        h = self.dropout(h, key=key)  # one key, one mask for the batch; off in inference mode
        return jax.vmap(self.dense2)(h)


# --8<-- [end:equinox-dropout-model]


# --8<-- [start:equinox-dropout-train-step]
@eqx.filter_value_and_grad
def compute_loss(model: MlpDropout, batch: Labelled, key: Array) -> Array:
    # Labelled.x may be NumPy outside a trace; under filter_jit it is an Array.
    return mlp_bn_loss(model(batch.x, key=key), batch)  # type: ignore[arg-type]


@eqx.filter_jit
def train_step(
    model: MlpDropout,
    opt_state: optax.OptState,
    batch: Labelled,
    root: Array,
    step: Array,
    tx: optax.GradientTransformation,
    key: Array | None = None,
) -> tuple[MlpDropout, optax.OptState, Array]:
    # The step folded into one root key: a run resumed at step k draws what the
    # uninterrupted run drew. An explicit `key` (aligned keys) is used as it is.
    key = jax.random.fold_in(root, step) if key is None else key
    loss, grads = compute_loss(model, batch, key)
    updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    return eqx.apply_updates(model, updates), opt_state, loss


# --8<-- [end:equinox-dropout-train-step]


class EquinoxMlpDropout(EquinoxAdapter[MlpDropoutConfig, MlpDropout]):
    """Adapter from the Equinox MLP with dropout to the harness protocol.

    Aligned keys: the model is called with `key=dropout_key(key, 0)`. Native keys: with the
    step's `key` itself; the native loop folds its own step counter into
    `jax.random.key(config.seed)`, as the harness derives its keys. The state is `None`.
    """

    model = "mlp-dropout"
    params_rename: Mapping[str, str] = {
        "dense1.weight": "dense1.kernel",
        "dense2.weight": "dense2.kernel",
    }
    transposed: Collection[str] = ("dense1.kernel", "dense2.kernel")

    def make(self, key: jax.Array) -> tuple[MlpDropout, None]:
        c = self.config
        return MlpDropout(c.features, c.hidden, c.classes, c.rate, key=key), None

    def check(self, x: Any) -> None:
        check_features(self.name, x, self.config)  # mlp-bn's inputs

    def apply(
        self,
        params: PyTree,
        state: eqx.nn.State | None,
        x: Any,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> tuple[Array, eqx.nn.State | None]:
        self.check(x)
        model = eqx.nn.inference_mode(self.combine(params), value=not train)
        if not train:
            return model(x), state
        if key is None:
            raise ValueError(
                f"{self.name}: mlp-dropout needs a key when training ({self.config.keys} mode)"
            )
        return model(x, key=dropout_key(key, 0) if self.config.aligned else key), state

    def from_canonical(
        self, params: Canonical, state: Canonical
    ) -> tuple[PyTree, eqx.nn.State | None]:
        check_params(self.name, params, self.config)
        if state:
            raise ValueError(
                f"{self.name}: unexpected canonical state entry {sorted(state)[0]!r}; "
                "Equinox's dropout keeps no state (its key is an argument)"
            )
        return super().from_canonical(params, state)

    def native_loop(
        self, params: PyTree, state: eqx.nn.State | None, tx: optax.GradientTransformation
    ) -> NativeLoop:
        """Equinox's loop: a Python step counter folded into `jax.random.key(config.seed)`
        inside the jitted step (native keys; the harness's `key` is ignored), or the
        harness's layer key passed to the model (aligned keys)."""
        model = self.combine(params)
        opt_state = tx.init(eqx.filter(model, eqx.is_array))
        root = jax.random.key(self.config.seed)
        steps = 0

        def step(batch: Labelled, key: jax.Array) -> Array:
            nonlocal model, opt_state, steps
            explicit = dropout_key(key, 0) if self.config.aligned else None
            # The counter as an array: filter_jit would treat a Python int as static.
            model, opt_state, loss = train_step(
                model, opt_state, batch, root, jnp.asarray(steps), tx, explicit
            )
            steps += 1
            return loss

        def checkpoint() -> dict[str, Any]:
            # The step counter is the dropout stream's state (see the Haiku loop).
            return {
                "model": eqx.filter(model, eqx.is_array),
                "opt_state": opt_state,
                "steps": steps,
            }

        def restore(restored: dict[str, Any]) -> None:
            nonlocal model, opt_state, steps
            model = eqx.combine(restored["model"], eqx.filter(model, eqx.is_array, inverse=True))
            opt_state, steps = restored["opt_state"], int(restored["steps"])

        return NativeLoop(step, lambda: (model, state), checkpoint, restore)
