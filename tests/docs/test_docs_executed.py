"""Every statement the guide shows (docs/guide/) runs in the tests.

The guide shows regions of the real implementation files, which are fragments (a
method body, a few lines of a class) and cannot run on their own. So, instead of executing
copies, this test runs the real code (init, both apply modes, canonical conversion both ways,
the harness step, the native loop, its checkpoint through orbax, a data-parallel call and
a layer trace)
under a line tracer, and asserts that every statement inside a function in every marked
region was executed. Statements at module or class level run when the module is imported.
"""

from __future__ import annotations

import ast
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import shared
from shared import docs
from shared.checkpoint import CheckpointStore
from shared.models import bias_adder, decoder_cache, mlp_bn, mlp_dropout, resnet_bn

ROOT = Path(__file__).parent.parent.parent
# A shape used nowhere else, so that every jitted function is traced afresh under the tracer.
BATCH, FEATURES = 7, 11


def _region_lines(path: Path) -> dict[str, range]:
    lines = path.read_text().splitlines()
    starts: dict[str, int] = {}
    regions = {}
    for number, line in enumerate(lines, start=1):
        match = docs.MARKER.match(line)
        if match and match.group(1) == "start":
            starts[match.group(2)] = number
        elif match:
            regions[match.group(2)] = range(starts.pop(match.group(2)), number)
    return regions


def _statements_in_functions(path: Path) -> set[int]:
    """First lines of the statements that run when their function runs (docstrings excluded,
    and `nonlocal`/`global`: declarations, which compile to nothing a tracer sees)."""
    tree = ast.parse(path.read_text())
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Lambda):
            lines.add(node.lineno)
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for child in node.body:
            for sub in ast.walk(child):
                docstring = isinstance(sub, ast.Expr) and isinstance(sub.value, ast.Constant)
                if (
                    isinstance(sub, ast.stmt)
                    and not isinstance(sub, ast.ClassDef | ast.Nonlocal | ast.Global)
                    and not docstring
                ):
                    lines.add(sub.lineno)  # a nested def statement runs when its parent runs
    return lines


def _exercise_mlp_bn(impl_name: str) -> None:
    for config in (mlp_bn.MlpBnConfig(hidden=9), mlp_bn.MlpBnConfig(native_defaults=mlp_bn.KNOBS)):
        model = shared.make(impl_name, config, "mlp-bn")
        digits = mlp_bn.load_digits_split()
        batches = mlp_bn.minibatches(digits.x_train, digits.y_train, 13, 2, 0)
        params, state = model.init(jax.random.key(0), jnp.asarray(batches.x[0]))
        params, state = model.from_canonical(*model.to_canonical(params, state))
        tx = shared.OptimizerConfig("sgd").make()
        # The training call as the harness makes it, unjitted: the same statements run, and
        # no step is compiled (the native loop's is).
        model.apply(params, state, jnp.asarray(batches.x[0]), train=True)
        shared.run_native(model, params, state, tx, batches)
        model.apply(params, state, jnp.asarray(digits.x_test[:5]), train=False)


def _exercise_mlp_bn_across_devices(impl_name: str) -> None:
    """The cross-device argument: the model built for a mapped axis, and trained under it
    (`jax.vmap` stands in for the devices' axis); a framework without one refuses."""
    config = mlp_bn.MlpBnConfig(hidden=6, axis_name="data")
    try:
        model = shared.make(impl_name, config, "mlp-bn")
    except ValueError as e:
        assert "axis_name" in str(e)  # Keras: no synchronised BatchNorm on JAX
        return
    digits = mlp_bn.load_digits_split()
    x = jnp.asarray(digits.x_train[:12]).reshape(2, 6, -1)
    # Initialised without the axis (Haiku's init runs the training path, whose pmean needs
    # the axis bound): the same params and state.
    alone = shared.make(impl_name, mlp_bn.MlpBnConfig(hidden=6), "mlp-bn")
    params, state = alone.init(jax.random.key(0), x[0])
    jax.vmap(lambda x: model.apply(params, state, x, train=True), axis_name="data")(x)


