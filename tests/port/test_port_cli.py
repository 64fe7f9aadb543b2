"""`state-rosetta port`: `check_port` from the command line, run in-process on model files
written as a porter would (an `hk.nets.MLP` reference and its NNX port; in the slow tier an
`eqx.nn.MLP` and its Linen port) and an `.npz` of batches.

Exit codes as for `compare`: 0 the port agrees, 1 it diverges, 2 bad arguments (one line).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from shared.cli import main
from shared.comparison import PORT_LOSSES

ROOT = Path(__file__).resolve().parents[2]

REFERENCE = """
import haiku as hk
import jax.numpy as jnp


def forward(x):
    return hk.nets.MLP([16, 3])(x)


MODEL = hk.transform(forward)


def build():  # a factory: called with no arguments
    return hk.transform(forward)


def needs(width):
    return hk.transform(lambda x: hk.nets.MLP([width, 3])(x))


def broken():
    raise ValueError("no model today")


def _exits(x):
    raise SystemExit(0)  # uncontained, it would end the command: exit 0, "all agree"


EXITS = hk.transform(_exits)  # its init calls it


def _sum(x):  # two params of one shape, one add: no data-flow order tells them apart
    a = hk.get_parameter("a", (3,), init=jnp.ones)
    b = hk.get_parameter("b", (3,), init=jnp.zeros)
    return x * (b + a)


SUM = hk.transform(_sum)
"""

PORT = """
import jax
import jax.numpy as jnp
from flax import nnx

import shared


class MLP(nnx.Module):  # hk.nets.MLP([16, 3]) on 4 inputs: relu between the layers
    def __init__(self, rngs=None, activation=jax.nn.relu):
        rngs = nnx.Rngs(0) if rngs is None else rngs
        self.layers = nnx.List([nnx.Linear(4, 16, rngs=rngs), nnx.Linear(16, 3, rngs=rngs)])
        self.activation = activation

    def __call__(self, x):
        return self.layers[1](self.activation(self.layers[0](x)))


GELU = shared.wrap(MLP(activation=jax.nn.gelu))  # what shared.wrap made of one


class Sum(nnx.Module):
    def __init__(self):
        self.a = nnx.Param(jnp.ones((3,)))
        self.b = nnx.Param(jnp.zeros((3,)))

    def __call__(self, x):
        return x * (self.a + self.b)


SUM = Sum()


class Oom(nnx.Module):  # a model whose own call fails, as a device out of memory would
    def __init__(self):
        self.layers = nnx.List([nnx.Linear(4, 3, rngs=nnx.Rngs(0))])

    def __call__(self, x):
        raise RuntimeError("RESOURCE_EXHAUSTED: out of memory (planted)")


OOM = Oom()


class Ones(MLP):  # a porting bug in the init: biases of ones, where hk.Linear's are zeros
    def __init__(self):
        super().__init__()
        for layer in self.layers:
            layer.bias[...] = jnp.ones_like(layer.bias[...])
"""

LOSSES = """
def broken(output, batch):
    raise RuntimeError("no loss today")


def per_example(output, batch):
    return ((output - batch["y"]) ** 2).mean(axis=1)


