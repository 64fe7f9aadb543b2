"""The `resnet-bn` model's shared pieces: config, canonical names and layout, init, checks.

A small residual network on scikit-learn's 8x8 digits: a 3x3 stem convolution, two stages of
two residual blocks (conv, BatchNorm, relu, conv, BatchNorm, add the shortcut, relu; a 1x1
projection convolution and its BatchNorm on the shortcut where the shape changes), global
average pooling and a dense head. Each framework writes it with its own built-in layers (see
the `impl_*` packages); everything here is framework-free.

The input is mlp-bn's: the 64 pixels of each digit, flat. Each model reshapes them into its
own image layout (NHWC in Flax, Haiku and Keras; CHW per example in Equinox).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from shared.core import check_canonical_shapes

from ..mlp_bn import KNOBS

MODEL = "resnet-bn"

PADDING = "SAME"
"""Every convolution's padding, in every framework: XLA's `"SAME"` (Keras's `"same"`).

With stride 2 on the even 8x8 input a 3x3 `"SAME"` convolution pads (0, 1), the extra row
and column at the end; an explicit `padding=1` pads (1, 1) and gives other outputs. Keras
has only `"same"` and `"valid"`, so `"SAME"` is the one padding every framework can express.
"""

BLOCKS = ("block0", "block1")
"""The residual blocks of each stage."""


@dataclass(frozen=True)
class ConvBn:
    """One convolution (no bias: BatchNorm follows) and the BatchNorm after it, by canonical
    name, with the convolution's canonical HWIO kernel shape."""

    conv: str
    bn: str
    kernel: tuple[int, int, int, int]


@dataclass(frozen=True)
class ResNetBnConfig:
    """Hyperparameters of the residual network with BatchNorm, shared by every framework.

    **Arguments:**

    - `size`: the input images' height and width (8 for digits; the input is `size**2` flat
      pixels, one channel).
    - `channels`: the channels of stage 1 and stage 2 (stage 2 halves the resolution with
      stride 2, and its first block projects the shortcut).
    - `classes`: number of classes (10 for digits).
    - `momentum`: the aligned BatchNorm EMA coefficient, `stat <- m * stat + (1 - m) * batch`.
    - `epsilon`: the aligned epsilon added to the variance.
    - `native_defaults`: names from mlp-bn's `KNOBS` for which each framework keeps its own
      BatchNorm default instead of the aligned value; all of them is the `--defaults` run.
    - `axis_name`: a named axis (vmap or pmap) over which BatchNorm averages batch statistics.
    """

    size: int = 8
    channels: tuple[int, int] = (8, 16)
    classes: int = 10
    momentum: float = 0.9
    epsilon: float = 1e-5
    native_defaults: tuple[str, ...] = field(default=())
    axis_name: str | None = None

    def __post_init__(self) -> None:
        for name, value in (("size", self.size), ("classes", self.classes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"resnet-bn: {name} must be an int >= 1, got {value!r}")
        if len(self.channels) != 2 or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in self.channels
        ):
            raise ValueError(f"resnet-bn: channels must be two ints >= 1, got {self.channels!r}")
        if isinstance(self.momentum, bool) or not 0.0 <= float(self.momentum) < 1.0:
            raise ValueError(f"resnet-bn: momentum must be in [0, 1), got {self.momentum!r}")
        if isinstance(self.epsilon, bool) or not float(self.epsilon) > 0.0:
            raise ValueError(f"resnet-bn: epsilon must be > 0, got {self.epsilon!r}")
        unknown = [k for k in self.native_defaults if k not in KNOBS]
        if unknown:
            raise ValueError(
                f"resnet-bn: unknown native_defaults entry {unknown[0]!r}; expected some of "
                f"{', '.join(KNOBS)}"
            )

    @property
    def features(self) -> int:
        """The flat input's size: one channel of `size x size` pixels."""
        return self.size * self.size

    def keeps(self, knob: str) -> bool:
        """Does each framework keep its own default for this BatchNorm setting?"""
        return knob in self.native_defaults

    def layers(self) -> tuple[ConvBn, ...]:
        """Every convolution and its BatchNorm, in the order the forward pass calls them."""
        c1, c2 = self.channels
        out = [ConvBn("stem.conv", "stem.bn", (3, 3, 1, c1))]
        for stage, (cin, cout) in (("stage1", (c1, c1)), ("stage2", (c1, c2))):
            for i, block in enumerate(BLOCKS):
                name = f"{stage}.{block}"
                first = cin if i == 0 else cout
                out.append(ConvBn(f"{name}.conv1", f"{name}.bn1", (3, 3, first, cout)))
                out.append(ConvBn(f"{name}.conv2", f"{name}.bn2", (3, 3, cout, cout)))
                if first != cout:  # the shape changes: a 1x1 projection on the shortcut
                    out.append(ConvBn(f"{name}.proj", f"{name}.proj_bn", (1, 1, first, cout)))
        return tuple(out)

    def shapes(self) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
        """Canonical shapes of params and state: kernels HWIO, BatchNorm vectors (C,)."""
        params: dict[str, tuple[int, ...]] = {}
        state: dict[str, tuple[int, ...]] = {}
        for layer in self.layers():
            c = layer.kernel[-1]
            params[f"{layer.conv}.kernel"] = layer.kernel
            params[f"{layer.bn}.scale"] = (c,)
            params[f"{layer.bn}.bias"] = (c,)
            state[f"{layer.bn}.mean"] = (c,)
            state[f"{layer.bn}.var"] = (c,)
        params["head.kernel"] = (self.channels[1], self.classes)
        params["head.bias"] = (self.classes,)
        return params, state


def canonical_params(config: ResNetBnConfig) -> tuple[str, ...]:
    """The canonical parameter names."""
    return tuple(config.shapes()[0])


def canonical_state(config: ResNetBnConfig) -> tuple[str, ...]:
    """The canonical running statistics: the values each framework normalises with at eval."""
    return tuple(config.shapes()[1])


def canonical_init(
    config: ResNetBnConfig, seed: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One deterministic float32 init, loaded into every framework with `from_canonical`.

    He-normal convolution kernels (standard normal times `sqrt(2 / fan_in)`, fan_in = kh * kw
    * cin: relu follows), a LeCun-normal head (times `1/sqrt(fan_in)`), from NumPy's generator
    so that they do not move with the JAX version; zero head bias, BatchNorm scale 1 and bias
    0, running mean 0 and running variance 1.
    """
    rng = np.random.default_rng(seed)
    shapes_p, shapes_s = config.shapes()
    params: dict[str, np.ndarray] = {}
    for name, shape in shapes_p.items():
        if name == "head.kernel":
            params[name] = rng.standard_normal(shape) / np.sqrt(shape[0])
        elif name.endswith(".kernel"):
            params[name] = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:3]))
        elif name.endswith(".scale"):
            params[name] = np.ones(shape)
        else:
            params[name] = np.zeros(shape)
    state = {
        name: np.zeros(shape) if name.endswith(".mean") else np.ones(shape)
        for name, shape in shapes_s.items()
    }
    return (
        {k: v.astype(np.float32) for k, v in params.items()},
        {k: v.astype(np.float32) for k, v in state.items()},
    )


def check_canonical(
    where: str,
    params: Mapping[str, object],
    state: Mapping[str, object],
    config: ResNetBnConfig,
) -> None:
    """Check canonical weights: every entry present, none extra, each with its shape.

    The error names the entry, e.g. `equinox: canonical params entry 'stem.conv.kernel' has
    shape (8, 1, 3, 3); expected (3, 3, 1, 8)` (a kernel in OIHW, not the canonical HWIO).
    """
    check_canonical_shapes(where, params, state, config.shapes())
