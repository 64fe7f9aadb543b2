"""The small ResNet in Keras: `keras.layers.Conv2D`, `keras.layers.BatchNormalization`.

Keras's kernels are HWIO (`data_format="channels_last"`, its default), the canonical layout;
its BatchNormalization's `gamma`, `beta`, `moving_mean` and `moving_variance` are (C,).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import jax
import keras
import optax
from jaxtyping import Array, Float

from shared import Canonical, NativeLoop
from shared.models.mlp_bn import Labelled, check_features, mlp_bn_loss
from shared.models.resnet_bn import BLOCKS, ResNetBnConfig, check_canonical

from ._adapter import KerasAdapter, built
from ._mlp_bn import EPSILON, MOMENTUM
from ._native import keras_native_loop
from ._optim import KERAS_DEFAULTS


def conv(channels: int, kernel: int, strides: int = 1, *, name: str) -> keras.layers.Conv2D:
    """A convolution without bias (BatchNorm follows), "same"-padded: Keras's default is
    "valid", and "same"/"valid" are all it has (no explicit padding)."""
    return keras.layers.Conv2D(
        channels, kernel, strides=strides, padding="same", use_bias=False, name=name
    )


# --8<-- [start:keras-resnet-block]
class Block(keras.layers.Layer):
    """conv, BatchNorm, relu, conv, BatchNorm, add the shortcut (projected where the shape
    changes), relu."""

    def __init__(self, channels: int, strides: int, project: bool, bn: dict[str, Any], **kw: Any):
        super().__init__(**kw)
        self.conv1 = conv(channels, 3, strides, name="conv1")
        self.bn1 = keras.layers.BatchNormalization(name="bn1", **bn)
        self.conv2 = conv(channels, 3, name="conv2")
        self.bn2 = keras.layers.BatchNormalization(name="bn2", **bn)
        self.proj = conv(channels, 1, strides, name="proj") if project else None
        self.proj_bn = keras.layers.BatchNormalization(name="proj_bn", **bn) if project else None

    def call(self, x: Float[Array, "batch h w c"], training: bool = False) -> Array:
        y = keras.ops.relu(self.bn1(self.conv1(x), training=training))
        y = self.bn2(self.conv2(y), training=training)
        if self.proj is not None and self.proj_bn is not None:
            x = self.proj_bn(self.proj(x), training=training)
        return keras.ops.relu(x + y)


# --8<-- [end:keras-resnet-block]


class Stem(keras.layers.Layer):
    """A 3x3 convolution, BatchNorm, relu."""

    def __init__(self, channels: int, bn: dict[str, Any], **kw: Any):
        super().__init__(**kw)
        self.conv = conv(channels, 3, name="conv")
        self.bn = keras.layers.BatchNormalization(name="bn", **bn)

    def call(self, x: Float[Array, "batch h w c"], training: bool = False) -> Array:
        return keras.ops.relu(self.bn(self.conv(x), training=training))


class Stage(keras.layers.Layer):
    """Two residual blocks; the first may change the resolution and the channels."""

    def __init__(self, channels: int, strides: int, project: bool, bn: dict[str, Any], **kw: Any):
        super().__init__(**kw)
        self.block0 = Block(channels, strides, project, bn, name=BLOCKS[0])
        self.block1 = Block(channels, 1, False, bn, name=BLOCKS[1])

    def call(self, x: Float[Array, "batch h w c"], training: bool = False) -> Array:
        return self.block1(self.block0(x, training=training), training=training)


# --8<-- [start:keras-resnet-model]
class ResNetBn(keras.Model):
    """Stem, two stages, global average pooling, dense head; `bn` left empty keeps Keras's
    BatchNormalization defaults."""

    def __init__(self, config: ResNetBnConfig, bn: dict[str, Any], **kwargs: Any):
        super().__init__(**kwargs)
        c1, c2 = config.channels
        self.size = config.size
        self.stem = Stem(c1, bn, name="stem")
        self.stage1 = Stage(c1, 1, False, bn, name="stage1")
        self.stage2 = Stage(c2, 2, True, bn, name="stage2")
        self.pool = keras.layers.GlobalAveragePooling2D(name="pool")
        self.head = keras.layers.Dense(config.classes, name="head")

    def call(self, x: Float[Array, "batch pixels"], training: bool = False) -> Array:
        x = keras.ops.reshape(x, (-1, self.size, self.size, 1))  # NHWC: "channels_last"
        x = self.stem(x, training=training)
        x = self.stage2(self.stage1(x, training=training), training=training)
        return self.head(self.pool(x))

    # --8<-- [end:keras-resnet-model]

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Array:
        # The loss every framework trains on (optax's cross-entropy), as in mlp-bn.
        return mlp_bn_loss(y_pred, Labelled(x, y))


def train_on_batch(model: ResNetBn, batch: Labelled) -> float:
    return model.train_on_batch(batch.x, batch.labels)  # after model.compile(optimizer)


class KerasResNetBn(KerasAdapter):
    """Adapter from the Keras ResNet to the harness protocol (`stateless_call`)."""

    model = "resnet-bn"
    bn_defaults: ClassVar[dict[str, str]] = {  # defaults that differ from the aligned ones
        "momentum": f"momentum={MOMENTUM}",
        "epsilon": f"epsilon={EPSILON}",
    }
    optimizer_defaults: ClassVar[dict[str, str]] = KERAS_DEFAULTS  # Keras's own, native loop

    def __init__(self, config: ResNetBnConfig):
        # As mlp-bn's: BatchNormalization(synchronized=True), Keras's cross-replica switch,
        # is refused by the JAX backend, so a data-parallel config is refused here.
        if config.axis_name is not None:
            raise ValueError(
                f"keras: resnet-bn with axis_name={config.axis_name!r}: "
                "keras.layers.BatchNormalization(synchronized=True) is only supported with the "
                "TensorFlow backend; expected axis_name=None"
            )
        bns = [layer.bn for layer in config.layers()]
        self.params_rename: Mapping[str, str] = {
            **{f"{b}.gamma": f"{b}.scale" for b in bns},
            **{f"{b}.beta": f"{b}.bias" for b in bns},
        }
        self.state_rename: Mapping[str, str] = {
            **{f"{b}.moving_mean": f"{b}.mean" for b in bns},
            **{f"{b}.moving_variance": f"{b}.var" for b in bns},
        }
        super().__init__(config)

    def make(self) -> ResNetBn:
        c = self.config
        bn: dict[str, Any] = {}
        if not c.keeps("momentum"):
            bn["momentum"] = c.momentum
        if not c.keeps("epsilon"):
            bn["epsilon"] = c.epsilon
        return built(ResNetBn(c, bn, name="resnet_bn"), c.features)

    def check(self, x: jax.Array) -> None:
        check_features(self.name, x, self.config)

    def from_canonical(
        self, params: Canonical, state: Canonical
    ) -> tuple[list[Array], list[Array]]:
        check_canonical(self.name, params, state, self.config)
        return super().from_canonical(params, state)

    def native_loop(
        self, params: list[Array], state: list[Array], tx: optax.GradientTransformation
    ) -> NativeLoop:
        return keras_native_loop(
            self.name,
            self.make(),
            params,
            state,
            tx,
            train_on_batch,
            keep_optimizer_defaults=self.config.keeps("optimizer"),
        )
