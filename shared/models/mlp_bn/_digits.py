"""scikit-learn's digits (shipped in the package, never downloaded), split and batched."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.core import check_steps

from ._config import Labelled, MlpBnConfig, check_labels

TEST_FRACTION = 0.25
SPLIT_SEED = 0


@dataclass(frozen=True)
class Digits:
    """A fixed stratified train/test split of the 8x8 digits, features scaled to [0, 1].

    **Fields:** `x_train` (n, 64) float32, `y_train` (n,) int32, `x_test`, `y_test`.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits_split(test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED) -> Digits:
    """Load scikit-learn's digits and split them, stratified by class, deterministically.

    **Arguments:**

    - `test_fraction`: the share of examples held out for the test split.
    - `seed`: the split's `random_state`.

    Pixels are integers 0..16; they are divided by 16, so features lie in [0, 1].
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (np.asarray(data.data, np.float64) / 16.0).astype(np.float32)
    y = np.asarray(data.target, np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    return Digits(x_train, y_train, x_test, y_test)


def minibatches(
    x: np.ndarray, y: np.ndarray, batch: int, steps: int, seed: int, classes: int = 10
) -> Labelled:
    """`steps` shuffled mini-batches, stacked: each epoch a fresh permutation, no remainder.

    **Arguments:**

    - `x`, `y`: the examples, (n, features), and their integer labels, (n,).
    - `batch`: examples per step (at most `len(x)`).
    - `steps`: how many batches.
    - `seed`: seeds NumPy's generator, which draws one permutation per epoch.
    - `classes`: labels must lie in [0, classes).
    """
    steps = check_steps("data", steps)
    if np.ndim(x) != 2 or np.shape(y) != (np.shape(x)[0],):
        raise ValueError(
            f"data: x must be (n, features) and labels (n,), got shapes {np.shape(x)} and "
            f"{np.shape(y)}"
        )
    check_labels("data", y, MlpBnConfig(features=np.shape(x)[1], classes=classes))
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= len(x):
        raise ValueError(f"data: batch must be an int in [1, {len(x)}], got {batch!r}")
    rng = np.random.default_rng(seed)
    per_epoch = len(x) // batch
    order = np.concatenate(
        [rng.permutation(len(x))[: per_epoch * batch] for _ in range(-(-steps // per_epoch))]
    )[: steps * batch].reshape(steps, batch)
    return Labelled(np.ascontiguousarray(x[order]), np.ascontiguousarray(y[order]))
