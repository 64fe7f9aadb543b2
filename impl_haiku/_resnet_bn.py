"""The small ResNet in Haiku: `hk.Conv2D`, `hk.BatchNorm`, `hk.transform_with_state`.

Haiku's kernels are HWIO, the canonical layout; its BatchNorm keeps scale, offset and both
running statistics shaped to broadcast against the NHWC input, (1, 1, 1, C), where the
canonical ones are (C,). The running statistics are zero-debiased EMAs, converted as in
mlp-bn (the counter at `SATURATED_COUNT`: the debiasing divides by exactly 1).
"""

from __future__ import annotations

from typing import Any, ClassVar

import haiku as hk
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from shared import Canonical
from shared.models.mlp_bn import SATURATED_COUNT, check_features
from shared.models.resnet_bn import BLOCKS, PADDING, ResNetBnConfig, check_canonical

from ._adapter import HaikuAdapter

# mlp-bn's step, unchanged: digits, cross-entropy, `is_training=True`.
from ._mlp_bn import RESNET_DECAY_RATE, make_train_step

NAME = "resnet_bn"


def conv(channels: int, kernel: int, stride: int = 1, *, name: str) -> hk.Conv2D:
    """A convolution without bias (BatchNorm follows), "SAME"-padded (Haiku's default,
    said anyway, as every framework says it)."""
    return hk.Conv2D(channels, kernel, stride=stride, with_bias=False, padding=PADDING, name=name)


# --8<-- [start:haiku-resnet-block]
class Block(hk.Module):
    """conv, BatchNorm, relu, conv, BatchNorm, add the shortcut (projected where the shape
    changes), relu."""

    def __init__(self, channels: int, stride: int, bn: dict[str, Any], *, name: str | None = None):
        super().__init__(name=name)
        self.channels, self.stride, self.bn = channels, stride, bn

    def __call__(self, x: Float[Array, "batch h w c"], is_training: bool) -> Array:
        def norm(name: str) -> hk.BatchNorm:
            # create_scale and create_offset have no defaults in Haiku.
            return hk.BatchNorm(create_scale=True, create_offset=True, name=name, **self.bn)

        y = conv(self.channels, 3, self.stride, name="conv1")(x)
        y = jax.nn.relu(norm("bn1")(y, is_training))
        y = conv(self.channels, 3, name="conv2")(y)
        y = norm("bn2")(y, is_training)
        if x.shape[-1] != self.channels or self.stride != 1:
            x = conv(self.channels, 1, self.stride, name="proj")(x)
            x = norm("proj_bn")(x, is_training)
        return jax.nn.relu(x + y)


# --8<-- [end:haiku-resnet-block]


# --8<-- [start:haiku-resnet-model]
class ResNetBn(hk.Module):
    """Stem, two stages, global average pooling, dense head."""

    def __init__(self, config: ResNetBnConfig, bn: dict[str, Any], *, name: str | None = None):
        super().__init__(name=name)
        self.config, self.bn = config, bn

    def __call__(self, x: Float[Array, "batch pixels"], is_training: bool) -> Array:
        size, (c1, c2) = self.config.size, self.config.channels
        x = x.reshape(-1, size, size, 1)  # NHWC: hk.Conv2D's default data_format
        with hk.name_scope("stem"):
            x = conv(c1, 3, name="conv")(x)
            bn = hk.BatchNorm(create_scale=True, create_offset=True, name="bn", **self.bn)
            x = jax.nn.relu(bn(x, is_training))
        for stage, channels, stride in (("stage1", c1, 1), ("stage2", c2, 2)):
            with hk.name_scope(stage):
                for i, block in enumerate(BLOCKS):
                    x = Block(channels, stride if i == 0 else 1, self.bn, name=block)(
                        x, is_training
                    )
        x = jnp.mean(x, axis=(1, 2))  # global average pooling
        return hk.Linear(self.config.classes, name="head")(x)


# --8<-- [end:haiku-resnet-model]


