"""The first diverging layer: bugs planted in known layers are named there, at step 1, with
that layer's input agreeing; an agreeing pair runs no layer trace.

The ResNet plug-in (a Haiku reference, a correct Linen port, four Linen ports each with one
bug in a known layer) is slow: two frameworks' residual networks compiled for five ports.
The fast case is mlp-bn, Haiku against a Linen port whose BatchNorm epsilon is wrong.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import itertools
import json

import pytest
from helpers import plugin
from rich.console import Console

import shared
import shared.report
from impl_equinox import EquinoxMlpBn
from impl_flax import LinenMlpBn, NNXMlpBn
from impl_haiku import HaikuMlpBn
from impl_keras import KerasMlpBn
from shared.models import mlp_bn

resnet = plugin("layers/plugins/resnet.py")

MLP_BN = {c.name: c for c in (LinenMlpBn, NNXMlpBn, HaikuMlpBn, EquinoxMlpBn, KerasMlpBn)}
BUGGY_EPSILON = 1e-1
"""The planted bug in mlp-bn: BatchNorm's epsilon 1e-1 instead of the aligned 1e-5, in the
layer `bn` alone (its input, dense1's output, does not depend on it)."""


def wrong_epsilon(cls):
    """A factory of `cls` (an mlp-bn port) whose BatchNorm epsilon is wrong."""

    def make(config):
        impl = cls(dataclasses.replace(config, epsilon=BUGGY_EPSILON))
        impl.name = f"{cls.name}-eps"
        return impl

    make.__name__ = f"{cls.name}-eps"
    return make


def _lockstep(result: shared.CompareResult, a: str) -> shared.PairResult:
    pair = next(p for p in result.pairs if p.a == f"{a}/harness" and p.kind == "across")
    assert pair.lockstep is not None
    return pair.lockstep


def _report(ls: shared.PairResult) -> shared.LayerReport:
    div = ls.first_divergence
    assert div is not None and div.layers is not None
    return div.layers


def _layer(report: shared.LayerReport, path: str) -> shared.LayerDiff:
    return next(d for d in report.layers if d.layer == path)


TRACED: list[str] = []


class CountedLinenMlpBn(LinenMlpBn):
    """The Linen port, counting its layer traces."""

    def layer_trace(self, *args, **kwargs):
        TRACED.append(self.name)
        return super().layer_trace(*args, **kwargs)


def test_a_wrong_batchnorm_epsilon_is_named_at_bn_with_its_input_agreeing():
    TRACED.clear()
    result = shared.cross_validate(
        mlp_bn.SPEC,
        [HaikuMlpBn, wrong_epsilon(CountedLinenMlpBn)],
        steps=2,
        loops=["harness"],
        reference="haiku",
    )
    assert TRACED == ["flax_linen-eps"]  # once, at the first diverging step (both diverge)
    ls = _lockstep(result, "flax_linen-eps")
    report = _report(ls)
    assert report.step == 1 and report.layer == "bn" and report.where == "output"
    bn = _layer(report, "bn")
    assert bn.input_agrees and not bn.output_agrees
    assert bn.output_max_abs > 100 * ls.tolerance.atol  # far beyond rounding
    assert _layer(report, "dense1").output_agrees  # the layer before it agrees
    # The JSON and the terminal line name it.
    pair = next(p for p in result.pairs if p.a == "flax_linen-eps/harness")
    first = json.loads(json.dumps(pair.to_json()))["lockstep"]["first_divergence"]
    assert first["layer"] == "bn" and [d["path"] for d in first["layers"]][:2] == ["dense1", "bn"]
    assert first["layer_analysis"]["where"] == "output"
    console = Console(file=io.StringIO(), width=400)
    shared.report.print_report(result, console)
    assert "first differs at layer `bn`" in console.file.getvalue()
    with pytest.raises(AssertionError, match=r"first differs at layer `bn` .*its input agrees"):
        shared.check_agreement(result)


def test_an_agreeing_pair_runs_no_layer_trace():
    TRACED.clear()
    result = shared.cross_validate(
        mlp_bn.SPEC, [HaikuMlpBn, CountedLinenMlpBn], steps=2, loops=["harness"],
        reference="haiku",
    )  # fmt: skip
    assert result.agree and not TRACED


@functools.cache
def _resnet_run() -> shared.CompareResult:
    ports = [resnet.HaikuResNet, resnet.LinenResNet, *resnet.BUGS]
    return shared.cross_validate(resnet.SPEC, ports, steps=1, loops=["harness"])


@pytest.mark.slow
def test_the_correct_resnet_port_agrees_and_is_not_traced():
    ls = _lockstep(_resnet_run(), "flax_linen")
    assert ls.agree and ls.first_divergence is None


@pytest.mark.slow
@pytest.mark.parametrize("port", list(resnet.BUGS), ids=lambda p: p.name)
def test_each_resnet_bug_is_named_at_its_own_layer_at_step_1(port):
    report = _report(_lockstep(_resnet_run(), port.name))
    planted = resnet.BUGS[port]
    assert report.step == 1 and report.layer == planted
    named = _layer(report, planted)
    assert named.input_agrees
    if port is resnet.WrongMomentum:
        # BatchNorm normalises a training batch by its own statistics: the momentum shows in
        # the running statistics only; every layer's forward output agrees.
        assert report.where == "state"
        assert all(d.output_agrees for d in report.layers)
        assert "state update differs" in report.note
    else:
        assert report.where == "output" and not named.output_agrees
        # Every layer that returns before it (in the reference's order) agrees.
        before = list(itertools.takewhile(lambda d: d.layer != planted, report.layers))
        assert before and all(d.output_agrees for d in before)
    if port is resnet.StrideInConv2:
        assert named.problem is not None and "shape" in named.problem
    if port is resnet.ReluBeforeAdd:
        # The block's sublayers all agree: the bug is in the block's own code between them.
        subs = [d for d in report.layers if d.layer.startswith("block1.")]
        assert len(subs) == 4 and all(d.output_agrees for d in subs)


@pytest.mark.slow
@pytest.mark.parametrize("reference", list(MLP_BN))
def test_every_pair_of_frameworks_names_the_planted_bug_at_bn(reference):
    others = [wrong_epsilon(cls) for name, cls in MLP_BN.items() if name != reference]
    result = shared.cross_validate(
        mlp_bn.SPEC,
        [MLP_BN[reference], *others],
        steps=1,
        loops=["harness"],
        reference=reference,
    )
    for name in MLP_BN:
        if name == reference:
            continue
        report = _report(_lockstep(result, f"{name}-eps"))
        assert (report.layer, report.where) == ("bn", "output"), (name, report.note)
        assert _layer(report, "bn").input_agrees
        assert _layer(report, "dense1").output_agrees
