"""The generic run on a toy model the project does not know: spec checks, the reference, the
per-step keys, cross-validation and its assert-style message (values worked out by hand)."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import shared


@dataclass(frozen=True)
class CountConfig:
    features: int = 3


def _data(config: CountConfig, settings: shared.Settings) -> np.ndarray:
    steps = settings.steps or 4
    return np.ones((steps, settings.batch or 2, config.features), np.float32)


class Counter:
    """y = x * w; the state counts training calls (by `step` per call)."""

    name = "counter"
    model = "count"
    step = 1.0

    def __init__(self, config: CountConfig):
        self.config = config

    def init(self, key, x):
        return {"w": jnp.ones(x.shape[1:])}, {"n": jnp.zeros(())}

    def apply(self, params, state, x, *, train):  # no `key`: a deterministic model needn't
        n = state["n"] + self.step if train else state["n"]
        return x * params["w"], {"n": n}

    def to_canonical(self, params, state):
        return dict(params), dict(state)

    def from_canonical(self, params, state):
        return dict(params), dict(state)


class CounterByTwo(Counter):
    name = "by-two"
    step = 2.0


def _spec(**kwargs) -> shared.ModelSpec:
    base = dict(
        name="count",
        config_type=CountConfig,
        configure=lambda s: CountConfig(),
        data=_data,
        loss=lambda y, batch: jnp.sum((y - 2.0 * batch) ** 2),
        params=("w",),
        state=("n",),
    )
    return shared.ModelSpec(**(base | kwargs))


class SameCounter(Counter):
    name = "same"


def test_cross_validate_agrees_and_the_spec_default_is_bitwise():
    result = shared.cross_validate(_spec(), [Counter, SameCounter], loops=["harness"])
    assert result.agree and result.reference == "counter/harness"
    with pytest.raises(ValueError, match="two implementations are named 'counter'"):
        shared.cross_validate(_spec(), [Counter, Counter])
    result = shared.cross_validate(_spec(), [Counter], loops=["harness", "scan"])
    (pair,) = result.pairs
    assert pair.tolerance.max_ulp == 0 and pair.tolerance.atol == 0
    assert "declares no tolerance" in pair.tolerance.reason


def test_the_assert_helper_names_step_leaf_both_values_and_their_ulp_distance():
    result = shared.cross_validate(_spec(), [Counter, CounterByTwo], loops=["harness"])
    assert not result.agree
    with pytest.raises(AssertionError) as info:
        shared.check_agreement(result)
    message = str(info.value)
    # Step 1: the reference counts 1, the other 2. From 1.0 to 2.0 lie 2**23 float32 values.
    assert (
        "by-two/harness diverges from counter/harness in lockstep (one step from the same "
        "values) at step 1, state.n: 2.0 against 1.0" in message
    )
    assert f"({2**23} ULP apart" in message
    with pytest.raises(AssertionError, match=r"step 1, state\.n"):
        shared.assert_cross_validated(_spec(), [Counter, CounterByTwo], loops=["harness"])


def test_reference_and_tolerance_options():
    result = shared.cross_validate(
        _spec(), [Counter, CounterByTwo], loops=["harness"], reference="by-two"
    )
    assert result.reference == "by-two/harness" and result.pairs[0].a == "counter/harness"
    # 2**23 ULP apart at step 1; a tolerance of 1.0 absolute lets step 1 pass, not step 2.
    result = shared.cross_validate(
        _spec(), [Counter, CounterByTwo], loops=["harness"], tolerance="1.0"
    )
    assert result.pairs[0].first_divergence == shared.Divergence(2, "state.n")
    with pytest.raises(ValueError, match="--reference: no trajectory 'nobody'"):
        shared.cross_validate(_spec(), [Counter], reference="nobody")
    with pytest.raises(ValueError, match="--tolerance: expected 'bitwise'"):
        shared.parse_tolerance("four ulps")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"loss": 3}, TypeError, "model spec 'count': loss must be callable"),
        ({"name": ""}, TypeError, "name must be a non-empty string"),
        ({"steps": 0}, ValueError, "steps must be an int >= 1"),
        ({"modes": ("a",), "reference_mode": "b"}, ValueError, "reference_mode 'b' is not a mode"),
        ({"init": "zeros"}, TypeError, "init must be callable or None"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(kwargs, error, match):
    with pytest.raises(error, match=match):
        _spec(**kwargs)


def test_bad_run_options_are_refused_before_training():
    with pytest.raises(ValueError, match="count: unknown mode 'fast'; expected one of none"):
        shared.cross_validate(_spec(), [Counter], mode="fast")
    with pytest.raises(ValueError, match="count: unknown option 'momentum'"):
        shared.cross_validate(_spec(), [Counter], options={"momentum": 0.5})
    options = shared.RunOptions(data=np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="--data: model count takes no user data"):
        shared.run_model(_spec(), [("counter", Counter)], options)
    with pytest.raises(ValueError, match="declares model 'count', but this run trains 'other'"):
        shared.cross_validate(_spec(name="other"), [Counter])


class KeyRecorder(Counter):
    """A random model: its state records a uniform draw from the key it is given."""

    name = "keys"

    def init(self, key, x):
        return {"w": jnp.ones(x.shape[1:])}, {"n": jnp.zeros(()), "u": jnp.zeros(())}

    def apply(self, params, state, x, *, train, key=None):
        u = jax.random.uniform(key) if train else state["u"]
        return x * params["w"], {"n": state["n"] + 1.0, "u": u}


def test_every_loop_gets_fold_in_of_the_seed_and_the_step():
    spec = _spec(random=True, state=("n", "u"))
    result = shared.cross_validate(spec, [KeyRecorder], seed=7)  # harness, native*, scan
    assert result.agree and all(p.bitwise for p in result.pairs)
    draws = result.trajectories["keys/harness"].state["u"][1:]
    expected = [jax.random.uniform(jax.random.fold_in(jax.random.key(7), s)) for s in (0, 1, 2, 3)]
    assert np.array_equal(np.asarray(draws), np.asarray(expected))
    assert len(set(np.asarray(draws).tolist())) == 4  # a fresh key every step
    keys = shared.step_keys(7, 4)
    assert np.array_equal(
        jax.random.key_data(keys[1]), jax.random.key_data(jax.random.fold_in(jax.random.key(7), 1))
    )
