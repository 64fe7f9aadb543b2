"""The bias adder's config and input check, shared by every framework."""

from __future__ import annotations

from dataclasses import dataclass

from shared.core import check_batch_size, check_float_array

MODEL = "bias-adder"


@dataclass(frozen=True)
class BiasAdderConfig:
    """Hyperparameters of the running-mean bias adder, shared by every framework.

    **Arguments:**

    - `features`: the size D of the last input axis, and of `bias` and `mean`.
    - `momentum`: the EMA coefficient m in `mean <- m * mean + (1 - m) * batch_mean`, in [0, 1).
    - `keepdims`: update `mean` with `keepdims=True`, as the Flax docs page does,
      so that it turns from shape (D,) into (1, D) after the first training call.
    - `axis_name`: when set, the batch mean is averaged over this named axis (`lax.pmean`), so
      that data-parallel replicas keep one synchronised state.
    """

    features: int
    momentum: float = 0.9
    keepdims: bool = False
    axis_name: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.features, bool) or not isinstance(self.features, int):
            raise TypeError(f"features must be an int, got {type(self.features).__name__}")
        if self.features < 1:
            raise ValueError(f"features must be >= 1, got {self.features}")
        if isinstance(self.momentum, bool) or not isinstance(self.momentum, int | float):
            raise TypeError(f"momentum must be a float, got {type(self.momentum).__name__}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")


def check_input(where: str, x: object, config: BiasAdderConfig, *, name: str = "x") -> None:
    """Check the rank, feature size and dtype of a model input (works on tracers too).

    **Arguments:**

    - `where`: who checks, e.g. the implementation's name; it leads the message.
    - `x`: the input; anything with `shape` and `dtype`.
    - `config`: the model's config, which fixes the feature size.
    - `name`: the argument's name in the message.
    """
    shape = check_float_array(where, x, name=name)
    if len(shape) != 2:
        raise ValueError(f"{where}: {name} must have rank 2, (batch, features), got shape {shape}")
    if shape[1] != config.features:
        raise ValueError(
            f"{where}: {name} has {shape[1]} features but the model's state has "
            f"{config.features}; expected shape (batch, {config.features})"
        )
    check_batch_size(where, shape, name=name)
