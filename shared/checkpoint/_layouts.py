"""Each framework's native checkpoint layout, as `checkpoint convert` reads and writes it.

A native checkpoint holds the params and state where the framework's own loop keeps them
(read and written through the implementation's canonical names), and the optimizer state
and step counter in the framework's own form. A layout (in the framework's `impl_*`
package) says where those two are; this module lists the layouts by implementation name,
as lazy `"module:attr"` strings, so that nothing here imports a framework.
"""

from __future__ import annotations

from typing import Any, Protocol

import optax

from .._registry import FRAMEWORKS
from ..core import load_object
from ._errors import CheckpointError

LAYOUTS: dict[str, str] = {
    "flax_linen": "impl_flax:LinenLayout",
    "flax_nnx": "impl_flax:NNXLayout",
    "haiku": "impl_haiku:HaikuLayout",
    "equinox": "impl_equinox:EquinoxLayout",
}
"""Implementation name -> its framework's native layout (Keras's is not converted yet)."""


class NativeLayout(Protocol):
    """Where a framework's native checkpoint keeps the optimizer state and the step.

    **Attributes:** `description`, one line naming the layout's parts (for errors and
    reports).
    """

    description: str

    def mirrored(self, tree: Any) -> Any:
        """The part of `tree` that optax's state mirrors (its moments have its structure)."""
        ...

    def optimizer(self, tree: Any, tx: optax.GradientTransformation) -> tuple[Any, Any]:
        """Optax's state in optax's own form, over `mirrored(tree)`, and the step counter
        (`None` where the framework keeps none); `KeyError` names a leaf it lacks."""
        ...

    def with_optimizer(
        self, tree: Any, tx: optax.GradientTransformation, opt_state: Any, step: int
    ) -> Any:
        """A copy of `tree` (a fresh loop's checkpoint) holding `opt_state` (optax's form,
        over `mirrored(tree)`) and `step` in the framework's own form and dtype."""
        ...


class OptaxDictLayout:
    """A native checkpoint that keeps optax's state as it is, under `"opt_state"`, beside
    the part it mirrors (`mirrored_key`), and counts steps only where the loop does (its
    dropout keys' `"steps"`): Haiku's and Equinox's, whose subclasses name the key.

    **Attributes:** `mirrored_key`, `description`.
    """

    mirrored_key: str = ""
    description: str = ""

    def mirrored(self, tree: dict[str, Any]) -> Any:
        """What optax's state mirrors: `tree[mirrored_key]`."""
        return tree[self.mirrored_key]

    def optimizer(
        self, tree: dict[str, Any], tx: optax.GradientTransformation
    ) -> tuple[optax.OptState, Any]:
        """Optax's state as it is, and the loop's step counter (`None` without one)."""
        return tree["opt_state"], tree.get("steps")

    def with_optimizer(
        self,
        tree: dict[str, Any],
        tx: optax.GradientTransformation,
        opt_state: optax.OptState,
        step: int,
    ) -> dict[str, Any]:
        """`tree` holding `opt_state`, and `step` where the loop counts steps."""
        out = {**tree, "opt_state": opt_state}
        if "steps" in tree:
            out["steps"] = step  # a Python int, as the loop keeps it
        return out


def layout_for(implementation: str, option: str) -> NativeLayout:
    """The layout of `implementation`; a [`CheckpointError`][] naming `option` when it has
    none."""
    if implementation not in LAYOUTS:
        what = (
            "its native checkpoint is not converted yet"
            if implementation in FRAMEWORKS
            else "unknown framework for a native checkpoint"
        )
        raise CheckpointError(
            f"{option} {implementation}: {what}; expected one of {', '.join(LAYOUTS)}"
        )
    layout: NativeLayout = load_object(LAYOUTS[implementation], option=option)()
    return layout
