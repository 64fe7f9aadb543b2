"""Resume in a fresh process: every model, framework, loop and optimizer, bitwise.

Each run (`state-rosetta checkpoint resume`) trains K steps and saves, audits the save,
restores every checkpoint in one fresh Python process into freshly built objects, trains on
to N, and compares the joined trajectory with the same objects trained on uninterrupted.
The expected cases come from the registry, not from the run, so a case the run leaves out
fails here.
"""

from __future__ import annotations

import pytest

import shared
from shared.core import LOOPS, OPTIMIZERS

STEPS, AT = "6", "3"


def _resume_run(cli_run, model: str, *extra: str) -> dict:
    run = cli_run("checkpoint", "resume", "--model", model, "--steps", STEPS, "--at", AT, *extra)
    return {**run.json, "code": run.code, "output": run.output}


def _cases(cli_run, model: str, *extra: str) -> dict[tuple[str, str, str], dict]:
    data = _resume_run(cli_run, model, *extra)
    return {
        (c["case"]["implementation"], c["case"]["loop"], c["case"]["optimizer"]): c
        for c in data["cases"]
    }


# The bias adder: every implementation (the pure-JAX one too) and loop, with adam, whose
# state (a count and two moments) is the richest; CI's gate runs every optimizer too
# (.ci/run: checkpoint resume --model bias-adder --optimizer all), as for the MLPs below.
BIAS_OPTIMIZER = "adam"
assert BIAS_OPTIMIZER in OPTIMIZERS
# The fast tier resumes each framework's native loop (its checkpoint is the framework's own
# code), from a run of that loop alone; the slow tier every loop, from one run of them all.
BIAS = [
    pytest.param(
        i,
        loop,
        BIAS_OPTIMIZER,
        id=f"{i}-{loop}-{BIAS_OPTIMIZER}",
        marks=() if loop == "native" else pytest.mark.slow,
    )
    for i in shared.implementations("bias-adder")
    for loop in LOOPS
]


# The MLPs compile a ~1.5 s step per case on 2 cores, so in the suite each runs the loop
# whose checkpoint is the framework's own code (the native loop: a Linen TrainState, NNX's
# nnx.state with its typed RNG keys, Haiku's dicts, Equinox's eqx.filter, Keras's variables,
# and each dropout stream) with adam, the richest optimizer state. The harness and scan
# loops' trainers are the same generic code for every framework, and the bias adder above
# resumes them in every framework with every optimizer. CI also runs the MLPs' native loops
# with every optimizer from the command line (.ci/run: checkpoint resume --optimizer all).
MLP_LOOPS = ("native",)


def _mlp_params(model: str) -> list:
    return [
        pytest.param(i, loop, "adam", id=f"{i}-{loop}-adam")
        for i in shared.implementations(model)
        for loop in MLP_LOOPS
    ]


def _assert_resumed(case: dict) -> None:
    assert case["error"] is None, case["error"]
    assert case["audit"] == [], case["audit"]  # a correct save: the audit reports nothing
    assert case["bitwise"], f"resumed run parts at {case['first_divergence']}"
    assert case["first_divergence"] is None
    assert case["ok"]


@pytest.mark.parametrize(("impl", "loop", "optimizer"), BIAS)
def test_bias_adder_resumes_bitwise(cli_run, impl: str, loop: str, optimizer: str) -> None:
    native_only = ("--loop", "native") if loop == "native" else ()
    cases = _cases(cli_run, "bias-adder", "--optimizer", BIAS_OPTIMIZER, *native_only)
    _assert_resumed(cases[(impl, loop, optimizer)])


def _mlp_case(cli_run, model: str, impl: str, loop: str, optimizer: str, *mode: str) -> dict:
    extra = ("--optimizer", optimizer, "--loop", ",".join(MLP_LOOPS), *mode)
    return _cases(cli_run, model, *extra)[(impl, loop, optimizer)]


@pytest.mark.slow  # the bias adder resumes every framework's native checkpoint in the fast tier
@pytest.mark.parametrize(("impl", "loop", "optimizer"), _mlp_params("mlp-bn"))
def test_mlp_bn_resumes_bitwise(cli_run, impl: str, loop: str, optimizer: str) -> None:
    _assert_resumed(_mlp_case(cli_run, "mlp-bn", impl, loop, optimizer))


@pytest.mark.slow  # every framework; the fast tier resumes the two whose stream is model state
@pytest.mark.parametrize(("impl", "loop", "optimizer"), _mlp_params("mlp-dropout"))
def test_mlp_dropout_native_keys_resume_bitwise(
    cli_run, impl: str, loop: str, optimizer: str
) -> None:
    """Native keys: the dropout stream is the framework's own state (NNX's `nnx.Rngs`
    stream, Keras's seed generator, a step counter in Linen's `TrainState` and in the Haiku
    and Equinox loops), so a resume that lost it would draw step 0's masks again."""
    _assert_resumed(_mlp_case(cli_run, "mlp-dropout", impl, loop, optimizer, "--native"))


def test_resume_command_exits_0_and_says_so(cli_run) -> None:
    data = _resume_run(cli_run, "bias-adder", "--optimizer", BIAS_OPTIMIZER, "--loop", "native")
    assert data["code"] == 0, data["output"][-3000:]
    n = len(shared.implementations("bias-adder"))  # one native loop each
    assert f"{n} of {n} resumed bitwise with a clean audit" in data["output"]
    assert (data["at"], data["steps"]) == (int(AT), int(STEPS))


def test_an_nnx_rngs_stream_resumes_bitwise(cli_run) -> None:
    """The fast tier's dropout-stream resume: NNX keeps its stream in the model as typed
    keys (`key<fry>`), which orbax cannot save as they are (the slow tier resumes every
    framework's stream)."""
    nnx_only = ("--optimizer", "adam", "--loop", "native", "--native", "--impls", "flax_nnx")
    cases = _cases(cli_run, "mlp-dropout", *nnx_only)
    assert set(cases) == {("flax_nnx", "native", "adam")}
    _assert_resumed(cases[("flax_nnx", "native", "adam")])
