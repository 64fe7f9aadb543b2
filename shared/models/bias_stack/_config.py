"""The bias stack's config and input check, shared by every framework."""

from __future__ import annotations

from dataclasses import dataclass

from shared.models.bias_adder import BiasAdderConfig, check_input

MODEL = "bias-stack"


@dataclass(frozen=True)
class BiasStackConfig:
    """Hyperparameters of the bias stack, shared by every framework.

    **Arguments:**

    - `depth`: the number L of blocks (a D x D Dense layer, then a bias adder) in the stack.
    - `features`: the size D of the last input axis, of each block's `bias` and `mean`, and
      each side of its `kernel` (D x D).
    - `momentum`: every bias adder's EMA coefficient m in
      `mean <- m * mean + (1.0 - m) * batch_mean`, in [0, 1).
    - `axis_name`: when set, every bias adder averages its batch mean over this named axis
      (`lax.pmean`), so that data-parallel replicas keep one synchronised state.
    """

    depth: int = 4
    features: int = 4
    momentum: float = 0.9
    axis_name: str | None = None

    def __post_init__(self) -> None:
        for name in ("depth", "features"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{MODEL}: {name} must be an int >= 1, got {value!r}")
            if value < 1:
                raise ValueError(f"{MODEL}: {name} must be an int >= 1, got {value!r}")
        m = self.momentum
        if isinstance(m, bool) or not isinstance(m, int | float):
            raise TypeError(f"{MODEL}: momentum must be a float in [0, 1), got {m!r}")
        if not 0.0 <= m < 1.0:  # NaN fails this too
            raise ValueError(f"{MODEL}: momentum must be a float in [0, 1), got {m!r}")
        if self.axis_name is not None and not isinstance(self.axis_name, str):
            raise TypeError(f"{MODEL}: axis_name must be a str or None, got {self.axis_name!r}")

    @property
    def layer(self) -> BiasAdderConfig:
        """The config of each block's bias adder."""
        return BiasAdderConfig(self.features, self.momentum, axis_name=self.axis_name)


def check_stack_input(where: str, x: object, config: BiasStackConfig) -> None:
    """The bias adder's input check: rank 2, `config.features` features, floating dtype."""
    check_input(where, x, config.layer)


def canonical_params(config: BiasStackConfig) -> tuple[str, ...]:
    """`layers.{l}.kernel` (D x D, laid out (in, out): `h @ kernel`) and `layers.{l}.bias`
    for l in range(depth)."""
    return tuple(
        f"layers.{layer}.{name}" for layer in range(config.depth) for name in ("kernel", "bias")
    )


def canonical_state(config: BiasStackConfig) -> tuple[str, ...]:
    """`layers.{l}.mean` for l in range(depth)."""
    return tuple(f"layers.{layer}.mean" for layer in range(config.depth))
