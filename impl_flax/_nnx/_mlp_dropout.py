"""The MLP with dropout in Flax NNX: `nnx.Dropout`, an `nnx.Rngs` stream held as state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jaxtyping import Array, Float

from shared import Canonical, NativeLoop
from shared.models.mlp_bn import Labelled, check_features, mlp_bn_loss
from shared.models.mlp_dropout import MlpDropoutConfig, check_params, dropout_key

from ._adapter import NNXAdapter, NNXState
from ._canonical import nnx_canonical, nnx_from_canonical
from ._native import nnx_checkpoint


# --8<-- [start:nnx-dropout-model]
class MlpDropout(nnx.Module):
    """Dense -> relu -> Dropout -> Dense."""

    def __init__(self, features: int, hidden: int, classes: int, rate: float, *, rngs: nnx.Rngs):
        self.dense1 = nnx.Linear(features, hidden, rngs=rngs)
        # Given a "dropout" stream, the layer forks its own from it (kept in the model as
        # state: a key and a counter); without one it must be given a key on every call.
        self.dropout = nnx.Dropout(rate, rngs=rngs if "dropout" in rngs else None)
        self.dense2 = nnx.Linear(hidden, classes, rngs=rngs)

    def __call__(self, x: Float[Array, "batch features"], *, key: jax.Array | None = None) -> Array:
        x = nnx.relu(self.dense1(x))
        x = self.dropout(x, rngs=key)  # key None: draw from the layer's stream (count += 1)
        return self.dense2(x)


# --8<-- [end:nnx-dropout-model]


# --8<-- [start:nnx-dropout-train-step]
@nnx.jit
def train_step(
    model: MlpDropout,
    optimizer: nnx.Optimizer[MlpDropout],
    batch: Labelled,
    key: jax.Array | None = None,
) -> Array:
    def loss_fn(model: MlpDropout) -> Array:
        # key None: count += 1, kept. (Labelled.x may be NumPy outside a trace; under
        # nnx.jit it is an Array.)
        return mlp_bn_loss(model(batch.x, key=key), batch)  # type: ignore[arg-type]

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return cast(Array, loss)  # nnx.value_and_grad's annotation: Any


# --8<-- [end:nnx-dropout-train-step]


def _is_key(x: jax.Array) -> bool:
    return jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


class NNXMlpDropout(NNXAdapter[MlpDropoutConfig, MlpDropout]):
    """Adapter from the NNX MLP with dropout to the harness protocol (split once, merge per
    call).

    Aligned keys: the model holds no stream; `apply` passes `dropout_key(key, 0)` to the
    layer. Native keys: the model is built with `nnx.Rngs(dropout=config.seed)`, from which
    `nnx.Dropout` forks its own stream; that stream (`nnx.RngState`: a key and a counter) is
    the adapter's state, and the harness's `key` is ignored.
    """

    model = "mlp-dropout"

    def rngs(self, key: jax.Array) -> nnx.Rngs:
        """Params from `key`; in native mode, the dropout stream from the config's seed."""
        if self.config.aligned:
            return nnx.Rngs(params=key)
        return nnx.Rngs(params=key, dropout=self.config.seed)

    def make(self, rngs: nnx.Rngs) -> MlpDropout:
        c = self.config
        return MlpDropout(c.features, c.hidden, c.classes, c.rate, rngs=rngs)

    def check(self, x: Any) -> None:
        check_features(self.name, x, self.config)  # mlp-bn's inputs

    def split(self, model: MlpDropout) -> tuple[nnx.GraphDef[MlpDropout], NNXState, NNXState]:
        """The state is the dropout's stream, an `nnx.RngState` (empty with aligned keys)."""
        # nnx.split's annotation returns a variadic tuple (see NNXAdapter.split).
        graphdef, params, state = nnx.split(model, nnx.Param, nnx.RngState)  # type: ignore[misc]
        return graphdef, params, state

    def apply(
        self,
        params: NNXState,
        state: NNXState,
        x: Any,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> tuple[Array, NNXState]:
        self.check(x)
        model = self.merge(params, state)
        if not train:
            model.eval()  # NNX's train/eval switch
            return model(x), state
        model.train()
        if not self.config.aligned:
            logits = model(x)  # draws from the model's own stream
            return logits, nnx.state(model, nnx.RngState)
        if key is None:
            raise ValueError(f"{self.name}: mlp-dropout needs a key when training (aligned mode)")
        return model(x, key=dropout_key(key, 0)), state

    def to_canonical(self, params: NNXState, state: NNXState) -> tuple[Canonical, Canonical]:
        rng = nnx_canonical(state)  # e.g. "dropout.rngs.key", "dropout.rngs.count"
        return nnx_canonical(params), {
            k: jax.random.key_data(v) if _is_key(v) else v for k, v in rng.items()
        }

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[NNXState, NNXState]:
        check_params(self.name, params, self.config)
        new_params = nnx_from_canonical(self.abstract_params, params)
        if self.config.aligned:
            if state:
                raise ValueError(
                    f"{self.name}: mlp-dropout keeps no state with aligned keys; unexpected "
                    f"canonical state entry {sorted(state)[0]!r}"
                )
            return new_params, nnx_from_canonical(self.abstract_state, {})  # empty
        # A concrete model: its stream is the fresh one, nnx.Rngs(dropout=config.seed).
        _, _, fresh = self.split(self.make(self.rngs(jax.random.key(0))))
        if not state:
            return new_params, fresh
        try:
            restored = nnx_from_canonical(fresh, self._rng_values(fresh, state))
        except ValueError as e:
            raise ValueError(f"{self.name}: canonical state (the dropout stream): {e}") from None
        return new_params, restored

    def _rng_values(self, template: NNXState, state: Mapping[str, object]) -> dict[str, Array]:
        """Canonical RNG entries -> the stream's values, key data wrapped as typed keys."""
        named = nnx_canonical(template)
        out = {}
        for k, v in state.items():
            if k in named and _is_key(named[k]):
                impl = jax.random.key_impl(named[k])
                out[k] = jax.random.wrap_key_data(jnp.asarray(v, jnp.uint32), impl=impl)
            else:
                out[k] = jnp.asarray(v)
        return out

    def native_loop(
        self, params: NNXState, state: NNXState, tx: optax.GradientTransformation
    ) -> NativeLoop:
        """The model and an `nnx.Optimizer`, updated in place by the jitted `train_step`.

        Aligned: `step(batch, key)` passes `dropout_key(key, 0)` to the layer. Native: the
        key argument is ignored; the layer draws from the model's own stream.
        """
        model = self.merge(params, state)
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        model.train()

        def step(batch: Labelled, key: jax.Array | None = None) -> Array:
            if not self.config.aligned:
                return train_step(model, optimizer, batch)
            if key is None:
                raise ValueError(
                    f"{self.name}: mlp-dropout needs a key when training (aligned mode)"
                )
            return train_step(model, optimizer, batch, dropout_key(key, 0))

        return NativeLoop(
            step,
            lambda: (nnx.state(model, nnx.Param), nnx.state(model, nnx.RngState)),
            *nnx_checkpoint(model, optimizer),
        )
