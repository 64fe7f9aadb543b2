"""The `mlp-bn` model's shared pieces: config, canonical names and init, batches, loss, checks.

The model is Dense(features -> hidden), BatchNorm, relu, Dense(hidden -> classes), written in
each framework with its own built-in layers (see the `impl_*` packages). Everything here is
framework-free: the frameworks import it, never the other way round.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, cast

import jax
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from shared.core import check_batch_size, check_canonical_shapes, check_float_array

MODEL = "mlp-bn"

CANONICAL_PARAMS = (
    "dense1.kernel",
    "dense1.bias",
    "bn.scale",
    "bn.bias",
    "dense2.kernel",
    "dense2.bias",
)
"""Canonical parameter names; kernels are laid out (in, out), as `x @ kernel`."""

CANONICAL_STATE = ("bn.mean", "bn.var")
"""Canonical running statistics: the values each framework normalises with at eval time."""

KNOBS = ("momentum", "epsilon", "mode", "state", "optimizer")
"""BatchNorm settings that a framework may keep at its own default (`native_defaults`).

- `momentum`: the EMA coefficient (Flax `momentum`, Haiku `decay_rate`, Equinox `momentum`).
- `epsilon`: added to the variance.
- `mode`: Equinox's `mode` (unset means "ema"; aligned: "batch").
- `state`: start from the framework's own initial running statistics instead of the
  canonical ones (Haiku: zero-debiased EMA whose counter starts at 0; Equinox: its counter
  at 0, or the empty "ema" buffers).
- `optimizer`: a native loop that trains with its framework's own optimizer (Keras's) keeps
  that optimizer's defaults where they differ from optax's (Keras's Adam: epsilon 1e-7).

The variance formula is not a knob: Flax's default `E[x^2] - E[x]^2` (clamped at 0) is also
Haiku's only formula (unclamped), so the aligned setting keeps it; Equinox has only the
two-pass `E[(x - E[x])^2]`, a residual difference covered by the stated tolerances.
"""

SATURATED_COUNT = 2**30
"""The EMA counter written by `from_canonical` in Haiku and Equinox.

Both divide the EMA by `1 - momentum**count` (zero debiasing); at this count the power is 0
in float32 for any momentum < 1 - 2e-8, so the division is by exactly 1: the stored value is
the canonical one, bit for bit, and later updates follow the plain (Flax) EMA.
"""


@dataclass(frozen=True)
class MlpBnConfig:
    """Hyperparameters of the MLP with BatchNorm, shared by every framework.

    **Arguments:**

    - `features`: input size (64 for scikit-learn's 8x8 digits).
    - `hidden`: the hidden width H (32 by default).
    - `classes`: number of classes (10 for digits).
    - `momentum`: the aligned BatchNorm EMA coefficient, `stat <- m * stat + (1 - m) * batch`.
    - `epsilon`: the aligned epsilon added to the variance.
    - `dense1_bias`: give the first Dense a bias. Under BatchNorm its true gradient is 0, and
      Adam turns the rounding noise of the computed one into steps of +-lr; drop it for Adam.
    - `native_defaults`: names from [`KNOBS`][] for which each framework keeps its own
      default instead of the aligned value; all of them is the `--defaults` comparison.
    - `axis_name`: a named axis (vmap or pmap) over which BatchNorm averages batch statistics.
    """

    features: int = 64
    hidden: int = 32
    classes: int = 10
    momentum: float = 0.9
    epsilon: float = 1e-5
    dense1_bias: bool = True
    native_defaults: tuple[str, ...] = field(default=())
    axis_name: str | None = None

    def __post_init__(self) -> None:
        for name in ("features", "hidden", "classes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"mlp-bn: {name} must be an int >= 1, got {value!r}")
        if isinstance(self.momentum, bool) or not 0.0 <= float(self.momentum) < 1.0:
            raise ValueError(f"mlp-bn: momentum must be in [0, 1), got {self.momentum!r}")
        if isinstance(self.epsilon, bool) or not float(self.epsilon) > 0.0:
            raise ValueError(f"mlp-bn: epsilon must be > 0, got {self.epsilon!r}")
        unknown = [k for k in self.native_defaults if k not in KNOBS]
        if unknown:
            raise ValueError(
                f"mlp-bn: unknown native_defaults entry {unknown[0]!r}; expected some of "
                f"{', '.join(KNOBS)}"
            )

    def keeps(self, knob: str) -> bool:
        """Does each framework keep its own default for this BatchNorm setting?"""
        return knob in self.native_defaults

    def shapes(self) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
        """Canonical shapes of params and state (without `dense1.bias` when it is dropped)."""
        f, h, c = self.features, self.hidden, self.classes
        params = {
            "dense1.kernel": (f, h),
            "dense1.bias": (h,),
            "bn.scale": (h,),
            "bn.bias": (h,),
            "dense2.kernel": (h, c),
            "dense2.bias": (c,),
        }
        if not self.dense1_bias:
            del params["dense1.bias"]
        return params, {"bn.mean": (h,), "bn.var": (h,)}


def canonical_init(
    config: MlpBnConfig, seed: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One deterministic float32 init, loaded into every framework with `from_canonical`.

    LeCun-normal kernels (standard normal times `1/sqrt(fan_in)`, from NumPy's generator so
    that they do not move with the JAX version), zero biases, BatchNorm scale 1 and bias 0,
    running mean 0 and running variance 1.

    **Arguments:**

    - `config`: fixes the shapes.
    - `seed`: seeds NumPy's generator.
    """
    rng = np.random.default_rng(seed)
    f, h, c = config.features, config.hidden, config.classes
    params = {
        "dense1.kernel": rng.standard_normal((f, h)) / np.sqrt(f),
        "dense1.bias": np.zeros(h),
        "bn.scale": np.ones(h),
        "bn.bias": np.zeros(h),
        "dense2.kernel": rng.standard_normal((h, c)) / np.sqrt(h),
        "dense2.bias": np.zeros(c),
    }
    if not config.dense1_bias:
        del params["dense1.bias"]
    state = {"bn.mean": np.zeros(h), "bn.var": np.ones(h)}
    as32 = {k: v.astype(np.float32) for k, v in params.items()}
    return as32, {k: v.astype(np.float32) for k, v in state.items()}


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class Labelled:
    """Features and integer labels: one batch, or one batch per step stacked on axis 0.

    A pytree (so `lax.scan` slices it into one `Labelled` per step) and a sequence over its
    leading axis (so the per-step loops iterate over it).

    **Fields:**

    - `x`: float features, (batch, features) or (steps, batch, features).
    - `labels`: integer labels, (batch,) or (steps, batch).
    """

    x: Float[Array, "*steps batch features"] | Float[np.ndarray, "*steps batch features"]
    labels: Int[Array, "*steps batch"] | Int[np.ndarray, "*steps batch"]

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, index: int) -> Labelled:
        return Labelled(self.x[index], self.labels[index])

    def __iter__(self) -> Iterator[Labelled]:
        for s in range(len(self)):
            yield self[s]


def mlp_bn_inputs(batch: Labelled) -> jax.Array | np.ndarray:
    """What the model sees of a batch: its features."""
    return batch.x


def mlp_bn_loss(logits: Float[Array, "batch classes"], batch: Labelled) -> jax.Array:
    """Mean softmax cross-entropy of the logits against the batch's integer labels."""
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch.labels)
    return cast(jax.Array, losses.mean())


