"""Equinox's native checkpoint as `checkpoint convert` reads and writes it."""

from __future__ import annotations

from shared.checkpoint import OptaxDictLayout


class EquinoxLayout(OptaxDictLayout):
    """`{"model", "state", "opt_state"}`: the model's arrays (`eqx.filter(model,
    eqx.is_array)`, `Linear` weights as (out, in)), its `eqx.nn.State` where it has one, and
    optax's state over the model's arrays. Equinox counts no step; a loop that needs one for
    its dropout keys saves it as `steps`."""

    description = (
        "Equinox's model arrays (eqx.filter), eqx.nn.State and optax's opt_state over the "
        "model (steps where the loop counts them)"
    )
    mirrored_key = "model"