NOT_CALLABLE = 3
"""


@pytest.fixture
def files(tmp_path, monkeypatch):
    """The model files and the data in a scratch folder, which is the working directory."""
    (tmp_path / "reference.py").write_text(REFERENCE)
    (tmp_path / "port.py").write_text(PORT)
    (tmp_path / "losses.py").write_text(LOSSES)
    # The porting guide's models and data (its check_port block, examples/port_cli/): the
    # programs these tests compile are that block's, and the suite compiles them once.
    x = np.random.default_rng(0).standard_normal((5, 8, 4)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=np.tanh(x[..., :3]))
    np.savez(tmp_path / "ragged.npz", x=x, y=np.tanh(x[:4, ..., :3]))
    np.savez(tmp_path / "objects.npz", x=x, y=np.array([{"a": 1}] * 5, dtype=object))
    np.save(tmp_path / "one.npy", x)
    (tmp_path / "text.npz").write_text("x,y\n1,2\n")
    np.savez(tmp_path / "floats.npz", x=x, label=np.zeros((5, 8), np.float32))
    # tests/port/test_port_errors.py's data for its ambiguous pair: the same programs.
    np.savez(tmp_path / "sum.npz", x=np.ones((2, 4, 3), np.float32), y=np.zeros((2, 4, 3)))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _port(capsys, *args):
    code = main(["port", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_correct_port_exits_0_and_says_all_agree(files, capsys):
    code, out, err = _port(
        capsys,
        "reference.py:MODEL",
        "port.py:MLP",  # a class: called with no arguments
        "--data=data.npz",
        "--loss=mse",
        "--json=run.json",
    )
    assert code == 0, out + err
    # Haiku's and NNX's dense layers compile to the same program: bitwise, the default.
    assert "all trajectories agree: 1 agree with haiku/harness, 0 diverge, 0 failed" in out
    assert "5 steps" in out and "wrote run.json" in out
    run = json.loads((files / "run.json").read_text())
    assert run["comparison"]["agree"] is True and run["config"]["data"] == "data.npz"
    aligned = {ref: port for ref, port, _ in run["config"]["alignment"]}
    assert aligned["params.mlp/~/linear_0.w"] == "params.layers.0.kernel"
    assert aligned["params.mlp/~/linear_1.b"] == "params.layers.1.bias"


def test_loop_native_adds_each_frameworks_own_loop_paired_loop_for_loop(files, capsys):
    code, out, err = _port(
        capsys, "reference.py:MODEL", "port.py:MLP", "--data", "data.npz", "--loss", "mse",
        "--loop", "harness,native",
    )  # fmt: skip
    assert code == 0, out + err
    # Haiku's jitted step and NNX's nnx.Optimizer under nnx.jit: bitwise, as the harness is.
    assert "all trajectories agree: 3 agree with haiku/harness, 0 diverge, 0 failed" in out
    assert "flax_nnx/native" in out and "haiku/native" in out


def test_own_init_compares_the_inits_and_names_a_leaf_that_differs(files, capsys):
    code, out, err = _port(
        capsys, "reference.py:MODEL", "port.py:Ones", "--data", "data.npz", "--loss", "mse",
        "--own-init", "--json", "inits.json",
    )  # fmt: skip
    assert code == 1, out + err
    assert "INITS DIFFER in 2 leaves: params.mlp/~/linear_0.b, params.mlp/~/linear_1.b" in out
    found = json.loads((files / "inits.json").read_text())
    assert found["agree"] is False and len(found["leaves"]) == 4
    code, out, err = _port(
        capsys, "reference.py:MODEL", "port.py:MLP", "--data", "data.npz", "--loss", "mse",
        "--own-init",
    )  # fmt: skip
    # 64 and 48 draws: too few for the KS test to see Haiku's narrower truncated normal
    # (tests/port/test_port_inits.py sees it at 16,384); the zero biases are the same.
    assert code == 0 and "the inits agree in distribution: 4 leaves" in out, out + err


def test_a_port_with_a_wrong_activation_exits_1_naming_step_1(files, capsys):
    code, out, _ = _port(
        capsys,
        "reference.py:build",  # a factory
        "port.py:GELU",  # shared.wrap's object
        "--data",
        "data.npz",
        "--loss",
        "mse",
        "--steps",
        "2",
    )
    assert code == 1, out
    assert "flax_nnx/harness diverges from haiku/harness first at step 1, loss: " in out
    assert "DISAGREEMENT" in out and "2 steps" in out


def test_an_ambiguous_alignment_exits_2_naming_map_and_takes_the_pairs_it_lists(files, capsys):
    args = ["reference.py:SUM", "port.py:SUM", "--data", "sum.npz", "--loss", "mse"]
    code, _, err = _port(capsys, *args)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "ambiguous params" in err and "one --map REF=PORT per pair" in err
    pairs = ["--map", "params.~.a=params.a", "--map", "params.~.b=params.b"]
    code, out, err = _port(capsys, *args, *pairs)
    assert code == 0, out + err
    assert "all trajectories agree" in out


EQUINOX = """
import equinox as eqx
import jax


def reference():  # a factory: Equinox builds its module from a key
    return eqx.nn.MLP(4, 3, width_size=16, depth=2, key=jax.random.key(0))
"""

LINEN = """
import flax.linen as nn
import jax


class MLP(nn.Module):  # eqx.nn.MLP(4, 3, 16, 2): relu after each hidden layer, none after
    @nn.compact
    def __call__(self, x):
        x = jax.nn.relu(nn.Dense(16)(x))
        x = jax.nn.relu(nn.Dense(16)(x))
        return nn.Dense(3)(x)
