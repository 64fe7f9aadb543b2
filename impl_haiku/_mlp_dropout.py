"""The MLP with dropout in Haiku: `hk.Linear`, `hk.dropout`, `hk.next_rng_key()`.

Haiku keeps no random state: `apply` takes a key (`rng`), and `hk.next_rng_key()` inside the
model derives a fresh key from it (an `hk.PRNGSequence` over `rng`: the first key is
`jax.random.split(rng)[1]`). `hk.dropout` itself takes its key explicitly, which is how
aligned keys give it the harness's key. The model is transformed `with_state` like mlp-bn's,
so its state is the empty `{}`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import haiku as hk
import jax
import optax
from jaxtyping import Array, Float

from shared import Canonical, NativeLoop
from shared.models.mlp_bn import Labelled, check_features, mlp_bn_loss
from shared.models.mlp_dropout import MlpDropoutConfig, check_params, dropout_key

from ._adapter import HaikuAdapter

DENSE1 = "mlp_dropout/dense1"
DENSE2 = "mlp_dropout/dense2"


# --8<-- [start:haiku-dropout-model]
class MlpDropout(hk.Module):
    """Dense -> relu -> dropout -> Dense, with Haiku's train/eval switch `is_training`."""

    def __init__(self, hidden: int, classes: int, rate: float, name: str | None = None):
        super().__init__(name=name)
        self.hidden = hidden
        self.classes = classes
        self.rate = rate

    def __call__(
        self,
        x: Float[Array, "batch features"],
        is_training: bool,
        dropout_rng: Array | None = None,
    ) -> Array:
        x = jax.nn.relu(hk.Linear(self.hidden, name="dense1")(x))
        if is_training:
            # A key derived from the `rng` given to `apply`, unless one is given explicitly.
            rng = hk.next_rng_key() if dropout_rng is None else dropout_rng
            x = hk.dropout(rng, self.rate, x)
        return hk.Linear(self.classes, name="dense2")(x)


# --8<-- [end:haiku-dropout-model]


def make_forward(config: MlpDropoutConfig) -> hk.TransformedWithState:
    """The transformed model; `apply(params, state, rng, x, is_training, dropout_rng=None)`."""

    def forward(x: Array, is_training: bool, dropout_rng: Array | None = None) -> Array:
        model = MlpDropout(config.hidden, config.classes, config.rate, name="mlp_dropout")
        return model(x, is_training, dropout_rng)

    return hk.transform_with_state(forward)


# --8<-- [start:haiku-dropout-train-step]
def make_train_step(
    forward: hk.TransformedWithState, tx: optax.GradientTransformation, root: jax.Array
) -> Callable[..., tuple[hk.Params, hk.State, optax.OptState, Array]]:
    @jax.jit
    def train_step(
        params: hk.Params,
        state: hk.State,
        opt_state: optax.OptState,
        batch: Labelled,
        step: int,
        dropout_rng: Array | None = None,
    ) -> tuple[hk.Params, hk.State, optax.OptState, Array]:
        # The step folded into one root key: a run resumed at step k draws what the
        # uninterrupted run drew. An explicit `dropout_rng` (aligned keys) takes precedence.
        rng = jax.random.fold_in(root, step)

        def loss_fn(params: hk.Params) -> tuple[Array, hk.State]:
            logits, state_out = forward.apply(
                params, state, rng, batch.x, is_training=True, dropout_rng=dropout_rng
            )
            return mlp_bn_loss(logits, batch), state_out

        (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), state, opt_state, loss

    return train_step


# --8<-- [end:haiku-dropout-train-step]


class HaikuMlpDropout(HaikuAdapter[MlpDropoutConfig]):
    """Adapter from the Haiku MLP with dropout to the harness protocol.

    Aligned keys: the dropout's key is `dropout_key(key, 0)`, given to `hk.dropout`
    explicitly. Native keys: `key` is `apply`'s `rng`, and the model draws
    `hk.next_rng_key()` from it; the native loop folds its own step counter into
    `jax.random.key(config.seed)`, as the harness derives its keys. The state is `{}`.
    """

    model = "mlp-dropout"
    params_rename: Mapping[str, str] = {
        f"{DENSE1}.w": "dense1.kernel",
        f"{DENSE1}.b": "dense1.bias",
        f"{DENSE2}.w": "dense2.kernel",
        f"{DENSE2}.b": "dense2.bias",
    }

    def make(self) -> hk.TransformedWithState:
        return make_forward(self.config)

    def check(self, x: Any) -> None:
        check_features(self.name, x, self.config)  # mlp-bn's inputs

    def apply(
        self,
        params: hk.Params,
        state: hk.State,
        x: Any,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> tuple[Array, hk.State]:
        self.check(x)
        if not train:
            return self.forward.apply(params, state, None, x, is_training=False)
        if key is None:
            raise ValueError(
                f"{self.name}: mlp-dropout needs a key when training ({self.config.keys} mode)"
            )
        if self.config.aligned:
            k = dropout_key(key, 0)
            return self.forward.apply(params, state, None, x, is_training=True, dropout_rng=k)
        return self.forward.apply(params, state, key, x, is_training=True)

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[hk.Params, hk.State]:
        check_params(self.name, params, self.config)
        if state:
            raise ValueError(
                f"{self.name}: unexpected canonical state entry {sorted(state)[0]!r}; "
                "Haiku's dropout keeps no state (its key is apply's rng)"
            )
        return super().from_canonical(params, state)

    def native_loop(
        self, params: hk.Params, state: hk.State, tx: optax.GradientTransformation
    ) -> NativeLoop:
        """Haiku's loop: a Python step counter folded into `jax.random.key(config.seed)`
        (native keys; the harness's `key` is ignored), or the harness's layer key given
        explicitly (aligned keys)."""
        train_step = make_train_step(self.forward, tx, jax.random.key(self.config.seed))
        opt_state = tx.init(params)
        steps = 0

        def step(batch: Labelled, key: jax.Array) -> Array:
            nonlocal params, state, opt_state, steps
            explicit = dropout_key(key, 0) if self.config.aligned else None
            params, state, opt_state, loss = train_step(
                params, state, opt_state, batch, steps, explicit
            )
            steps += 1
            return loss

        def checkpoint() -> dict[str, Any]:
            # The step counter is the dropout stream's state: without it a resumed run
            # would draw the masks of step 0 again.
            return {"params": params, "state": state, "opt_state": opt_state, "steps": steps}

        def restore(restored: dict[str, Any]) -> None:
            nonlocal params, state, opt_state, steps
            params, state, opt_state = restored["params"], restored["state"], restored["opt_state"]
            steps = int(restored["steps"])

        return NativeLoop(step, lambda: (params, state), checkpoint, restore)
