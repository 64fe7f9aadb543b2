"""The MLP with BatchNorm in Equinox: `eqx.nn.Linear`, `eqx.nn.BatchNorm`, per-example calls.

Equinox layers act on one example; the batch is a `jax.vmap` with a named axis, over which
`eqx.nn.BatchNorm` averages its statistics. In `mode="batch"` the running statistics are an
EMA from (mean 0, var 1) with a counter, divided at eval by `1 - momentum**counter` (1 while
the counter is 0). The canonical `bn.mean`/`bn.var` are those eval values; `from_canonical`
writes them with the counter at `SATURATED_COUNT`, where the division is by exactly 1. In the
default `mode="ema"` the state is the running (mean, var) and a first-call flag.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Collection, Hashable, Mapping
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PyTree

from shared import Canonical
from shared.models.mlp_bn import (
    SATURATED_COUNT,
    Labelled,
    MlpBnConfig,
    check_canonical,
    check_features,
    mlp_bn_loss,
)

from ._adapter import EquinoxAdapter

AXIS = "batch"


# --8<-- [start:equinox-mlp-bn-model]
class MlpBn(eqx.Module):
    """Dense -> BatchNorm -> relu -> Dense, called on one example (vmap it over the batch)."""

    dense1: eqx.nn.Linear
    bn: eqx.nn.BatchNorm
    dense2: eqx.nn.Linear

    def __init__(
        self,
        features: int,
        hidden: int,
        classes: int,
        *,
        key: jax.Array,
        dense1_bias: bool = True,
        axis_name: Hashable | tuple[Hashable, ...] = AXIS,
        **bn_kwargs: Any,
    ):
        k1, k2 = jax.random.split(key)
        self.dense1 = eqx.nn.Linear(features, hidden, use_bias=dense1_bias, key=k1)
        # The vmap axis of the batch; with devices too, (AXIS, device axis): the statistics
        # are averaged over both.
        self.bn = eqx.nn.BatchNorm(hidden, axis_name=axis_name, **bn_kwargs)
        self.dense2 = eqx.nn.Linear(hidden, classes, key=k2)

    def __call__(
        self, x: Float[Array, " features"], state: eqx.nn.State
    ) -> tuple[Array, eqx.nn.State]:
        h, state = self.bn(self.dense1(x), state)
        return self.dense2(jax.nn.relu(h)), state


def batched(
    model: MlpBn, x: Float[Array, "batch features"], state: eqx.nn.State
) -> tuple[Array, eqx.nn.State]:
    """Run the per-example model on a batch: BatchNorm reduces over the named vmap axis."""
    return jax.vmap(model, axis_name=AXIS, in_axes=(0, None), out_axes=(0, None))(x, state)


# --8<-- [end:equinox-mlp-bn-model]


# --8<-- [start:equinox-mlp-bn-train-step]
@eqx.filter_value_and_grad(has_aux=True)
def compute_loss(model: MlpBn, state: eqx.nn.State, batch: Labelled) -> tuple[Array, eqx.nn.State]:
    # Labelled.x may be NumPy outside a trace; under filter_jit it is an Array.
    logits, state = batched(model, batch.x, state)  # type: ignore[arg-type]
    return mlp_bn_loss(logits, batch), state


@eqx.filter_jit
def train_step(
    model: MlpBn,
    state: eqx.nn.State,
    opt_state: optax.OptState,
    batch: Labelled,
    tx: optax.GradientTransformation,
) -> tuple[MlpBn, eqx.nn.State, optax.OptState, Array]:
    (loss, state), grads = compute_loss(model, state, batch)
    updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    model = eqx.apply_updates(model, updates)
    return model, state, opt_state, loss


# --8<-- [end:equinox-mlp-bn-train-step]


def bn_kwargs(config: MlpBnConfig) -> dict[str, Any]:
    """eqx.nn.BatchNorm's arguments: the aligned values, except where Equinox's are kept."""
    kwargs: dict[str, Any] = {}
    if not config.keeps("momentum"):
        kwargs["momentum"] = config.momentum
    if not config.keeps("epsilon"):
        kwargs["eps"] = config.epsilon
    if not config.keeps("mode"):
        kwargs["mode"] = "batch"
    return kwargs


@functools.partial(jax.jit, static_argnames="momentum")
def _debiased(
    hidden_mean: Array, hidden_var: Array, counter: Array, momentum: float
) -> tuple[Array, Array]:
    """The running statistics eqx.nn.BatchNorm divides out at inference (`mode="batch"`).

    Jitted as inside BatchNorm, where the counter is traced: called eagerly, `momentum **
    counter` would compile one `integer_pow` per distinct counter value, one per step.
    """
    scale = jnp.where(counter == 0, 1, 1 - momentum**counter)
    return hidden_mean / scale, hidden_var / scale


class EquinoxMlpBn(EquinoxAdapter[MlpBnConfig, MlpBn]):
    """Adapter from the Equinox MLP to the harness protocol.

    With `config.axis_name` (data-parallel), BatchNorm averages over its own vmap axis and
    that named device axis together.
    """

    model = "mlp-bn"
    train_step = staticmethod(train_step)
    params_rename: Mapping[str, str] = {
        "dense1.weight": "dense1.kernel",
        "bn.weight": "bn.scale",
        "dense2.weight": "dense2.kernel",
    }
    transposed: Collection[str] = ("dense1.kernel", "dense2.kernel")
    batch_axis: str | None = AXIS
    bn_defaults: ClassVar[dict[str, str]] = {  # defaults that differ from the aligned ones
        "momentum": "momentum=0.99",
        "mode": "mode='ema' (unset)",
        "state": "counter 0: debiases a var EMA that starts at 1",
    }

    def make(self, key: jax.Array) -> tuple[MlpBn, eqx.nn.State]:
        c = self.config
        # --8<-- [start:equinox-cross-device]
        # BatchNorm averages over its own vmap axis; data-parallel, over the devices' too.
        axis_name = AXIS if c.axis_name is None else (AXIS, c.axis_name)
        # --8<-- [end:equinox-cross-device]
        with warnings.catch_warnings():
            # Equinox warns when `mode` is left unset; keeping that default is the point of
            # `native_defaults=("mode",)`, and the report names it.
            warnings.filterwarnings("ignore", message=".*BatchNorm.*mode.*")
            return eqx.nn.make_with_state(MlpBn)(
                c.features,
                c.hidden,
                c.classes,
                key=key,
                dense1_bias=c.dense1_bias,
                axis_name=axis_name,
                **bn_kwargs(c),
            )

    def check(self, x: Any) -> None:
        check_features(self.name, x, self.config)

    def apply(
        self,
        params: PyTree,
        state: eqx.nn.State | None,
        x: Any,
        *,
        train: bool,
        key: jax.Array | None = None,
    ) -> tuple[Array, eqx.nn.State | None]:
        self.check(x)
        if state is None:
            raise ValueError(f"{self.name}: mlp-bn needs its eqx.nn.State (BatchNorm's); got None")
        model = eqx.nn.inference_mode(self.combine(params), value=not train)
        return batched(model, x, state)

    def state_to_canonical(self, state: eqx.nn.State) -> Canonical:
        """The running statistics BatchNorm normalises with at inference."""
        bn = self.static.bn
        if bn.mode == "batch":
            # Exactly what eqx.nn.BatchNorm computes at inference.
            counter = state.get(bn.batch_counter)
            hidden_mean, hidden_var = state.get(bn.batch_state_index)
            mean, var = _debiased(hidden_mean, hidden_var, counter, bn.momentum)
        else:
            mean, var = state.get(bn.ema_state_index)
        return {"bn.mean": mean, "bn.var": var}

    def from_canonical(
        self, params: Canonical, state: Canonical
    ) -> tuple[PyTree, eqx.nn.State | None]:
        check_canonical(self.name, params, state, self.config)
        return super().from_canonical(params, state)

    def state_from_canonical(
        self, model: MlpBn, template: eqx.nn.State, state: Canonical
    ) -> eqx.nn.State:
        """The statistics as BatchNorm's own state: in `mode="batch"` with the counter at
        `SATURATED_COUNT` (the debiasing divides by exactly 1), in `mode="ema"` with the
        first-call flag off."""
        native_state = template
        stats = (jnp.asarray(state["bn.mean"]), jnp.asarray(state["bn.var"]))
        bn = model.bn
        if bn.mode == "batch":
            # The mode decides which indices BatchNorm made (the others are None).
            assert bn.batch_counter is not None and bn.batch_state_index is not None
            native_state = native_state.set(bn.batch_counter, jnp.asarray(SATURATED_COUNT))
            native_state = native_state.set(bn.batch_state_index, stats)
        else:
            assert bn.ema_first_time_index is not None and bn.ema_state_index is not None
            native_state = native_state.set(bn.ema_first_time_index, jnp.array(False))
            native_state = native_state.set(bn.ema_state_index, stats)
        return native_state
