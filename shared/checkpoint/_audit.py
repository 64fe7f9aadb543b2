"""The audit: a restored tree against the live one it was saved from, leaf by leaf."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core import named_leaves
from ._trees import is_key

KINDS = ("dropped", "not saved", "reset", "cast", "reshaped", "changed", "unexpected")
"""What can be wrong with a restored leaf (see [`audit`][])."""


@dataclass(frozen=True)
class Finding:
    """One restored leaf that is not the live one.

    **Fields:** `leaf` (its dotted name), `kind` (one of `KINDS`), `detail` (one line).
    """

    leaf: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.leaf}: {self.kind} ({self.detail})"


def _host(x: Any) -> np.ndarray:
    import jax

    if is_key(x):
        x = jax.random.key_data(x)
    return np.asarray(x)


def _hosted(tree: Any, like: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Named leaves as arrays; a Python number (a fresh `TrainState`'s `step = 0`) takes the
    dtype of the live leaf of that name, as it would on its way into a jitted step."""
    out = {}
    for k, v in named_leaves(tree).items():
        if isinstance(v, bool | int | float) and k in like:
            out[k] = np.asarray(v, like[k].dtype)
        else:
            out[k] = _host(v)
    return out


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


def audit(
    live: Any,
    restored: Any,
    *,
    saved: Collection[str] | None = None,
    initial: Any = None,
) -> list[Finding]:
    """Every leaf of `restored` that is not bitwise the leaf of `live` with that name.

    **Arguments:**

    - `live`: the objects' whole state when they were saved (all of it, not only what the
      save wrote: an NNX model's `nnx.state(model)`, a `TrainState`, ...).
    - `restored`: the same view of freshly built objects after the restore.
    - `saved`: the names of the leaves the checkpoint holds, to tell a leaf left out of the
      save (`"not saved"`) from one the restore lost.
    - `initial`: the same view of the fresh objects before the restore, to tell a leaf
      reset to its initial value.

    **Returns:** the findings, in leaf order; none for a correct save. Kinds: `"dropped"`
    (live has the leaf, the restored objects do not), `"not saved"`, `"reset"`, `"cast"`
    (dtype), `"reshaped"`, `"changed"` (another value), `"unexpected"` (a leaf live lacks).
    """
    live_leaves = {k: _host(v) for k, v in named_leaves(live).items()}
    back = _hosted(restored, live_leaves)
    first = None if initial is None else _hosted(initial, live_leaves)
    findings = []
    for name, want in live_leaves.items():
        if name not in back:
            findings.append(Finding(name, "dropped", "the restored objects have no such leaf"))
            continue
        got = back[name]
        if got.dtype != want.dtype:
            findings.append(Finding(name, "cast", f"{want.dtype} -> {got.dtype}"))
            continue
        if got.shape != want.shape:
            findings.append(Finding(name, "reshaped", f"{want.shape} -> {got.shape}"))
            continue
        if _same(got, want):
            continue
        at_initial = first is not None and name in first and _same(got, first[name])
        if saved is not None and name not in saved:
            detail = "left out of the checkpoint"
            detail += "; restored at its initial value" if at_initial else ""
            findings.append(Finding(name, "not saved", detail))
        elif at_initial:
            findings.append(Finding(name, "reset", "restored at its initial value"))
        else:
            diff = np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))
            findings.append(Finding(name, "changed", f"max |difference| {diff:.3g}"))
    findings += [
        Finding(name, "unexpected", "the live objects have no such leaf")
        for name in back
        if name not in live_leaves
    ]
    return findings
