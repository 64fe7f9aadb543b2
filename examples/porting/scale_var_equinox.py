"""The scale-and-shift layer with a running variance, ported to Equinox."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from scale_var import ScaleVarConfig  # the spec's config, from the file beside this one

import shared
from impl_equinox import (
    equinox_canonical,
    equinox_from_canonical,
    equinox_state_canonical,
    equinox_state_from_canonical,
)


class ScaleVar(eqx.Module):
    scale: jax.Array
    shift: jax.Array
    var_index: eqx.nn.StateIndex
    momentum: float = eqx.field(static=True)  # static: a traced float breaks bitwise equality
    eps: float = eqx.field(static=True)
    inference: bool  # toggled by eqx.nn.inference_mode

    def __init__(self, features: int, *, momentum: float = 0.9, eps: float = 1e-5):
        self.scale = jnp.ones((features,))
        self.shift = jnp.zeros((features,))
        self.var_index = eqx.nn.StateIndex(jnp.ones((features,)))
        self.momentum, self.eps = momentum, eps
        # Set here, not as a class default: a custom __init__ skips dataclass defaults, and
        # eqx.nn.inference_mode then finds no `inference` leaf to switch.
        self.inference = False

    def __call__(self, x: jax.Array, state: eqx.nn.State) -> tuple[jax.Array, eqx.nn.State]:
        var = state.get(self.var_index)
        if self.inference:
            v = var
        else:
            v = self.second_moment(x)
            state = state.set(self.var_index, self.momentum * var + (1.0 - self.momentum) * v)
        return x * jax.lax.rsqrt(v + self.eps) * self.scale + self.shift, state

    def second_moment(self, x: jax.Array) -> jax.Array:
        return jnp.mean(x**2, axis=0)


# The Equinox names differ from NNX's where the layouts differ: a mapping, not a converter.
STATE_NAMES = {"var_index": "var"}


class EquinoxScaleVar:
    """The harness's view of the Equinox layer: its arrays are the params, its State the state."""

    name = "equinox"
    model = "scale-var"
    layer = ScaleVar

    def __init__(self, config: ScaleVarConfig):
        self.config = config
        model, _ = self._make()
        _, self.static = eqx.partition(model, eqx.is_inexact_array)

    def _make(self):
        c = self.config
        return eqx.nn.make_with_state(self.layer)(c.features, momentum=c.momentum, eps=c.eps)

    def init(self, key, x):
        model, state = self._make()
        return eqx.filter(model, eqx.is_inexact_array), state

    def apply(self, params, state, x, *, train, key=None):
        model = eqx.nn.inference_mode(eqx.combine(params, self.static), value=not train)
        return model(x, state)

    def to_canonical(self, params, state):
        model = eqx.combine(params, self.static)
        return equinox_canonical(model), equinox_state_canonical(model, state, STATE_NAMES)

    def from_canonical(self, params, state):
        model, native_state = self._make()
        model = equinox_from_canonical(model, params)
        native_state = equinox_state_from_canonical(model, native_state, state, STATE_NAMES)
        return eqx.filter(model, eqx.is_inexact_array), native_state

    def native_loop(self, params, state, tx: optax.GradientTransformation) -> shared.NativeLoop:
        model = eqx.combine(params, self.static)
        opt_state = tx.init(eqx.filter(model, eqx.is_array))

        @eqx.filter_value_and_grad(has_aux=True)
        def compute_loss(model, state, batch):
            y, state = model(batch["x"], state)
            return jnp.mean((y - batch["y"]) ** 2), state

        @eqx.filter_jit
        def train_step(model, state, opt_state, batch):
            (loss, state), grads = compute_loss(model, state, batch)
            updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
            return eqx.apply_updates(model, updates), state, opt_state, loss

        def step(batch):
            nonlocal model, state, opt_state
            model, state, opt_state, loss = train_step(model, state, opt_state, batch)
            return loss

        return shared.NativeLoop(step, lambda: (eqx.filter(model, eqx.is_inexact_array), state))
