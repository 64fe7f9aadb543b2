"""Haiku's native checkpoint as `checkpoint convert` reads and writes it: plain dicts."""

from __future__ import annotations

from shared.checkpoint import OptaxDictLayout


class HaikuLayout(OptaxDictLayout):
    """`{"params", "state", "opt_state"}`: Haiku's `module name -> name -> array` dicts
    (BatchNorm's EMAs as `hidden`, `average` and `counter`, shaped like its inputs' trailing
    axes) and optax's own state. Haiku counts no step; a loop that needs one for its
    dropout keys saves it as `steps`."""

    description = (
        "Haiku's dicts (params, state with BatchNorm's hidden/average/counter, optax's "
        "opt_state; steps where the loop counts them)"
    )
    mirrored_key = "params"
