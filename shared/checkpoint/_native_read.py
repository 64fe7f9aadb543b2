"""A native checkpoint read leaf by leaf against a framework's layout, every dtype checked.

Orbax restores against a target by casting each leaf to the target's dtype, silently. A
conversion reads the leaves as they were saved instead, names any that the layout lacks or
that is missing, and converts a dtype only where nothing can change: an integer counter
into another integer type its value fits (Linen's int32 step, NNX's uint32), never a float.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from ..core import leaf_name, named_leaves
from ._errors import CheckpointError
from ._trees import restored_into, savable


def _kind(x: Any) -> tuple[tuple[int, ...], np.dtype | str]:
    if isinstance(x, bool | int | float):
        return (), "float" if isinstance(x, float) else "int"
    return tuple(np.shape(x)), np.dtype(x.dtype)


def converted(where: str, name: str, saved: np.ndarray, target: Any) -> Any:
    """`saved` as the target leaf's dtype, or a [`CheckpointError`][] naming the leaf: a
    shape that differs, or a dtype that cannot be converted without changing a value."""
    shape, dtype = _kind(target)
    if isinstance(dtype, str):  # a Python number in the target takes the saved dtype
        if saved.shape != () or saved.dtype.kind not in ("iu" if dtype == "int" else "f"):
            raise CheckpointError(
                f"{where}: leaf {name!r} is {saved.dtype}{list(saved.shape)}, expected a "
                f"scalar {dtype}"
            )
        return saved
    if tuple(saved.shape) != shape:
        raise CheckpointError(
            f"{where}: leaf {name!r} is shaped {list(saved.shape)}, expected {list(shape)}"
        )
    if saved.dtype == dtype:
        return saved
    if saved.dtype.kind in "iu" and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if saved.size and (saved.min() < info.min or saved.max() > info.max):
            raise CheckpointError(
                f"{where}: leaf {name!r} is {saved.dtype} holding {saved.min()}..{saved.max()}, "
                f"expected {dtype}, which cannot hold it"
            )
        return saved.astype(dtype)
    raise CheckpointError(
        f"{where}: leaf {name!r} is {saved.dtype}, expected {dtype}; a conversion casts only "
        "integer counters (a float cast would change the run)"
    )


def read_layout(
    saved: Mapping[str, np.ndarray], template: Any, where: str, description: str
) -> Any:
    """The saved leaves (by dotted name) put into the structure of `template` (a fresh
    native checkpoint), each converted by [`converted`][].

    Raises [`CheckpointError`][]: top-level entries that are not the layout's (another
    framework's checkpoint), a leaf the layout lacks, a leaf that is missing, a dtype.
    """
    target = savable(template)
    wanted = named_leaves(target)
    tops = sorted({n.split(".")[0] for n in saved})
    expected_tops = sorted({n.split(".")[0] for n in wanted})
    if not set(tops) & set(expected_tops) or set(tops) - set(expected_tops):
        raise CheckpointError(
            f"{where}: holds {', '.join(tops) or 'nothing'} at its top, expected "
            f"{description}: {', '.join(expected_tops)}"
        )
    extra = sorted(set(saved) - set(wanted))
    if extra:
        raise CheckpointError(
            f"{where}: holds a leaf {extra[0]!r} that {description} does not; expected its "
            f"{len(wanted)} leaves"
        )
    missing = sorted(set(wanted) - set(saved))
    if missing:
        raise CheckpointError(
            f"{where}: has no leaf {missing[0]!r} ({len(missing)} missing); expected {description}"
        )

    def leaf(path: Any, x: Any) -> Any:
        name = leaf_name(path)
        return converted(where, name, np.asarray(saved[name]), x)

    return restored_into(template, jax.tree_util.tree_map_with_path(leaf, target))
