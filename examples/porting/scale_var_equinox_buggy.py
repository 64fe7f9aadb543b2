"""The same Equinox port with a porting bug: the running variance is the centred variance.

`jnp.var(x, axis=0)` reads like "the batch variance", but the NNX layer keeps the second
moment `mean(x**2)`. The data have a nonzero mean, so the two differ from the first step, and
the cross-validation names the first place it shows: step 1, `state.var`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from scale_var_equinox import EquinoxScaleVar, ScaleVar


class CentredScaleVar(ScaleVar):
    def second_moment(self, x: jax.Array) -> jax.Array:
        return jnp.var(x, axis=0)  # the bug: centred, where the NNX layer is not


class BuggyEquinoxScaleVar(EquinoxScaleVar):
    name = "equinox-buggy"
    layer = CentredScaleVar
