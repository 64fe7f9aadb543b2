"""(g) A wrong implementation is reported as diverging first at the right step and leaf."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers import against_reference, batches, where

import shared
from shared.cli import main
from shared.models.bias_adder import BiasAdderConfig, JaxBiasAdder, bias_adder_loss

PLUGIN = Path(__file__).parent / "plugins" / "wrong_momentum.py"


@pytest.mark.parametrize("from_step", [1, 5, 17])
@pytest.mark.parametrize("loop", ["harness", "scan"])
def test_library_names_first_step_and_leaf(from_step, loop):
    factory = shared.load_factory(f"{PLUGIN}:WrongMomentumFromStep")
    config = BiasAdderConfig(4)
    xs = batches(8, 4, steps=20)
    runs = {}
    for model in (factory(config, from_step=from_step), JaxBiasAdder(config)):
        params, state = model.init(jax.random.key(0), xs[0])
        runs[model.name] = shared.run_loop(
            loop, model, params, state, shared.OptimizerConfig().make(), xs, bias_adder_loss
        )
    result = shared.compare(runs["wrong_momentum"], runs["jax"])
    # The state is updated first in a step; the loss and then the bias follow from it.
    assert result.first_divergence == shared.Divergence(from_step, "state.mean")
    wrong, right = runs["wrong_momentum"], runs["jax"]
    for s in range(from_step):  # everything before is bitwise equal
        assert np.array_equal(wrong.state["mean"][s], right.state["mean"][s])
        assert np.array_equal(wrong.params["bias"][s], right.params["bias"][s])


def test_cli_reports_the_wrong_implementation_and_exits_1(tmp_path, capsys):
    out = tmp_path / "run.json"
    code = main(
        [
            "compare",
            "--impl",
            f"{PLUGIN}:WrongMomentumFromStep",
            "--steps",
            "12",
            "--json",
            str(out),
        ]
    )
    assert code == 1
    printed = capsys.readouterr().out
    assert "wrong_momentum/harness diverges from jax/harness first at step 5, state.mean" in printed
    run = json.loads(out.read_text())
    assert run["comparison"]["agree"] is False
    pairs = against_reference(run["comparison"]["pairs"])
    for loop in ("harness", "scan"):
        assert where(pairs[f"wrong_momentum/{loop}"]["first_divergence"]) == {
            "step": 5,
            "leaf": "state.mean",
        }
    assert "wrong_momentum/native" not in run["trajectories"]  # it has no native loop
    assert all(p["first_divergence"] is None for a, p in pairs.items() if not a.startswith("wrong"))