def bn_kwargs(config: ResNetBnConfig) -> dict[str, Any]:
    """hk.BatchNorm's arguments: the aligned values, except where Haiku's are kept."""
    kwargs: dict[str, Any] = {
        # decay_rate has no default: hk.nets.ResNet's when the framework keeps its defaults.
        "decay_rate": RESNET_DECAY_RATE if config.keeps("momentum") else config.momentum,
        "cross_replica_axis": config.axis_name,
    }
    if not config.keeps("epsilon"):
        kwargs["eps"] = config.epsilon
    return kwargs


def make_forward(config: ResNetBnConfig) -> hk.TransformedWithState:
    """The transformed model: aligned BatchNorm settings, or Haiku's where kept."""

    def forward(x: Array, is_training: bool) -> Array:
        return ResNetBn(config, bn_kwargs(config), name=NAME)(x, is_training)

    return hk.without_apply_rng(hk.transform_with_state(forward))


def module(canonical_layer: str) -> str:
    """Haiku's module name for a canonical layer: `"stage1.block0.conv1"` ->
    `"resnet_bn/stage1/block0/conv1"`."""
    return "/".join((NAME, *canonical_layer.split(".")))


class HaikuResNetBn(HaikuAdapter[ResNetBnConfig]):
    """Adapter from the Haiku ResNet to the harness protocol; its conversion reshapes
    BatchNorm's (1, 1, 1, C) to the canonical (C,) and back."""

    model = "resnet-bn"
    make_train_step = staticmethod(make_train_step)
    bn_defaults: ClassVar[dict[str, str]] = {  # defaults that differ from the aligned ones
        "momentum": "decay_rate=0.999 (hk.nets.ResNet's)",
        "state": "zero-debiased EMA from 0, counter 0",
    }

    def make(self) -> hk.TransformedWithState:
        return make_forward(self.config)

    def check(self, x: Any) -> None:
        check_features(self.name, x, self.config)

    def to_canonical(self, params: hk.Params, state: hk.State) -> tuple[Canonical, Canonical]:
        out: dict[str, Array] = {}
        stats: dict[str, Array] = {}
        for layer in self.config.layers():
            out[f"{layer.conv}.kernel"] = params[module(layer.conv)]["w"]  # HWIO already
            bn = module(layer.bn)
            c = layer.kernel[-1]
            out[f"{layer.bn}.scale"] = params[bn]["scale"].reshape(c)  # stored (1, 1, 1, C)
            out[f"{layer.bn}.bias"] = params[bn]["offset"].reshape(c)
            stats[f"{layer.bn}.mean"] = state[f"{bn}/~/mean_ema"]["average"].reshape(c)
            stats[f"{layer.bn}.var"] = state[f"{bn}/~/var_ema"]["average"].reshape(c)
        head = params[module("head")]
        out["head.kernel"], out["head.bias"] = head["w"], head["b"]
        return out, stats

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[hk.Params, hk.State]:
        check_canonical(self.name, params, state, self.config)
        p = {k: jnp.asarray(v) for k, v in params.items()}
        native: dict[str, dict[str, Array]] = {
            module("head"): {"w": p["head.kernel"], "b": p["head.bias"]}
        }
        native_state: dict[str, dict[str, Array]] = {}
        for layer in self.config.layers():
            bn = module(layer.bn)
            shape = (1, 1, 1, layer.kernel[-1])  # broadcasts against NHWC
            native[module(layer.conv)] = {"w": p[f"{layer.conv}.kernel"]}
            native[bn] = {
                "scale": p[f"{layer.bn}.scale"].reshape(shape),
                "offset": p[f"{layer.bn}.bias"].reshape(shape),
            }
            for stat, ema in (("mean", "mean_ema"), ("var", "var_ema")):
                v = jnp.asarray(state[f"{layer.bn}.{stat}"]).reshape(shape)
                native_state[f"{bn}/~/{ema}"] = {
                    "counter": jnp.int32(SATURATED_COUNT),
                    "hidden": v,
                    "average": v,
                }
        return native, native_state
