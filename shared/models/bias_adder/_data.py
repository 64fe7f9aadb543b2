"""Training data: the Flax page's one fixed batch, or the user's own array."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from shared.core import check_finite, check_steps

from ._config import BiasAdderConfig, check_input


def fixed_batch(batch: int, features: int, seed: int) -> np.ndarray:
    """One fixed float32 batch of standard normal data, shaped (batch, features).

    NumPy's generator, not `jax.random`, so that the data do not move with the JAX version.
    """
    for name, value in (("batch", batch), ("features", features)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"data: {name} must be an int >= 1, got {value!r}")
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, features), dtype=np.float32)


def as_batches(
    where: str, data: npt.ArrayLike, config: BiasAdderConfig, steps: int | None = None
) -> np.ndarray:
    """Validate data and lay it out as one float32 batch per step, shaped (steps, batch, D).

    **Arguments:**

    - `where`: who asks, for error messages.
    - `data`: (batch, features), reused at every step as in the Flax page's loop, or
      (steps, batch, features), one batch per step.
    - `config`: fixes the feature size.
    - `steps`: how many steps; defaults to the data's length for rank 3 and is required
      for rank 2.

    Floating data of another precision is converted to float32, the models' dtype; integer,
    boolean and complex data, and non-finite values, are refused. Rank-2 data comes back as
    a read-only broadcast view (stride 0 on the steps axis).
    """
    array = np.asarray(data)
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"{where}: data must have a floating dtype, got {array.dtype}")
    if array.ndim not in (2, 3):
        raise ValueError(
            f"{where}: data must have rank 2, (batch, features), or rank 3, "
            f"(steps, batch, features), got shape {array.shape}"
        )
    check_input(where, array[0] if array.ndim == 3 else array, config, name="data")
    check_finite(where, array, name="data")
    if array.ndim == 2:
        if steps is None:
            raise ValueError(f"{where}: steps is required when data has rank 2")
        steps = check_steps(where, steps)
        # A read-only view of the one batch, not `steps` copies of it: a run over a million
        # features keeps one batch in memory, whatever its number of steps.
        batch = np.ascontiguousarray(array, dtype=np.float32)
        return np.broadcast_to(batch, (steps, *batch.shape))
    steps = check_steps(where, array.shape[0] if steps is None else steps)
    if steps > array.shape[0]:
        raise ValueError(f"{where}: steps={steps} but data holds only {array.shape[0]} batches")
    return np.ascontiguousarray(array[:steps], dtype=np.float32)
