"""The scale-and-shift layer with a running variance, written in Flax NNX."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from scale_var import ScaleVarConfig  # the spec's config, from the file beside this one

import shared
from impl_flax import nnx_canonical, nnx_from_canonical


class ScaleVar(nnx.Module):
    def __init__(self, features: int, *, momentum: float = 0.9, eps: float = 1e-5):
        self.scale = nnx.Param(jnp.ones((features,)))
        self.shift = nnx.Param(jnp.zeros((features,)))
        self.var = nnx.BatchStat(jnp.ones((features,)))
        self.momentum, self.eps = momentum, eps
        self.use_running_average = False  # set by model.train() / model.eval()

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.use_running_average:
            v = self.var[...]
        else:
            v = jnp.mean(x**2, axis=0)
            self.var[...] = self.momentum * self.var[...] + (1.0 - self.momentum) * v
        return x * jax.lax.rsqrt(v + self.eps) * self.scale[...] + self.shift[...]


class NNXScaleVar:
    """The harness's view of the NNX layer: split once, merge per call."""

    name = "nnx"
    model = "scale-var"

    def __init__(self, config: ScaleVarConfig):
        self.config = config
        self.graphdef = nnx.graphdef(nnx.eval_shape(self._make))

    def _make(self) -> ScaleVar:
        c = self.config
        return ScaleVar(c.features, momentum=c.momentum, eps=c.eps)

    def init(self, key, x):
        _, params, state = nnx.split(self._make(), nnx.Param, nnx.BatchStat)
        return params, state

    def apply(self, params, state, x, *, train, key=None):
        model = nnx.merge(self.graphdef, params, state, copy=True)
        model.train() if train else model.eval()
        return model(x), nnx.state(model, nnx.BatchStat)

    # Canonical names straight from NNX's own paths: {"scale", "shift"} and {"var"}.
    def to_canonical(self, params, state):
        return nnx_canonical(params), nnx_canonical(state)

    def from_canonical(self, params, state):
        _, p, s = nnx.split(self._make(), nnx.Param, nnx.BatchStat)
        return nnx_from_canonical(p, params), nnx_from_canonical(s, state)

    def native_loop(self, params, state, tx: optax.GradientTransformation) -> shared.NativeLoop:
        model = nnx.merge(self.graphdef, params, state, copy=True)
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

        @nnx.jit
        def train_step(model, optimizer, batch):
            def loss_fn(model):
                return jnp.mean((model(batch["x"]) - batch["y"]) ** 2)

            loss, grads = nnx.value_and_grad(loss_fn)(model)
            optimizer.update(model, grads)
            return loss

        return shared.NativeLoop(
            lambda batch: train_step(model, optimizer, batch),
            lambda: (nnx.state(model, nnx.Param), nnx.state(model, nnx.BatchStat)),
        )