def _exercise_resnet_bn(impl_name: str) -> None:
    """The ResNet's model and blocks: one training call and one eval call, unjitted."""
    config = resnet_bn.ResNetBnConfig(channels=(2, 3))
    model = shared.make(impl_name, config, "resnet-bn")
    params, state = model.from_canonical(*resnet_bn.canonical_init(config))
    x = jnp.asarray(mlp_bn.load_digits_split().x_train[:BATCH])
    model.apply(params, state, x, train=True)
    model.apply(params, state, x, train=False)


def _exercise_mlp_dropout(impl_name: str) -> None:
    digits = mlp_bn.load_digits_split()
    batches = mlp_bn.minibatches(digits.x_train, digits.y_train, 11, 2, 0)
    keys = shared.step_keys(0, 2)
    for mode in mlp_dropout.KEYS:  # unique shapes (hidden 7, batch 11): traced afresh
        config = mlp_dropout.MlpDropoutConfig(hidden=7, keys=mode)
        model = shared.make(impl_name, config, "mlp-dropout")
        params = {k: jnp.asarray(v) for k, v in mlp_dropout.canonical_init(config).items()}
        params, state = model.from_canonical(params, {})
        params, state = model.from_canonical(*model.to_canonical(params, state))
        tx = shared.OptimizerConfig("sgd").make()
        model.apply(params, state, jnp.asarray(batches.x[0]), train=True, key=keys[0])
        shared.run_native(model, params, state, tx, batches, keys=keys)
        model.apply(params, state, jnp.asarray(digits.x_test[:5]), train=False)


def _exercise(impl_name: str) -> None:
    config = bias_adder.BiasAdderConfig(FEATURES)
    model = shared.make(impl_name, config)
    xs = np.random.default_rng(1).standard_normal((3, BATCH, FEATURES), dtype=np.float32)
    params, state = model.init(jax.random.key(0), xs[0])
    params, state = model.from_canonical(*model.to_canonical(params, state))
    tx = shared.OptimizerConfig("adam").make()
    shared.run_harness(model, params, state, tx, xs, bias_adder.bias_adder_loss)
    shared.run_native(model, params, state, tx, xs)
    model.apply(params, state, jnp.asarray(xs[0]), train=False)
    model.apply(params, state, jnp.asarray(xs[0]), train=True)
    sharded = shared.make(impl_name, bias_adder.BiasAdderConfig(FEATURES, axis_name="data"))
    sparams, sstate = sharded.init(jax.random.key(0), xs[0])
    jax.vmap(lambda x: sharded.apply(sparams, sstate, x, train=True), axis_name="data")(
        jnp.asarray(xs[:2])
    )


def _exercise_checkpoint(impl_name: str) -> None:
    """The native loop's checkpoint: one step, saved with orbax, restored into a fresh loop
    against its own objects, which then hold the trained values."""
    model = shared.make(impl_name, bias_adder.BiasAdderConfig(FEATURES))
    xs = np.random.default_rng(2).standard_normal((1, BATCH, FEATURES), dtype=np.float32)
    tx = shared.OptimizerConfig("adam").make()
    trained = model.native_loop(*model.init(jax.random.key(0), xs[0]), tx)
    trained.step(jnp.asarray(xs[0]))
    fresh = model.native_loop(*model.init(jax.random.key(0), xs[0]), tx)
    assert trained.checkpoint is not None and fresh.checkpoint is not None
    assert fresh.restore is not None
    want = model.to_canonical(*trained.read())
    assert not np.array_equal(model.to_canonical(*fresh.read())[0]["bias"], want[0]["bias"])
    with tempfile.TemporaryDirectory() as tmp, CheckpointStore(tmp, create=True) as store:
        store.save(1, trained.checkpoint(), {"implementation": impl_name})
        fresh.restore(store.restore(fresh.checkpoint()))
    jax.tree.map(np.testing.assert_array_equal, model.to_canonical(*fresh.read()), want)