"""


@pytest.mark.slow  # a second pair of frameworks: its own programs to compile
def test_an_equinox_reference_and_its_linen_port_agree_with_the_layouts_transposed(
    tmp_path, capsys, monkeypatch
):
    (tmp_path / "eqx_mlp.py").write_text(EQUINOX)
    (tmp_path / "linen_mlp.py").write_text(LINEN)
    # tests/port/test_port_models.py's data, under another name for the models' input.
    x = np.random.default_rng(1).standard_normal((5, 8, 4)).astype(np.float32)
    np.savez(tmp_path / "data.npz", features=x, y=np.sin(x[..., :3]))
    monkeypatch.chdir(tmp_path)
    code, out, err = _port(
        capsys,
        "eqx_mlp.py:reference",
        "linen_mlp.py:MLP",
        "--data=data.npz",
        "--inputs=features",
        "--loss=mse",
        # Measured: Equinox's per-example matvec under vmap against Linen's batched matmul,
        # 1 ULP in the loss (tests/port/test_port_models.py); 4 ULP leaves room.
        "--tolerance=4ulp",
        "--json=run.json",
    )
    assert code == 0, out + err
    assert "all trajectories agree: 1 agree with equinox/harness, 0 diverge" in out
    run = json.loads((tmp_path / "run.json").read_text())
    aligned = {ref: port for ref, port, _ in run["config"]["alignment"]}
    # Equinox's (out, in) weight is Linen's (in, out) kernel, layer for layer.
    assert aligned["params.layers.0.weight"] == "params.Dense_0.kernel"
    assert aligned["params.layers.2.bias"] == "params.Dense_2.bias"


KERAS = """
import keras  # first, as a Keras user writes it: Keras reads its backend at this import

