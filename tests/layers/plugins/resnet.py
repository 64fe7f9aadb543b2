"""A small residual network with BatchNorm: a Haiku reference, a Linen port, four bugs.

stem (conv 3x3, BatchNorm, relu) -> block1 (4 channels) -> block2 (8 channels, stride 2,
a projected shortcut) -> mean pool -> head (Dense). A block is conv1 -> bn1 -> relu ->
conv2 -> bn2, plus its shortcut, then relu. Both ports name their modules alike (`stem.conv`,
`block1.bn2`, ...), so that their layers pair by path. The Linen port's bugs, each in its
own layer: a relu moved before the residual add (`block1`), the stride moved from block2's
first convolution to its second (`block2.conv1`), the stem's BatchNorm dividing its
variance by n - 1 (`stem.bn`), and block1's second BatchNorm with momentum 0.99 instead of
0.9 (`block1.bn2`: its output agrees, its running statistics do not).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import flax
import flax.linen as nn
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax

import shared
from impl_flax import linen_from_canonical
from impl_flax._linen._adapter import LinenAdapter
from impl_haiku._adapter import HaikuAdapter

BATCH, SIZE, CHANNELS, CLASSES = 8, 8, 3, 5
MOMENTUM, EPS = 0.9, 1e-5
SATURATED = 1_000_000  # Haiku's debiasing 1 - d**counter is exactly 1 there
BNS = ("stem.bn", "block1.bn1", "block1.bn2", "block2.bn1", "block2.bn2", "block2.proj_bn")
CONVS = {  # canonical conv -> (in, out, window)
    "stem.conv": (CHANNELS, 4, 3),
    "block1.conv1": (4, 4, 3),
    "block1.conv2": (4, 4, 3),
    "block2.conv1": (4, 8, 3),
    "block2.conv2": (8, 8, 3),
    "block2.proj": (4, 8, 1),
}
WIDTH = {"stem.bn": 4, "block1.bn1": 4, "block1.bn2": 4}


@dataclass(frozen=True)
class ResNetConfig:
    features: int = CHANNELS  # what the adapters' checks read


def _width(bn: str) -> int:
    return WIDTH.get(bn, 8)


PARAMS = sorted(
    [f"{c}.kernel" for c in CONVS]
    + [f"{b}.{v}" for b in BNS for v in ("scale", "bias")]
    + ["head.kernel", "head.bias"]
)
STATE = sorted(f"{b}.{v}" for b in BNS for v in ("mean", "var"))


def _data(config: ResNetConfig, settings: shared.Settings) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(settings.seed)
    steps = settings.steps or 2
    x = rng.standard_normal((steps, BATCH, SIZE, SIZE, CHANNELS)).astype(np.float32)
    labels = rng.integers(0, CLASSES, (steps, BATCH)).astype(np.int32)
    return {"x": x, "labels": labels}


def _loss(logits: jax.Array, batch: dict[str, jax.Array]) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"]).mean()


def _init(impl: Any, config: ResNetConfig, batches: Any, seed: int) -> Any:
    rng = np.random.default_rng(100 + seed)
    params: dict[str, Any] = {}
    for name, (cin, cout, k) in CONVS.items():
        w = rng.standard_normal((k, k, cin, cout)) / np.sqrt(k * k * cin)
        params[f"{name}.kernel"] = w.astype(np.float32)
    for bn in BNS:
        params[f"{bn}.scale"] = (1 + 0.1 * rng.standard_normal(_width(bn))).astype(np.float32)
        params[f"{bn}.bias"] = (0.1 * rng.standard_normal(_width(bn))).astype(np.float32)
    params["head.kernel"] = (rng.standard_normal((8, CLASSES)) / 3).astype(np.float32)
    params["head.bias"] = np.zeros(CLASSES, np.float32)
    state = {f"{bn}.mean": np.zeros(_width(bn), np.float32) for bn in BNS}
    state.update({f"{bn}.var": np.ones(_width(bn), np.float32) for bn in BNS})
    return impl.from_canonical(
        {k: jnp.asarray(v) for k, v in params.items()},
        {k: jnp.asarray(v) for k, v in state.items()},
    )


SPEC = shared.ModelSpec(
    name="resnet-test",
    config_type=ResNetConfig,
    configure=lambda settings: ResNetConfig(),
    data=_data,
    loss=_loss,
    inputs=lambda batch: batch["x"],
    init=_init,
    steps=2,
    learning_rate=0.1,
    params=PARAMS,
    state=STATE,
    tolerances=shared.Tolerances(
        same=shared.Tolerance(
            max_ulp=16,
            atol=2e-6,
            reason="Haiku against Linen: the same convolutions, BatchNorm's `1 - decay` in "
            "float32 (Haiku) against a Python float (Linen): a few ULP in the statistics",
        ),
    ),
)


# --- Haiku: the reference ----------------------------------------------------------------


class HkBlock(hk.Module):
    def __init__(self, channels: int, stride: int, project: bool, name: str):
        super().__init__(name=name)
        self.channels, self.stride, self.project = channels, stride, project

    def __call__(self, x: jax.Array, is_training: bool) -> jax.Array:
        bn = functools.partial(
            hk.BatchNorm, create_scale=True, create_offset=True, decay_rate=MOMENTUM, eps=EPS
        )
        conv = functools.partial(hk.Conv2D, self.channels, 3, with_bias=False)
        h = conv(stride=self.stride, name="conv1")(x)
        h = jax.nn.relu(bn(name="bn1")(h, is_training))
        h = bn(name="bn2")(conv(name="conv2")(h), is_training)
        shortcut = x
        if self.project:
            shortcut = hk.Conv2D(
                self.channels, 1, stride=self.stride, with_bias=False, name="proj"
            )(x)
            shortcut = bn(name="proj_bn")(shortcut, is_training)
        return jax.nn.relu(h + shortcut)


class HkResNet(hk.Module):
    def __call__(self, x: jax.Array, is_training: bool) -> jax.Array:
        h = HkStem(name="stem")(x, is_training)
        h = HkBlock(4, 1, False, name="block1")(h, is_training)
        h = HkBlock(8, 2, True, name="block2")(h, is_training)
        return hk.Linear(CLASSES, name="head")(jnp.mean(h, axis=(1, 2)))


class HkStem(hk.Module):
    def __call__(self, x: jax.Array, is_training: bool) -> jax.Array:
        h = hk.Conv2D(4, 3, with_bias=False, name="conv")(x)
        bn = hk.BatchNorm(True, True, MOMENTUM, eps=EPS, name="bn")
        return jax.nn.relu(bn(h, is_training))


def _hk_forward(x: jax.Array, is_training: bool) -> jax.Array:
    return HkResNet(name="resnet")(x, is_training)


class HaikuResNet(HaikuAdapter[ResNetConfig]):
    name = "haiku"
    model = "resnet-test"

    def make(self) -> hk.TransformedWithState:
        return hk.without_apply_rng(hk.transform_with_state(_hk_forward))

    def to_canonical(self, params: Any, state: Any) -> Any:
        out: dict[str, Any] = {}
        for name in CONVS:
            out[f"{name}.kernel"] = params[_hk(name)]["w"]
        for bn in BNS:
            out[f"{bn}.scale"] = params[_hk(bn)]["scale"].reshape(-1)
            out[f"{bn}.bias"] = params[_hk(bn)]["offset"].reshape(-1)
        out["head.kernel"], out["head.bias"] = (
            params["resnet/head"]["w"],
            params["resnet/head"]["b"],
        )
        stats = {}
        for bn in BNS:
            stats[f"{bn}.mean"] = state[f"{_hk(bn)}/~/mean_ema"]["average"].reshape(-1)
            stats[f"{bn}.var"] = state[f"{_hk(bn)}/~/var_ema"]["average"].reshape(-1)
        return out, stats

    def from_canonical(self, params: Any, state: Any) -> Any:
        p: dict[str, Any] = {_hk(c): {"w": params[f"{c}.kernel"]} for c in CONVS}
        s: dict[str, Any] = {}
        for bn in BNS:
            shape = (1, 1, 1, _width(bn))
            p[_hk(bn)] = {
                "scale": params[f"{bn}.scale"].reshape(shape),
                "offset": params[f"{bn}.bias"].reshape(shape),
            }
            for stat in ("mean", "var"):
                v = jnp.asarray(state[f"{bn}.{stat}"]).reshape(shape)
                s[f"{_hk(bn)}/~/{stat}_ema"] = {
                    "counter": jnp.int32(SATURATED), "hidden": v, "average": v,
                }  # fmt: skip
        p["resnet/head"] = {"w": params["head.kernel"], "b": params["head.bias"]}
        return p, s


def _hk(name: str) -> str:
    return "resnet/" + name.replace(".", "/")


# --- Linen: the port, and its bugs -------------------------------------------------------


class UnbiasedBatchNorm(nn.Module):
    """A hand-written BatchNorm whose batch variance divides by n - 1 (the bug)."""

    momentum: float = MOMENTUM
    epsilon: float = EPS

    @nn.compact
    def __call__(self, x: jax.Array, use_running_average: bool) -> jax.Array:
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,))
        bias = self.param("bias", nn.initializers.zeros, (c,))
        ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (c,))
        ra_var = self.variable("batch_stats", "var", jnp.ones, (c,))
        n = x.size // c
        mean = jnp.mean(x, axis=(0, 1, 2))
        var = jnp.sum((x - mean) ** 2, axis=(0, 1, 2)) / (n - 1)  # the bug: n - 1
        if not self.is_initializing():
            ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
            ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
        return (x - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias


class LnBlock(nn.Module):
    channels: int
    stride: int
    project: bool
    relu_before_add: bool = False
    stride_in_conv2: bool = False
    bn2_momentum: float = MOMENTUM

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        bn = functools.partial(nn.BatchNorm, use_running_average=not train, epsilon=EPS)
        s1, s2 = (1, self.stride) if self.stride_in_conv2 else (self.stride, 1)
        conv = functools.partial(nn.Conv, self.channels, (3, 3), use_bias=False)
        h = conv(strides=s1, name="conv1")(x)
        h = nn.relu(bn(momentum=MOMENTUM, name="bn1")(h))
        h = bn(momentum=self.bn2_momentum, name="bn2")(conv(strides=s2, name="conv2")(h))
        shortcut = x
        if self.project:
            shortcut = nn.Conv(
                self.channels, (1, 1), strides=self.stride, use_bias=False, name="proj"
            )(x)
            shortcut = bn(momentum=MOMENTUM, name="proj_bn")(shortcut)
        if self.relu_before_add:
            return nn.relu(h) + shortcut  # the bug: relu, then the residual add
        return nn.relu(h + shortcut)


class LnStem(nn.Module):
    unbiased_var: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        h = nn.Conv(4, (3, 3), use_bias=False, name="conv")(x)
        if self.unbiased_var:
            h = UnbiasedBatchNorm(name="bn")(h, use_running_average=not train)
        else:
            h = nn.BatchNorm(
                use_running_average=not train, momentum=MOMENTUM, epsilon=EPS, name="bn"
            )(h)
        return nn.relu(h)


class LnResNet(nn.Module):
    bug: str = ""

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        h = LnStem(unbiased_var=self.bug == "variance", name="stem")(x, train)
        h = LnBlock(
            4, 1, False,
            relu_before_add=self.bug == "relu",
            bn2_momentum=0.99 if self.bug == "momentum" else MOMENTUM,
            name="block1",
        )(h, train)  # fmt: skip
        h = LnBlock(8, 2, True, stride_in_conv2=self.bug == "stride", name="block2")(h, train)
        return nn.Dense(CLASSES, name="head")(jnp.mean(h, axis=(1, 2)))


class LinenResNet(LinenAdapter):
    name = "flax_linen"
    model = "resnet-test"
    bug = ""

    def make(self) -> nn.Module:
        return LnResNet(bug=self.bug)

    def abstract_variables(self, *, train: bool = True) -> Any:
        x = jax.ShapeDtypeStruct((1, SIZE, SIZE, CHANNELS), jnp.float32)
        init = functools.partial(self.module.init, train=train)
        return jax.eval_shape(init, jax.random.key(0), x)

    def from_canonical(self, params: Any, state: Any) -> Any:
        template_state, template_params = flax.core.pop(self.abstract_variables(), "params")
        return (
            linen_from_canonical(template_params, params),
            {"batch_stats": linen_from_canonical(template_state["batch_stats"], state)},
        )


class ReluBeforeAdd(LinenResNet):
    name, bug = "relu-before-add", "relu"


class StrideInConv2(LinenResNet):
    name, bug = "stride-in-conv2", "stride"


class UnbiasedVariance(LinenResNet):
    name, bug = "unbiased-variance", "variance"


class WrongMomentum(LinenResNet):
    name, bug = "wrong-momentum", "momentum"


BUGS = {  # the port -> the layer its bug is in
    ReluBeforeAdd: "block1",
    StrideInConv2: "block2.conv1",
    UnbiasedVariance: "stem.bn",
    WrongMomentum: "block1.bn2",
}