def _exercise_variants(impl_name: str) -> None:
    """Each of the framework's native variants: two steps, then its values read back."""
    model = shared.make(impl_name, bias_adder.BiasAdderConfig(FEATURES))
    xs = np.random.default_rng(3).standard_normal((2, BATCH, FEATURES), dtype=np.float32)
    if not hasattr(model, "native_variants"):
        return  # Haiku: its native loop is its fast loop
    tx = shared.OptimizerConfig("adam").make()
    for loop in model.native_variants(*model.init(jax.random.key(0), xs[0]), tx).values():
        for x in xs:
            loop.step(jnp.asarray(x))
        loop.read()


def _exercise_layer_trace(impl_name: str) -> None:
    """The first diverging layer's trace: every layer's input and output from one call."""
    config = mlp_bn.MlpBnConfig(hidden=5)
    model = shared.make(impl_name, config, "mlp-bn")
    x = jnp.asarray(mlp_bn.load_digits_split().x_train[:BATCH])
    params, state = model.init(jax.random.key(0), x)
    calls = model.layer_trace(params, state, x, train=True)
    assert "bn" in calls and calls[""].output.shape == (BATCH, config.classes), list(calls)


def _exercise_decoder_cache(impl_name: str) -> None:
    """The decoder: its full causal forward pass, then two tokens through its cache."""
    config = decoder_cache.DecoderCacheConfig(digits=1, d_model=4, heads=2)
    model = shared.make(impl_name, config, "decoder-cache")
    sequences = decoder_cache.make_sequences(config, 2, seed=0)
    tokens = sequences[:, :-1]
    params, state = model.init(jax.random.key(0), jnp.asarray(tokens))
    tx = shared.OptimizerConfig("sgd").make()
    model.native_loop(params, state, tx).step(decoder_cache.Sequences(jnp.asarray(sequences)))
    model.apply(params, state, jnp.asarray(tokens), train=False)
    cache = model.init_cache(2)
    for t in range(2):
        _, cache = model.decode_step(params, cache, jnp.asarray(tokens[:, t : t + 1]), jnp.int32(t))


# The fast tier traces NNX's regions (the mechanism, once); the slow tier every framework's.
FAST_FRAMEWORK = "nnx"


@pytest.mark.parametrize(
    ("framework", "impl_name"),
    [
        pytest.param(
            framework,
            impl,
            marks=() if framework == FAST_FRAMEWORK else pytest.mark.slow,
        )
        for framework, (_, impl) in docs.frameworks().items()
    ],
)
def test_every_statement_of_every_region_runs(framework, impl_name):
    paths = {ROOT / docs.source(concept, framework) for concept in docs.concepts()}
    targets = {str(path.resolve()) for path in paths}
    executed: set[tuple[str, int]] = set()

    def tracer(frame, event, arg):
        if frame.f_code.co_filename not in targets:
            return None
        if event == "line":
            executed.add((frame.f_code.co_filename, frame.f_lineno))
        return tracer

    sys.settrace(tracer)
    try:
        _exercise(impl_name)
        _exercise_mlp_bn(impl_name)
        _exercise_mlp_bn_across_devices(impl_name)
        _exercise_resnet_bn(impl_name)
        _exercise_mlp_dropout(impl_name)
        _exercise_checkpoint(impl_name)
        _exercise_variants(impl_name)
        _exercise_layer_trace(impl_name)
        _exercise_decoder_cache(impl_name)
    finally:
        sys.settrace(None)
    for concept in docs.concepts():
        path = ROOT / docs.source(concept, framework)
        regions = [
            f"{framework}-{concept.key}",
            *(r for r, _ in docs.extras(concept, framework)),
        ]
        for name in regions:
            lines = _region_lines(path)[name]
            statements = _statements_in_functions(path) & set(lines)
            ran = {n for f, n in executed if f == str(path.resolve())}
            missed = sorted(statements - ran)
            assert not missed, f"{path.name} region {name}: lines {missed} never ran"
