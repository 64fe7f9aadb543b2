"""The `mlp-dropout` model's shared pieces: config, canonical names and init, per-layer keys.

The model is Dense(features -> hidden), relu, Dropout(rate), Dense(hidden -> classes), written
in each framework with its own built-in layers (see the `impl_*` packages). Its data, loss
and batches are mlp-bn's (scikit-learn's digits): only the randomness is new.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import jax
import numpy as np

MODEL = "mlp-dropout"

KEYS = ("aligned", "native")
"""Where each dropout layer's key comes from.

- `aligned`: the harness's step key, folded with the layer's index ([`dropout_key`][]), given
  to each framework through its own explicit-key argument (Linen `Dropout(rng=...)`, NNX
  `Dropout(rngs=key)`, `hk.dropout(key, ...)`, `eqx.nn.Dropout(key=...)`): every framework
  draws the same mask.
- `native`: each framework's own key plumbing from one integer seed (Linen `rngs=` and
  `make_rng`, an `nnx.Rngs` stream held in the model, `hk.next_rng_key()`, an explicit
  Equinox key): the frameworks draw different masks.
"""

CANONICAL_PARAMS = ("dense1.kernel", "dense1.bias", "dense2.kernel", "dense2.bias")
"""Canonical parameter names; kernels are laid out (in, out), as `x @ kernel`."""


@dataclass(frozen=True)
class MlpDropoutConfig:
    """Hyperparameters of the MLP with dropout, shared by every framework.

    **Arguments:**

    - `features`: input size (64 for scikit-learn's 8x8 digits).
    - `hidden`: the hidden width H.
    - `classes`: number of classes.
    - `rate`: the probability of dropping a unit, in [0, 1).
    - `keys`: `"aligned"` or `"native"` (see [`KEYS`][]).
    - `seed`: the integer seed of a framework's own key plumbing (`native`).
    """

    features: int = 64
    hidden: int = 32
    classes: int = 10
    rate: float = 0.1
    keys: str = "aligned"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("features", "hidden", "classes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"mlp-dropout: {name} must be an int >= 1, got {value!r}")
        if isinstance(self.rate, bool) or not isinstance(self.rate, int | float):
            raise TypeError(f"mlp-dropout: rate must be a float, got {type(self.rate).__name__}")
        if not 0.0 <= self.rate < 1.0:
            raise ValueError(f"mlp-dropout: rate must be in [0, 1), got {self.rate}")
        if self.keys not in KEYS:
            raise ValueError(
                f"mlp-dropout: keys must be one of {', '.join(KEYS)}, got {self.keys!r}"
            )

    @property
    def aligned(self) -> bool:
        return self.keys == "aligned"


def dropout_key(step_key: jax.Array, layer: int = 0) -> jax.Array:
    """The aligned key of one dropout layer in one step: the step's key folded with the
    layer's index. Every framework receives exactly this key for that layer."""
    return jax.random.fold_in(step_key, layer)


def canonical_init(config: MlpDropoutConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """One deterministic float32 init, loaded into every framework with `from_canonical`.

    LeCun-normal kernels (NumPy's generator, so they do not move with the JAX version),
    zero biases.
    """
    rng = np.random.default_rng(seed)
    f, h, c = config.features, config.hidden, config.classes
    params = {
        "dense1.kernel": rng.standard_normal((f, h)) / np.sqrt(f),
        "dense1.bias": np.zeros(h),
        "dense2.kernel": rng.standard_normal((h, c)) / np.sqrt(h),
        "dense2.bias": np.zeros(c),
    }
    return {k: v.astype(np.float32) for k, v in params.items()}


def check_params(where: str, params: Mapping[str, object], config: MlpDropoutConfig) -> None:
    """Check canonical params: every entry present, none extra, each with its shape."""
    f, h, c = config.features, config.hidden, config.classes
    expected = {
        "dense1.kernel": (f, h),
        "dense1.bias": (h,),
        "dense2.kernel": (h, c),
        "dense2.bias": (c,),
    }
    for key, shape in expected.items():
        if key not in params:
            raise ValueError(f"{where}: canonical params entry {key!r} is missing")
        got = tuple(np.shape(np.asarray(params[key])))
        if got != shape:
            raise ValueError(
                f"{where}: canonical params entry {key!r} has shape {got}; expected {shape}"
            )
    extra = sorted(set(params) - set(expected))
    if extra:
        raise ValueError(f"{where}: unexpected canonical params entry {extra[0]!r}")
