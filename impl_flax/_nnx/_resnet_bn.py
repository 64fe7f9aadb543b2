"""The small ResNet in Flax NNX: `nnx.Conv`, `nnx.BatchNorm`, `model.train()/eval()`."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from shared import Canonical
from shared.models.mlp_bn import check_features
from shared.models.resnet_bn import PADDING, ResNetBnConfig, check_canonical

from ._adapter import NNXAdapter, NNXState

# mlp-bn's step, unchanged: digits, cross-entropy, every BatchStat updated in place.
from ._mlp_bn import train_step


# --8<-- [start:nnx-resnet-block]
class Block(nnx.Module):
    """conv, BatchNorm, relu, conv, BatchNorm, add the shortcut (projected where the shape
    changes), relu; `bn_kwargs` left out keep NNX's defaults."""

    def __init__(self, cin: int, cout: int, *, strides: int = 1, rngs: nnx.Rngs, **bn_kwargs: Any):
        # NNX names the channels: in and out, where Linen infers the input's.
        conv = functools.partial(nnx.Conv, use_bias=False, padding=PADDING, rngs=rngs)
        norm = functools.partial(nnx.BatchNorm, cout, rngs=rngs, **bn_kwargs)
        self.conv1 = conv(cin, cout, (3, 3), strides=strides)
        self.bn1 = norm()
        self.conv2 = conv(cout, cout, (3, 3))
        self.bn2 = norm()
        # Each attribute is assigned once: NNX fixes an attribute holding None as static.
        self.proj: nnx.Conv | None
        self.proj_bn: nnx.BatchNorm | None
        if cin != cout or strides != 1:  # the shape changes: project the shortcut
            self.proj, self.proj_bn = conv(cin, cout, (1, 1), strides=strides), norm()
        else:
            self.proj, self.proj_bn = None, None

    def __call__(self, x: Float[Array, "batch h w c"]) -> Array:
        y = nnx.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if self.proj is not None and self.proj_bn is not None:
            x = self.proj_bn(self.proj(x))
        return nnx.relu(x + y)


# --8<-- [end:nnx-resnet-block]


class Stem(nnx.Module):
    """A 3x3 convolution, BatchNorm, relu."""

    def __init__(self, cout: int, *, rngs: nnx.Rngs, **bn_kwargs: Any):
        self.conv = nnx.Conv(1, cout, (3, 3), use_bias=False, padding=PADDING, rngs=rngs)
        self.bn = nnx.BatchNorm(cout, rngs=rngs, **bn_kwargs)

    def __call__(self, x: Float[Array, "batch h w c"]) -> Array:
        return nnx.relu(self.bn(self.conv(x)))


class Stage(nnx.Module):
    """Two residual blocks; the first may change the resolution and the channels."""

    def __init__(self, cin: int, cout: int, *, strides: int = 1, rngs: nnx.Rngs, **bn_kwargs: Any):
        self.block0 = Block(cin, cout, strides=strides, rngs=rngs, **bn_kwargs)
        self.block1 = Block(cout, cout, rngs=rngs, **bn_kwargs)

    def __call__(self, x: Float[Array, "batch h w c"]) -> Array:
        return self.block1(self.block0(x))


# --8<-- [start:nnx-resnet-model]
class ResNetBn(nnx.Module):
    """Stem, two stages, global average pooling, dense head."""

    def __init__(self, config: ResNetBnConfig, *, rngs: nnx.Rngs, **bn_kwargs: Any):
        c1, c2 = config.channels
        self.size = config.size
        self.stem = Stem(c1, rngs=rngs, **bn_kwargs)
        self.stage1 = Stage(c1, c1, rngs=rngs, **bn_kwargs)
        self.stage2 = Stage(c1, c2, strides=2, rngs=rngs, **bn_kwargs)
        self.head = nnx.Linear(c2, config.classes, rngs=rngs)

    def __call__(self, x: Float[Array, "batch pixels"]) -> Array:
        x = x.reshape(-1, self.size, self.size, 1)  # NHWC, as nnx.Conv expects
        x = self.stage2(self.stage1(self.stem(x)))
        return self.head(jnp.mean(x, axis=(1, 2)))  # global average pooling, then dense


# --8<-- [end:nnx-resnet-model]


def bn_kwargs(config: ResNetBnConfig) -> dict[str, Any]:
    """nnx.BatchNorm's arguments: the aligned values, except where NNX's defaults are kept."""
    kwargs: dict[str, Any] = {"axis_name": config.axis_name}
    if not config.keeps("momentum"):
        kwargs["momentum"] = config.momentum
    if not config.keeps("epsilon"):
        kwargs["epsilon"] = config.epsilon
    return kwargs


class NNXResNetBn(NNXAdapter[ResNetBnConfig, ResNetBn]):
    """Adapter from the NNX ResNet to the harness protocol: its attribute paths are the
    canonical names, and its kernels are already HWIO."""

    model = "resnet-bn"
    train_step = staticmethod(train_step)
    bn_defaults: ClassVar[dict[str, str]] = {"momentum": "momentum=0.99"}

    def make(self, rngs: nnx.Rngs) -> ResNetBn:
        return ResNetBn(self.config, rngs=rngs, **bn_kwargs(self.config))

    def check(self, x: Any) -> None:
        check_features(self.name, x, self.config)

    def from_canonical(self, params: Canonical, state: Canonical) -> tuple[NNXState, NNXState]:
        check_canonical(self.name, params, state, self.config)
        return super().from_canonical(params, state)
