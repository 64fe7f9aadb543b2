"""Optimizer choices, built once as optax transformations and once as float64 formulas."""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
import optax

OptimizerName = Literal["sgd", "momentum", "adam", "adamw"]
OPTIMIZERS: tuple[str, ...] = get_args(OptimizerName)
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class OptimizerConfig:
    """An optax optimizer and its hyperparameters.

    **Arguments:**

    - `name`: `"sgd"`, `"momentum"` (sgd with heavy-ball momentum), `"adam"` or `"adamw"`.
    - `learning_rate`: the step size.
    - `momentum`: heavy-ball coefficient for `"momentum"`.
    - `b1`, `b2`, `eps`: Adam's moment decays and denominator epsilon (optax's defaults).
    - `weight_decay`: AdamW's decoupled weight decay (optax's default).
    """

    name: str = "sgd"
    learning_rate: float = 0.02
    momentum: float = 0.9
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 1e-4

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(
                f"optimizer: unknown name {self.name!r}; expected one of {', '.join(OPTIMIZERS)}"
            )
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(
                f"optimizer: learning_rate must be finite and > 0, got {self.learning_rate}"
            )

    def make(self) -> optax.GradientTransformation:
        """The optax transformation for this config ([`optimizer_config_of`][] finds the
        config again from it)."""
        tx = self._make()
        _MADE_BY[tx.init] = self
        return tx

    def _make(self) -> optax.GradientTransformation:
        if self.name == "sgd":
            return optax.sgd(self.learning_rate)
        if self.name == "momentum":
            return optax.sgd(self.learning_rate, momentum=self.momentum)
        if self.name == "adam":
            return optax.adam(self.learning_rate, b1=self.b1, b2=self.b2, eps=self.eps)
        return optax.adamw(
            self.learning_rate,
            b1=self.b1,
            b2=self.b2,
            eps=self.eps,
            weight_decay=self.weight_decay,
        )


# Keyed by the transformation's `init` function: the transformation itself is a tuple, which
# cannot be weakly referenced, and its functions are made anew by every `make()`.
_MADE_BY: weakref.WeakKeyDictionary[object, OptimizerConfig] = weakref.WeakKeyDictionary()


def optimizer_config_of(tx: optax.GradientTransformation) -> OptimizerConfig | None:
    """The config whose `make()` built `tx`, or `None` for any other transformation.

    A native loop that trains with its framework's own optimizer (Keras's) builds that
    optimizer from these hyperparameters, so that it is the harness's optimizer.
    """
    return _MADE_BY.get(tx.init)


class NumpyOptimizer:
    """optax's sgd, sgd with momentum, adam and adamw, written out in float64.

    Formulas (t counts updates from 1, g is the gradient, p the parameter):

    - sgd: `p -= lr * g`
    - momentum (optax.trace, not Nesterov): `v = mu * v + g`; `p -= lr * v`
    - adam: `m = b1 m + (1-b1) g`; `v = b2 v + (1-b2) g^2`;
      `p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)`
    - adamw: adam's direction plus `weight_decay * p`, both scaled by lr.
    """

    def __init__(self, config: OptimizerConfig, params: dict[str, F64]):
        self.config = config
        self.t = 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params: dict[str, F64], grads: dict[str, F64]) -> dict[str, F64]:
        c = self.config
        self.t += 1
        new = {}
        for k, p in params.items():
            g = grads[k]
            if c.name == "sgd":
                direction = g
            elif c.name == "momentum":
                self.m[k] = c.momentum * self.m[k] + g
                direction = self.m[k]
            else:
                self.m[k] = c.b1 * self.m[k] + (1 - c.b1) * g
                self.v[k] = c.b2 * self.v[k] + (1 - c.b2) * g**2
                m_hat = self.m[k] / (1 - c.b1**self.t)
                v_hat = self.v[k] / (1 - c.b2**self.t)
                direction = m_hat / (np.sqrt(v_hat) + c.eps)
                if c.name == "adamw":
                    direction = direction + c.weight_decay * p
            new[k] = p - c.learning_rate * direction
        return new