class HasFeatures(Protocol):
    """A config that fixes the input's feature count (mlp-bn's, mlp-dropout's)."""

    @property
    def features(self) -> int: ...


def check_features(where: str, x: object, config: HasFeatures, *, name: str = "x") -> None:
    """Check the rank, feature count and dtype of the model's input (tracers too).

    **Arguments:**

    - `where`: who checks (an implementation's name); it leads the message.
    - `x`: the input, (batch, features).
    - `config`: fixes the feature count.
    - `name`: the argument's name in the message.
    """
    shape = check_float_array(where, x, name=name)
    if len(shape) != 2 or shape[1] != config.features:
        raise ValueError(
            f"{where}: {name} must be shaped (batch, {config.features}) "
            f"({config.features} features), got shape {shape}"
        )
    check_batch_size(where, shape, name=name)


def check_labels(where: str, labels: object, config: MlpBnConfig, *, name: str = "labels") -> None:
    """Check that concrete labels are integers in [0, classes)."""
    array = np.asarray(labels)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{where}: {name} must have an integer dtype, got {array.dtype}")
    bad = (array < 0) | (array >= config.classes)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{where}: {name} must lie in [0, {config.classes}), found {array[first]} at "
            f"index {first}"
        )


def check_canonical(
    where: str, params: Mapping[str, object], state: Mapping[str, object], config: MlpBnConfig
) -> None:
    """Check canonical weights: every entry present, none extra, each with its shape.

    The error names the entry, e.g. `haiku: canonical params entry 'bn.scale' has shape (4,);
    expected (32,)`.
    """
    check_canonical_shapes(where, params, state, config.shapes())
