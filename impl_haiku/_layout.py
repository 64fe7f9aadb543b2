"""Haiku's native checkpoint as `checkpoint convert` reads and writes it: plain dicts."""

from __future__ import annotations

from typing import Any

import optax


class HaikuLayout:
    """`{"params", "state", "opt_state"}`: Haiku's `module name -> name -> array` dicts
    (BatchNorm's EMAs as `hidden`, `average` and `counter`, shaped like its inputs' trailing
    axes) and optax's own state. Haiku counts no step; a loop that needs one for its
    dropout keys saves it as `steps`."""

    description = (
        "Haiku's dicts (params, state with BatchNorm's hidden/average/counter, optax's "
        "opt_state; steps where the loop counts them)"
    )

    def mirrored(self, tree: dict[str, Any]) -> Any:
        """What optax's state mirrors: the params."""
        return tree["params"]

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
