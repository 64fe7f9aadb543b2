"""Input checks shared by the harness and the implementations.

Every check raises before any state changes, and names who is complaining (`where`), the
argument, and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

LISTED = 8
"""Up to this many expected names, an unexpected entry's error lists them all."""


def check_float_array(where: str, x: object, *, name: str = "x") -> tuple[int, ...]:
    """Check that `x` is an array (or tracer) of a floating dtype; return its shape."""
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is None or dtype is None:
        raise TypeError(f"{where}: {name} must be an array, got {type(x).__name__}")
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"{where}: {name} must have a floating dtype, got {dtype}")
    return tuple(shape)


def check_batch_size(where: str, shape: tuple[int, ...], *, name: str = "x") -> None:
    """Check that a (batch, ...) shape holds at least one example."""
    if shape[0] < 1:
        raise ValueError(f"{where}: {name} must hold at least one example, got shape {shape}")


def check_finite(where: str, x: npt.ArrayLike, *, name: str = "x") -> None:
    """Check that concrete data holds no NaN or infinity."""
    bad = ~np.isfinite(np.asarray(x))
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{where}: {name} must be finite, found {int(bad.sum())} non-finite value(s), "
            f"the first at index {first}"
        )


def check_steps(where: str, steps: object) -> int:
    """Check a step count and return it as an int."""
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer):
        raise TypeError(f"{where}: steps must be an int, got {type(steps).__name__}")
    if steps < 1:
        raise ValueError(f"{where}: steps must be >= 1, got {steps}")
    return int(steps)


def check_canonical_shapes(
    where: str,
    params: Mapping[str, object],
    state: Mapping[str, object],
    shapes: tuple[Mapping[str, tuple[int, ...]], Mapping[str, tuple[int, ...]]],
) -> None:
    """Check canonical weights against a model's `(params, state)` shapes: every entry
    present, none extra, each with its shape. The error names the entry, e.g. `haiku:
    canonical params entry 'bn.scale' has shape (4,); expected (32,)`."""
    for group, values, expected in (("params", params, shapes[0]), ("state", state, shapes[1])):
        for key, shape in expected.items():
            if key not in values:
                raise ValueError(
                    f"{where}: canonical {group} entry {key!r} is missing; expected an array "
                    f"of shape {shape}"
                )
            got = tuple(np.shape(np.asarray(values[key])))
            if got != shape:
                raise ValueError(
                    f"{where}: canonical {group} entry {key!r} has shape {got}; expected {shape}"
                )
        extra = sorted(set(values) - set(expected))
        if extra:
            names = (
                ", ".join(expected)
                if len(expected) <= LISTED
                else f"the {len(expected)} names of config.shapes()"
            )
            raise ValueError(
                f"{where}: unexpected canonical {group} entry {extra[0]!r}; expected only {names}"
            )
