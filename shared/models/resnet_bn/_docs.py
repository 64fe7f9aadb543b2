"""The ResNet's section of the idioms guide: each framework's convolution and BatchNorm, cut
from its file."""

from __future__ import annotations

from shared.docs import Concept, ModelDocs

FILES = {
    "flax_linen": "impl_flax/_linen/_resnet_bn.py",
    "flax_nnx": "impl_flax/_nnx/_resnet_bn.py",
    "haiku": "impl_haiku/_resnet_bn.py",
    "equinox": "impl_equinox/_resnet_bn.py",
    "keras": "impl_keras/_resnet_bn.py",
}
"""Framework -> the file that holds its ResNet."""

CONCEPTS: tuple[Concept, ...] = (
    Concept(
        "resnet-block",
        "A residual block",
        "conv, BatchNorm, relu, conv, BatchNorm, add the shortcut, relu, with each "
        "framework's built-in convolution and BatchNorm. Every convolution is "
        '`"SAME"`-padded and has no bias (the BatchNorm after it subtracts any bias again). '
        "Linen infers the input channels, NNX and Equinox take them as arguments, Haiku "
        "and Keras infer them at the first call; Equinox's block sees one CHW example and "
        "threads the `eqx.nn.State` through every BatchNorm.",
        FILES,
        topic="convolutions",
    ),
    Concept(
        "resnet-model",
        "The model and its image layout",
        "The digits arrive as 64 flat pixels (mlp-bn's data); each model reshapes them into "
        "its own layout: NHWC in Flax, Haiku and Keras, one CHW image per example in "
        "Equinox, whose batch is a named `jax.vmap`. Global average pooling is a mean over "
        "the spatial axes (Keras: `GlobalAveragePooling2D`).",
        FILES,
        topic="convolutions",
    ),
)

GOTCHAS: tuple[tuple[str, str], ...] = (
    (
        "Kernel layouts differ: HWIO and OIHW",
        "Flax, Haiku and Keras store a 2-D convolution's kernel as (height, width, in, out); "
        "Equinox as (out, in, height, width). The canonical layout is HWIO; Equinox's "
        "conversion is `jnp.transpose(w, (2, 3, 1, 0))`. `w.T` reverses all four axes and "
        "gives WHIO: the right shape for a square kernel and silently wrong values "
        "(`tests/resnet_bn/test_resnet_bn_layout.py` checks every framework's kernel "
        "against `jax.lax.conv_general_dilated` on the canonical one).",
    ),
    (
        'Default padding differs, and "SAME" with stride 2 is not padding=1',
        'Flax (`nn.Conv`, `nnx.Conv`) and Haiku pad `"SAME"` by default, Equinox 0 '
        '(`"VALID"`), Keras `"valid"`. A 3x3 `"SAME"` convolution with stride 2 on an '
        "even input pads (0, 1), all the extra at the end, in every framework (XLA's "
        "rule); an explicit `padding=1` pads (1, 1) and gives other outputs. Keras has "
        'only `"same"` and `"valid"`, so the aligned model uses `"SAME"` everywhere.',
    ),
    (
        "BatchNorm's shapes differ after a convolution",
        "Haiku's `hk.BatchNorm` stores scale, offset and both running averages as "
        "(1, 1, 1, C), to broadcast against NHWC; Flax, Equinox and Keras as (C,). "
        "Equinox's `eqx.nn.BatchNorm(C)` normalises axis 0 of each CHW example and "
        "averages over the spatial axes and the named vmap axis.",
    ),
)

GOTCHAS = (
    *GOTCHAS,
    (
        "Convolutions' initial kernels differ",
        "Flax's `nn.Conv` and `nnx.Conv` draw LeCun-normal kernels, Haiku's `hk.Conv2D` a "
        "normal cut at two standard deviations, scaled by 1/sqrt(fan_in) (so its standard "
        "deviation is 0.88/sqrt(fan_in)), Equinox's `eqx.nn.Conv2d` a uniform on "
        "+-1/sqrt(fan_in), Keras's `Conv2D` Glorot-uniform; every one has a bias unless told "
        "otherwise. resnet-bn loads one canonical He-normal init into every framework "
        "(`shared/models/resnet_bn/_config.py`).",
    ),
)

DOCS = ModelDocs(CONCEPTS, GOTCHAS)
