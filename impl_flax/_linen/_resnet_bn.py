"""The small ResNet in Flax Linen: `nn.Conv`, `nn.BatchNorm`, `batch_stats`, `mutable`.

Written as Flax's own ImageNet example writes its ResNet: the blocks take `conv` and `norm`
as partially applied module classes, so that the train/eval switch and the BatchNorm
settings are set once, at the top.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar

import flax.linen as nn
import jax.numpy as jnp
from flax.typing import Collection, VariableDict
from jaxtyping import Array, Float

from shared import Canonical
from shared.models.mlp_bn import check_features
from shared.models.resnet_bn import BLOCKS, PADDING, ResNetBnConfig, check_canonical

from ._adapter import LinenAdapter

# mlp-bn's step, unchanged: digits, cross-entropy, the batch_stats collection updated.
from ._mlp_bn import train_step

ModuleDef = Callable[..., nn.Module]


# --8<-- [start:linen-resnet-block]
class Block(nn.Module):
    """conv, BatchNorm, relu, conv, BatchNorm, add the shortcut (projected where the shape
    changes), relu."""

    channels: int
    conv: ModuleDef
    norm: ModuleDef
    strides: int = 1

    @nn.compact
    def __call__(self, x: Float[Array, "batch h w c"]) -> Array:
        y = self.conv(self.channels, (3, 3), strides=self.strides, name="conv1")(x)
        y = nn.relu(self.norm(name="bn1")(y))
        y = self.conv(self.channels, (3, 3), name="conv2")(y)
        y = self.norm(name="bn2")(y)
        if x.shape[-1] != self.channels or self.strides != 1:
            x = self.conv(self.channels, (1, 1), strides=self.strides, name="proj")(x)
            x = self.norm(name="proj_bn")(x)
        return nn.relu(x + y)


# --8<-- [end:linen-resnet-block]


class Stem(nn.Module):
    """A 3x3 convolution, BatchNorm, relu."""

    channels: int
    conv: ModuleDef
    norm: ModuleDef

    @nn.compact
    def __call__(self, x: Float[Array, "batch h w c"]) -> Array:
        return nn.relu(self.norm(name="bn")(self.conv(self.channels, (3, 3), name="conv")(x)))


class Stage(nn.Module):
    """Two residual blocks; the first may change the resolution and the channels."""

    channels: int
    conv: ModuleDef
    norm: ModuleDef
    strides: int = 1

    @nn.compact
    def __call__(self, x: Float[Array, "batch h w c"]) -> Array:
        for i, name in enumerate(BLOCKS):
            strides = self.strides if i == 0 else 1
            x = Block(self.channels, self.conv, self.norm, strides, name=name)(x)
        return x


# --8<-- [start:linen-resnet-model]
class ResNetBn(nn.Module):
    """Stem, two stages, global average pooling, dense head; BatchNorm settings left `None`
    keep Flax's defaults."""

    size: int = 8
    channels: tuple[int, int] = (8, 16)
    classes: int = 10
    momentum: float | None = None
    epsilon: float | None = None
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: Float[Array, "batch pixels"], train: bool) -> Array:
        given: dict[str, Any] = {"momentum": self.momentum, "epsilon": self.epsilon}
        # No bias: the BatchNorm after every convolution subtracts it again. nn.Conv's
        # default padding is already "SAME"; said anyway, as every framework says it.
        conv = functools.partial(nn.Conv, use_bias=False, padding=PADDING)
        norm = functools.partial(
            nn.BatchNorm,
            use_running_average=not train,  # Linen's train/eval switch
            axis_name=self.axis_name,
            **{k: v for k, v in given.items() if v is not None},
        )
        x = x.reshape(-1, self.size, self.size, 1)  # NHWC: Linen's (and XLA's) default
        x = Stem(self.channels[0], conv, norm, name="stem")(x)
        x = Stage(self.channels[0], conv, norm, name="stage1")(x)
        x = Stage(self.channels[1], conv, norm, strides=2, name="stage2")(x)
        x = jnp.mean(x, axis=(1, 2))  # global average pooling
        return nn.Dense(self.classes, name="head")(x)


# --8<-- [end:linen-resnet-model]


class LinenResNetBn(LinenAdapter):
    """Adapter from the Linen ResNet to the harness protocol: its derived names are the
    canonical ones, and its kernels are already HWIO."""

    model = "resnet-bn"
    train_step = staticmethod(train_step)
    # The BatchNorm defaults that differ from the aligned settings.
    bn_defaults: ClassVar[dict[str, str]] = {"momentum": "momentum=0.99"}

    def make(self) -> ResNetBn:
        """The module for the config: aligned settings, or Flax's defaults where kept."""
        c = self.config
        return ResNetBn(
            size=c.size,
            channels=c.channels,
            classes=c.classes,
            momentum=None if c.keeps("momentum") else c.momentum,
            epsilon=None if c.keeps("epsilon") else c.epsilon,
            axis_name=c.axis_name,
        )

    def check(self, x: Any) -> None:
        check_features(self.name, x, self.config)

    def from_canonical(
        self, params: Canonical, state: Canonical
    ) -> tuple[Collection, VariableDict]:
        config: ResNetBnConfig = self.config
        check_canonical(self.name, params, state, config)
        return super().from_canonical(params, state)
