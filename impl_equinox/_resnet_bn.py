"""The small ResNet in Equinox: `eqx.nn.Conv2d`, `eqx.nn.BatchNorm`, per-example calls.

Equinox layers act on one example, channels first: each digit is a (1, 8, 8) CHW image and
the batch is a named `jax.vmap`, over which every `eqx.nn.BatchNorm` averages its
statistics. Its convolution kernels are OIHW; the canonical ones are HWIO, so the conversion
transposes them with the axes named (`.T`, which reverses all four, would give WHIO: right
shapes for a square kernel, wrong values). The running statistics convert as in mlp-bn.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Collection, Hashable, Mapping
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PyTree

from shared import Canonical
from shared.models.mlp_bn import SATURATED_COUNT, Labelled, check_features, mlp_bn_loss
from shared.models.resnet_bn import PADDING, ResNetBnConfig, check_canonical

from ._adapter import EquinoxAdapter
from ._mlp_bn import _debiased

AXIS = "batch"
OIHW_TO_HWIO = (2, 3, 1, 0)
HWIO_TO_OIHW = (3, 2, 0, 1)


def conv(cin: int, cout: int, kernel: int, stride: int = 1, *, key: jax.Array) -> eqx.nn.Conv2d:
    """A convolution without bias (BatchNorm follows), "SAME"-padded: Equinox's default
    padding is 0 ("VALID")."""
    return eqx.nn.Conv2d(cin, cout, kernel, stride=stride, padding=PADDING, use_bias=False, key=key)


# --8<-- [start:equinox-resnet-block]
class Block(eqx.Module):
    """conv, BatchNorm, relu, conv, BatchNorm, add the shortcut (projected where the shape
    changes), relu; on one CHW example."""

    conv1: eqx.nn.Conv2d
    bn1: eqx.nn.BatchNorm
    conv2: eqx.nn.Conv2d
    bn2: eqx.nn.BatchNorm
    proj: eqx.nn.Conv2d | None
    proj_bn: eqx.nn.BatchNorm | None

    def __init__(self, cin: int, cout: int, *, stride: int = 1, key: jax.Array, **bn: Any):
        k1, k2, k3 = jax.random.split(key, 3)
        # BatchNorm's input_size is the channel count: it normalises axis 0 of each example.
        self.conv1, self.bn1 = conv(cin, cout, 3, stride, key=k1), eqx.nn.BatchNorm(cout, **bn)
        self.conv2, self.bn2 = conv(cout, cout, 3, key=k2), eqx.nn.BatchNorm(cout, **bn)
        if cin != cout or stride != 1:
            self.proj, self.proj_bn = (
                conv(cin, cout, 1, stride, key=k3),
                eqx.nn.BatchNorm(cout, **bn),
            )
        else:
            self.proj, self.proj_bn = None, None

    def __call__(self, x: Float[Array, "c h w"], state: eqx.nn.State) -> tuple[Array, eqx.nn.State]:
        y, state = self.bn1(self.conv1(x), state)
        y, state = self.bn2(self.conv2(jax.nn.relu(y)), state)
        if self.proj is not None and self.proj_bn is not None:
            x, state = self.proj_bn(self.proj(x), state)
        return jax.nn.relu(x + y), state


# --8<-- [end:equinox-resnet-block]


class Stem(eqx.Module):
    """A 3x3 convolution, BatchNorm, relu."""

    conv: eqx.nn.Conv2d
    bn: eqx.nn.BatchNorm

    def __init__(self, cout: int, *, key: jax.Array, **bn: Any):
        self.conv, self.bn = conv(1, cout, 3, key=key), eqx.nn.BatchNorm(cout, **bn)

    def __call__(self, x: Float[Array, "c h w"], state: eqx.nn.State) -> tuple[Array, eqx.nn.State]:
        y, state = self.bn(self.conv(x), state)
        return jax.nn.relu(y), state


class Stage(eqx.Module):
    """Two residual blocks; the first may change the resolution and the channels."""

    block0: Block
    block1: Block

    def __init__(self, cin: int, cout: int, *, stride: int = 1, key: jax.Array, **bn: Any):
        k0, k1 = jax.random.split(key)
        self.block0 = Block(cin, cout, stride=stride, key=k0, **bn)
        self.block1 = Block(cout, cout, key=k1, **bn)

    def __call__(self, x: Float[Array, "c h w"], state: eqx.nn.State) -> tuple[Array, eqx.nn.State]:
        x, state = self.block0(x, state)
        return self.block1(x, state)


# --8<-- [start:equinox-resnet-model]
class ResNetBn(eqx.Module):
    """Stem, two stages, global average pooling, dense head; called on one example (vmap it
    over the batch)."""

    stem: Stem
    stage1: Stage
    stage2: Stage
    head: eqx.nn.Linear
    size: int = eqx.field(static=True)

    def __init__(
        self,
        config: ResNetBnConfig,
        *,
        key: jax.Array,
        axis_name: Hashable | tuple[Hashable, ...] = AXIS,
        **bn_kwargs: Any,
    ):
        k0, k1, k2, k3 = jax.random.split(key, 4)
        c1, c2 = config.channels
        bn = {"axis_name": axis_name, **bn_kwargs}  # every BatchNorm reduces over the vmap
        self.size = config.size
        self.stem = Stem(c1, key=k0, **bn)
        self.stage1 = Stage(c1, c1, key=k1, **bn)
        self.stage2 = Stage(c1, c2, stride=2, key=k2, **bn)
        self.head = eqx.nn.Linear(c2, config.classes, key=k3)

    def __call__(
        self, x: Float[Array, " pixels"], state: eqx.nn.State
    ) -> tuple[Array, eqx.nn.State]:
        x = x.reshape(1, self.size, self.size)  # CHW: Equinox's convolutions are channels-first
        x, state = self.stem(x, state)
        x, state = self.stage1(x, state)
        x, state = self.stage2(x, state)
        return self.head(jnp.mean(x, axis=(1, 2))), state  # global average pooling


def batched(
    model: ResNetBn, x: Float[Array, "batch pixels"], state: eqx.nn.State
) -> tuple[Array, eqx.nn.State]:
    """Run the per-example model on a batch: BatchNorm reduces over the named vmap axis."""
    return jax.vmap(model, axis_name=AXIS, in_axes=(0, None), out_axes=(0, None))(x, state)


# --8<-- [end:equinox-resnet-model]


@eqx.filter_value_and_grad(has_aux=True)
def compute_loss(
    model: ResNetBn, state: eqx.nn.State, batch: Labelled
) -> tuple[Array, eqx.nn.State]:
    logits, state = batched(model, batch.x, state)  # type: ignore[arg-type]
    return mlp_bn_loss(logits, batch), state


@eqx.filter_jit
def train_step(
    model: ResNetBn,
    state: eqx.nn.State,
    opt_state: optax.OptState,
    batch: Labelled,
    tx: optax.GradientTransformation,
) -> tuple[ResNetBn, eqx.nn.State, optax.OptState, Array]:
    (loss, state), grads = compute_loss(model, state, batch)
    updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    model = eqx.apply_updates(model, updates)
    return model, state, opt_state, loss


def bn_kwargs(config: ResNetBnConfig) -> dict[str, Any]:
    """eqx.nn.BatchNorm's arguments: the aligned values, except where Equinox's are kept."""
    kwargs: dict[str, Any] = {}
    if not config.keeps("momentum"):
        kwargs["momentum"] = config.momentum
    if not config.keeps("epsilon"):
        kwargs["eps"] = config.epsilon
    if not config.keeps("mode"):
        kwargs["mode"] = "batch"
    return kwargs


def _at(model: Any, path: str) -> Any:
    """The submodule at a canonical layer path, `"stage1.block0.bn1"`."""
    return functools.reduce(getattr, path.split("."), model)


class EquinoxResNetBn(EquinoxAdapter[ResNetBnConfig, ResNetBn]):
    """Adapter from the Equinox ResNet to the harness protocol: kernels OIHW <-> HWIO, the
    head's weight (out, in) <-> (in, out), every BatchNorm's statistics as mlp-bn's."""

    model = "resnet-bn"
    train_step = staticmethod(train_step)
    transposed: Collection[str] = ("head.kernel",)  # eqx.nn.Linear: (out, in)
    batch_axis: str | None = AXIS
    bn_defaults: ClassVar[dict[str, str]] = {  # defaults that differ from the aligned ones
        "momentum": "momentum=0.99",
        "mode": "mode='ema' (unset)",
        "state": "counter 0: debiases a var EMA that starts at 1",
    }

    def __init__(self, config: ResNetBnConfig):
        layers = config.layers()
        self.params_rename: Mapping[str, str] = {
            "head.weight": "head.kernel",
            **{f"{layer.conv}.weight": f"{layer.conv}.kernel" for layer in layers},
            **{f"{layer.bn}.weight": f"{layer.bn}.scale" for layer in layers},
        }
        self.kernels = tuple(f"{layer.conv}.kernel" for layer in layers)
        super().__init__(config)

    def make(self, key: jax.Array) -> tuple[ResNetBn, eqx.nn.State]:
        c = self.config
        # BatchNorm averages over its own vmap axis; data-parallel, over the devices' too.
        axis_name = AXIS if c.axis_name is None else (AXIS, c.axis_name)
        with warnings.catch_warnings():
            # Equinox warns when `mode` is left unset; keeping that default is the point of
            # `native_defaults=("mode",)`, and the report names it.
            warnings.filterwarnings("ignore", message=".*BatchNorm.*mode.*")
            return eqx.nn.make_with_state(ResNetBn)(c, key=key, axis_name=axis_name, **bn_kwargs(c))

    def check(self, x: Any) -> None:
        check_features(self.name, x, self.config)

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
        if state is None:
            raise ValueError(f"{self.name}: resnet-bn needs its eqx.nn.State (BatchNorm's)")
        model = eqx.nn.inference_mode(self.combine(params), value=not train)
        return batched(model, x, state)

    def to_canonical(
        self, params: PyTree, state: eqx.nn.State | None
    ) -> tuple[Canonical, Canonical]:
        cparams, cstate = super().to_canonical(params, state)  # renamed; the head transposed
        # eqx.nn.Conv2d's weight is OIHW: canonical is HWIO.
        hwio = {
            k: jnp.transpose(v, OIHW_TO_HWIO) if k in self.kernels else v
            for k, v in cparams.items()
        }
        return hwio, cstate

    def from_canonical(
        self, params: Canonical, state: Canonical
    ) -> tuple[PyTree, eqx.nn.State | None]:
        check_canonical(self.name, params, state, self.config)
        oihw = {
            k: jnp.transpose(jnp.asarray(v), HWIO_TO_OIHW) if k in self.kernels else v
            for k, v in params.items()
        }
        return super().from_canonical(oihw, state)

    def state_to_canonical(self, state: eqx.nn.State) -> Canonical:
        """The running statistics every BatchNorm normalises with at inference."""
        out: dict[str, Array] = {}
        for layer in self.config.layers():
            bn = _at(self.static, layer.bn)
            if bn.mode == "batch":
                # Exactly what eqx.nn.BatchNorm computes at inference.
                counter = state.get(bn.batch_counter)
                hidden_mean, hidden_var = state.get(bn.batch_state_index)
                mean, var = _debiased(hidden_mean, hidden_var, counter, bn.momentum)
            else:
                mean, var = state.get(bn.ema_state_index)
            out[f"{layer.bn}.mean"], out[f"{layer.bn}.var"] = mean, var
        return out

    def state_from_canonical(
        self, model: ResNetBn, template: eqx.nn.State, state: Canonical
    ) -> eqx.nn.State:
        """Every BatchNorm's statistics as its own state: in `mode="batch"` with the counter
        at `SATURATED_COUNT`, in `mode="ema"` with the first-call flag off."""
        native_state = template
        for layer in self.config.layers():
            bn = _at(model, layer.bn)
            stats = (jnp.asarray(state[f"{layer.bn}.mean"]), jnp.asarray(state[f"{layer.bn}.var"]))
            if bn.mode == "batch":
                assert bn.batch_counter is not None and bn.batch_state_index is not None
                native_state = native_state.set(bn.batch_counter, jnp.asarray(SATURATED_COUNT))
                native_state = native_state.set(bn.batch_state_index, stats)
            else:
                assert bn.ema_first_time_index is not None and bn.ema_state_index is not None
                native_state = native_state.set(bn.ema_first_time_index, jnp.array(False))
                native_state = native_state.set(bn.ema_state_index, stats)
        return native_state
