"""Writes `data.npz` beside this file: 5 steps of 8 examples, `x` (5, 8, 4) and the target
`y = tanh(x[..., :3])` (5, 8, 3), float32, from NumPy's seeded generator (the data of the
porting guide's `check_port` example).

`python examples/port_cli/make_data.py` makes it again (the test suite checks that the
committed file is what this makes).
"""

from pathlib import Path

import numpy as np


def make(steps: int = 5, batch: int = 8) -> dict[str, np.ndarray]:
    """The batches, stacked on the leading steps axis, one array per field."""
    x = np.random.default_rng(0).standard_normal((steps, batch, 4)).astype(np.float32)
    return {"x": x, "y": np.tanh(x[..., :3])}


if __name__ == "__main__":
    np.savez(Path(__file__).with_name("data.npz"), **make())
