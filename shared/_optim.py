"""Optimizer choices, built once as optax transformations and once as float64 formulas."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import optax

OptimizerName = Literal["sgd", "momentum", "adam", "adamw"]
OPTIMIZERS: tuple[str, ...] = get_args(OptimizerName)


@dataclass(frozen=True)
class OptimizerConfig:
    """An optax optimizer and its hyperparameters.

    **Arguments:**

    - `name`: `"sgd"`, `"momentum"` (sgd with heavy-ball momentum), `"adam"` or `"adamw"`.
    - `learning_rate`: the step size; the seed uses sgd with 0.02.
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
        """The optax transformation for this config."""
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
