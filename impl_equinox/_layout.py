"""Equinox's native checkpoint as `checkpoint convert` reads and writes it."""

from __future__ import annotations

from typing import Any

import optax


class EquinoxLayout:
    """`{"model", "state", "opt_state"}`: the model's arrays (`eqx.filter(model,
    eqx.is_array)`, `Linear` weights as (out, in)), its `eqx.nn.State` where it has one, and
    optax's state over the model's arrays. Equinox counts no step; a loop that needs one for
    its dropout keys saves it as `steps`."""

    description = (
        "Equinox's model arrays (eqx.filter), eqx.nn.State and optax's opt_state over the "
        "model (steps where the loop counts them)"
    )

    def mirrored(self, tree: dict[str, Any]) -> Any:
        """What optax's state mirrors: the model's arrays."""
        return tree["model"]

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