PORT = keras.Sequential(
    [keras.Input((4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)]
)
"""


@pytest.mark.slow  # a fresh process: Keras's backend is chosen at its first import
def test_a_keras_port_file_that_imports_keras_first_gets_the_jax_backend(files):
    (files / "keras_port.py").write_text(KERAS)
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    argv = ["port", "reference.py:MODEL", "keras_port.py:PORT", "--data", "data.npz"]
    done = subprocess.run(
        [sys.executable, "-m", "shared", *argv, "--loss", "mse"],
        cwd=files,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    # Keras's Dense and Haiku's Linear compile to the same program: bitwise (measured).
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "all trajectories agree: 1 agree with haiku/harness" in done.stdout
    assert "keras/harness" in done.stdout


BAD = {
    "missing reference file": (
        ["nowhere.py:MODEL", "port.py:MLP"],
        r"reference nowhere.py:MODEL: cannot import 'nowhere.py': FileNotFoundError",
    ),
    "missing attribute": (
        ["reference.py:MODEL", "port.py:Nope"],
        r"port port.py:Nope: module 'port.py' has no 'Nope'",
    ),
    "no attribute at all": (["reference.py", "port.py:MLP"], r"reference: expected MODULE:ATTR"),
    "not a model": (
        ["reference.py:hk", "port.py:MLP"],
        r"reference reference.py:hk: cannot tell the framework of a builtins.module",
    ),
    "a factory that takes arguments": (
        ["reference.py:needs", "port.py:MLP"],
        r"reference reference.py:needs: needs is no model and takes arguments",
    ),
    "a factory that raises": (
        ["reference.py:broken", "port.py:MLP"],
        r"reference reference.py:broken: calling broken\(\) raised ValueError: no model today",
    ),
    "a model that calls sys.exit": (
        ["reference.py:EXITS", "port.py:MLP"],
        r"reference.py:EXITS against port.py:MLP raised SystemExit\(0\)",
    ),
    "mismatched leading axes": (
        ["reference.py:MODEL", "port.py:MLP", "--data", "ragged.npz"],
        r"--data ragged.npz: expected every array stacked on one leading steps axis.* "
        r"got x \(5, 8, 4\), y \(4, 8, 3\)",
    ),
    "missing data file": (
        ["reference.py:MODEL", "port.py:MLP", "--data", "nowhere.npz"],
        r"--data nowhere.npz: cannot read an .npz archive",
    ),
    "an object array (pickled)": (
        ["reference.py:MODEL", "port.py:MLP", "--data", "objects.npz"],
        r"--data objects.npz: cannot read an .npz archive: Object arrays cannot be loaded",
    ),
    "an .npy, not an .npz": (
        ["reference.py:MODEL", "port.py:MLP", "--data", "one.npy"],
        r"--data one.npy: expected an .npz archive, got one .npy array",
    ),
    "a file that is no archive": (
        ["reference.py:MODEL", "port.py:MLP", "--data", "text.npz"],
        r"--data text.npz: expected an .npz archive \(a zip of .npy arrays\)$",
    ),
    "a --json into a folder": (
        ["reference.py:MODEL", "port.py:MLP", "--json", "."],
        r"cannot write \.: it is a folder, not a regular file; nothing was replaced",
    ),
    "more steps than the data": (
        ["reference.py:MODEL", "port.py:MLP", "--steps", "6"],
        r"--steps: expected 1 to 5 \(the steps in --data data.npz\), got 6",
    ),
    "no such input field": (
        ["reference.py:MODEL", "port.py:MLP", "--inputs", "image"],
        r"--data data.npz: no field 'image' \(what the models see.*its fields: x, y",
    ),
    "unknown loss": (
        ["reference.py:MODEL", "port.py:MLP", "--loss", "hinge"],
        r"--loss: expected mse, xent or FILE.py:FN, got 'hinge'",
    ),
    "xent without labels": (
        ["reference.py:MODEL", "port.py:MLP", "--loss", "xent"],
        r"--data data.npz: no field 'label' \(the classes of --loss xent\)",
    ),
    "a port whose own call raises": (
        ["reference.py:MODEL", "port.py:OOM"],
        r"port \(flax_nnx\): its apply raised RuntimeError: RESOURCE_EXHAUSTED",
    ),
    "a loss that raises": (
        ["reference.py:MODEL", "port.py:MLP", "--loss", "losses.py:broken"],
        r"--loss losses.py:broken: broken\(output, batch\) raised RuntimeError: no loss today",
    ),
    "a loss that is no scalar": (
        ["reference.py:MODEL", "port.py:MLP", "--loss", "losses.py:per_example"],
        r"--loss losses.py:per_example: returned shape \(8,\); expected a scalar",
    ),
    "a loss that is not callable": (
        ["reference.py:MODEL", "port.py:MLP", "--loss", "losses.py:NOT_CALLABLE"],
        r"--loss losses.py:NOT_CALLABLE: got a int; expected a function",
    ),
    "a --map that is no pair": (
        ["reference.py:MODEL", "port.py:MLP", "--map", "params.a"],
        r"argument --map: expected REF=PORT, e.g. .*got 'params.a'",
    ),
    "a --map that pairs a leaf twice": (
        ["reference.py:MODEL", "port.py:MLP", "--map", "params.a=params.b", "--map", "params.a=c"],
        r"--map: params.a is paired twice \(params.b, c\); expected once",
    ),
    "a --map that names no leaf": (
        ["reference.py:MODEL", "port.py:MLP", "--map", "params.nope=params.layers.0.kernel"],
        r"mapping: params.nope names no leaf of the reference .*one --map REF=PORT per pair",
    ),
    "xent with float labels": (
        ["reference.py:MODEL", "port.py:MLP", "--data", "floats.npz", "--loss", "xent"],
        r"--data floats.npz: label is float32; --loss xent expects integer classes",
    ),
    "bad tolerance": (
        ["reference.py:MODEL", "port.py:MLP", "--tolerance", "close"],
        r"--tolerance: expected 'bitwise'",
    ),
    "bad learning rate": (
        ["reference.py:MODEL", "port.py:MLP", "--lr", "nan"],
        r"--lr: expected a finite learning rate > 0, got nan",
    ),
    "a missing port": (["reference.py:MODEL"], r"the following arguments are required: PORT"),
}


@pytest.mark.parametrize(("args", "expected"), list(BAD.values()), ids=list(BAD))
def test_bad_arguments_exit_2_with_one_line_naming_the_argument(files, capsys, args, expected):
    defaults = {"--data": "data.npz", "--loss": "mse"}
    given = [a for a in args if a.startswith("--")]
    extra = [x for o, v in defaults.items() if o not in given for x in (o, v)]
    code, out, err = _port(capsys, *args, *extra)
    assert code == 2, out + err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("state-rosetta: error: "), err
    assert "Traceback" not in out + err
    assert re.search(expected, lines[0]), lines[0]


def test_the_built_in_losses_are_their_closed_forms():
    mse, xent = PORT_LOSSES["mse"], PORT_LOSSES["xent"]
    y = jnp.array([[1.0, 2.0], [0.0, 0.0]])
    assert float(mse(jnp.zeros((2, 2)), {"y": y})) == pytest.approx(5.0 / 4)
    # Equal logits over two classes: log 2 whatever the label; ln(1 + e) against the lower.
    logits = jnp.array([[0.0, 0.0], [1.0, 0.0]])
    label = jnp.array([1, 1])
    expected = (np.log(2.0) + np.log1p(np.e)) / 2
    assert float(xent(logits, {"label": label})) == pytest.approx(expected, rel=1e-6)


def test_the_example_data_is_what_its_script_makes():
    spec = importlib.util.spec_from_file_location(
        "make_data", ROOT / "examples" / "port_cli" / "make_data.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with np.load(ROOT / "examples" / "port_cli" / "data.npz", allow_pickle=False) as committed:
        made = module.make()
        assert sorted(committed.files) == sorted(made)
        for name, array in made.items():
            assert np.array_equal(committed[name], array), name


def test_help_documents_the_built_in_losses_fields(capsys):
    with pytest.raises(SystemExit) as done:
        main(["port", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "batch['y']" in text and "batch['label']" in text
