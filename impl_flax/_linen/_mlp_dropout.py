"""The MLP with dropout in Flax Linen: `nn.Dropout`, `rngs={"dropout": key}`, `make_rng`."""

from __future__ import annotations

from typing import Any, cast

import flax.linen as nn
import jax
import optax
from flax.training import train_state
from flax.typing import Collection, VariableDict
from jaxtyping import Array, Float

from shared import Canonical, NativeLoop
from shared.models.mlp_bn import Labelled, check_features, mlp_bn_loss
from shared.models.mlp_dropout import check_params, dropout_key

from ._adapter import LinenAdapter
from ._canonical import linen_canonical, linen_from_canonical


# --8<-- [start:linen-dropout-model]
class MlpDropout(nn.Module):
    """Dense -> relu -> Dropout -> Dense."""

    hidden: int = 32
    classes: int = 10
    rate: float = 0.1

    @nn.compact
    def __call__(
        self, x: Float[Array, "batch features"], train: bool, rng: jax.Array | None = None
    ) -> Array:
        x = nn.relu(nn.Dense(self.hidden, name="dense1")(x))
        # Linen's train/eval switch is `deterministic`. With `rng=None` the layer draws its key
        # with `self.make_rng("dropout")`, derived from `apply(..., rngs={"dropout": key})`;
        # a raw `rng` is used as it is.
        x = nn.Dropout(self.rate, name="dropout")(x, deterministic=not train, rng=rng)
        return nn.Dense(self.classes, name="dense2")(x)


# --8<-- [end:linen-dropout-model]


class TrainState(train_state.TrainState):
    """Linen's usual train state, plus the root of the dropout keys (Flax's dropout guide)."""

    key: jax.Array


# --8<-- [start:linen-dropout-train-step]
@jax.jit
def train_step(
    state: TrainState, batch: Labelled, rng: jax.Array | None = None
) -> tuple[TrainState, Array]:
    step_key = jax.random.fold_in(state.key, state.step)  # a new key every step, from one root

    def loss_fn(params: Collection) -> Array:
        logits = state.apply_fn(
            {"params": params},
            batch.x,
            train=True,
            rng=rng,  # a raw key for the layer (aligned keys); None: make_rng from `rngs`
            rngs={"dropout": step_key},
        )
        return mlp_bn_loss(logits, batch)

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), loss


# --8<-- [end:linen-dropout-train-step]


class LinenMlpDropout(LinenAdapter):
    """Adapter from the Linen MLP with dropout to the harness protocol.

    Linen keeps no random state: a key comes with every call. Aligned keys reach the layer
    as `rng=dropout_key(key, 0)`; native keys as `rngs={"dropout": key}`, from which
    `make_rng` derives the layer's own key (see the module's docstring). The state is `{}`.
    """

    model = "mlp-dropout"

    def make(self) -> MlpDropout:
        c = self.config
        return MlpDropout(hidden=c.hidden, classes=c.classes, rate=c.rate)

    def check(self, x: Any) -> None:
        check_features(self.name, x, self.config)  # mlp-bn's inputs

    def init(self, key: jax.Array, x: Any) -> tuple[Collection, VariableDict]:
        self.check(x)
        return self.module.init(key, x, train=False)["params"], {}  # no dropout key at init

    def apply(
        self,
        params: Collection,
        state: VariableDict,
        x: Any,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> tuple[Array, VariableDict]:
        if not train:
            return super().apply(params, state, x, train=False)
        self.check(x)
        if key is None:
            raise ValueError(
                f"{self.name}: mlp-dropout needs a key when training ({self.config.keys} mode)"
            )
        variables = {"params": params}
        if self.config.aligned:
            y = self.module.apply(variables, x, train=True, rng=dropout_key(key, 0))
        else:
            y = self.module.apply(variables, x, train=True, rngs={"dropout": key})
        return cast(Array, y), state  # apply's annotation is a union: it covers `mutable=`

    def to_canonical(self, params: Collection, state: VariableDict) -> tuple[Canonical, Canonical]:
        return linen_canonical(params), {}

    def from_canonical(
        self, params: Canonical, state: Canonical
    ) -> tuple[Collection, VariableDict]:
        check_params(self.name, params, self.config)
        if state:
            raise ValueError(
                f"{self.name}: mlp-dropout keeps no state; unexpected canonical state entry "
                f"{sorted(state)[0]!r}"
            )
        template = self.abstract_variables(train=False)["params"]
        return linen_from_canonical(template, params), {}

    def native_loop(
        self, params: Collection, state: VariableDict, tx: optax.GradientTransformation
    ) -> NativeLoop:
        """A `TrainState` holding the root key `jax.random.key(config.seed)`.

        Aligned: `step(batch, key)` passes `dropout_key(key, 0)` into the jitted step as
        the layer's raw key. Native: the key argument is ignored; the step folds
        `state.step` into the root key, as Flax's dropout guide does.
        """
        ts = TrainState.create(
            apply_fn=self.module.apply, params=params, tx=tx, key=jax.random.key(self.config.seed)
        )

        def step(batch: Labelled, key: jax.Array | None = None) -> Array:
            nonlocal ts
            if not self.config.aligned:
                ts, loss = train_step(ts, batch)
            elif key is None:
                raise ValueError(
                    f"{self.name}: mlp-dropout needs a key when training (aligned mode)"
                )
            else:
                ts, loss = train_step(ts, batch, dropout_key(key, 0))
            return cast(Array, loss)

        def restore(restored: TrainState) -> None:
            nonlocal ts
            ts = restored  # its step and root key are the dropout stream's state

        return NativeLoop(step, lambda: (ts.params, {}), lambda: ts, restore)
