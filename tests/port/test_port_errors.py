"""Bad input to `check_port` and to the engine: one clear error naming what is wrong."""

from __future__ import annotations

import haiku as hk
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import shared


class Sum(nnx.Module):
    """Two params of one shape read by one add: no data-flow order tells them apart."""

    def __init__(self):
        self.a = nnx.Param(jnp.ones((3,)))
        self.b = nnx.Param(jnp.zeros((3,)))

    def __call__(self, x):
        return x * (self.a + self.b)


def _forward(x):
    a = hk.get_parameter("a", (3,), init=jnp.ones)
    b = hk.get_parameter("b", (3,), init=jnp.zeros)
    return x * (b + a)


DATA = {"x": np.ones((2, 4, 3), np.float32), "y": np.zeros((2, 4, 3), np.float32)}


def mse(y, batch):
    return jnp.mean((y - batch["y"]) ** 2)


def test_an_ambiguous_alignment_names_both_sides_and_takes_the_mapping_it_prints():
    reference = hk.transform(_forward)
    with pytest.raises(shared.AlignmentError, match=r"ambiguous params.*mapping=") as raised:
        shared.check_port(reference, Sum(), data=DATA, loss=mse)
    assert "~.a" in str(raised.value) and "params.b" in str(raised.value)
    mapping = {"params.~.a": "params.a", "params.~.b": "params.b"}
    result = shared.check_port(reference, Sum(), data=DATA, loss=mse, mapping=mapping)
    assert result.agree


def test_a_loss_that_cannot_read_the_output_names_the_loss_and_the_structure():
    reference = hk.transform(lambda x: (_forward(x), x))  # a tuple, the loss wants a dict
    with pytest.raises(TypeError, match=r"loss pick: cannot read the reference's output"):
        shared.check_port(reference, Sum(), data=DATA, loss=pick)


def pick(y, batch):
    return y["out"].sum()


def _raises_in_init(x):
    hk.get_parameter("a", (3,), init=jnp.ones)
    raise ZeroDivisionError("planted")


def test_a_model_that_raises_in_its_own_init_is_named_with_what_it_raised():
    with pytest.raises(shared.ModelCallError, match=r"^port \(haiku\): its init raised Zero"):
        shared.check_port(Sum(), hk.transform(_raises_in_init), data=DATA, loss=mse)


def test_a_non_model_is_refused_naming_the_argument_and_what_is_expected():
    with pytest.raises(TypeError, match=r"port: cannot tell the framework of a .*expected an hk"):
        shared.check_port(hk.transform(_forward), object(), data=DATA, loss=mse)


def test_the_porting_examples_first_batches_do_not_depend_on_the_number_of_steps():
    data = shared.load_object("examples/porting/scale_var.py:data", option="data")
    spec = shared.load_object("examples/porting/scale_var.py:SPEC", option="spec")
    short = data(
        spec.configure(shared.Settings(steps=10, values={"features": 6, "momentum": 0.9})),
        shared.Settings(steps=10),
    )
    long = data(
        spec.configure(shared.Settings(steps=200, values={"features": 6, "momentum": 0.9})),
        shared.Settings(steps=200),
    )
    for field in ("x", "y"):
        assert np.array_equal(short[field], long[field][:10])


def test_check_port_takes_the_first_steps_of_the_data():
    reference = hk.transform(_forward)
    mapping = {"params.~.a": "params.a", "params.~.b": "params.b"}
    rng = np.random.default_rng(0)
    data = {
        "x": rng.standard_normal((4, 2, 3)).astype(np.float32),
        "y": np.zeros((4, 2, 3), np.float32),
    }
    short = shared.check_port(reference, Sum(), data=data, loss=mse, mapping=mapping, steps=2)
    long = shared.check_port(reference, Sum(), data=data, loss=mse, mapping=mapping)
    ref = short.reference
    assert np.array_equal(short.trajectories[ref].loss[:2], long.trajectories[ref].loss[:2])
    assert len(short.trajectories[ref].loss) == 2


BOOM_SPEC = """
import dataclasses, sys
sys.path.insert(0, {examples!r})
from scale_var import SPEC as BASE

def data(config, settings):
    raise RuntimeError("no such file: batches.npz")

SPEC = dataclasses.replace(BASE, data=data)
"""


def test_a_spec_data_callable_that_raises_exits_2_with_one_line_naming_it(tmp_path, capsys):
    from pathlib import Path

    from shared.cli import main

    examples = Path(__file__).resolve().parents[2] / "examples" / "porting"
    spec = tmp_path / "boom.py"
    spec.write_text(BOOM_SPEC.format(examples=str(examples)))
    impl = f"{examples / 'scale_var_nnx.py'}:NNXScaleVar"
    code = main(["compare", "--model", f"{spec}:SPEC", "--impl", impl, "--loop", "harness"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "its data callable raised RuntimeError: no such file: batches.npz" in err
