"""Kill safety: SIGKILL the saving process at varied points, 20 times.

`state-rosetta checkpoint save DIR --every 1` saves after every step, so that most of its
time is spent inside a save; each run goes on from the latest complete checkpoint, as a
training script restarted after a crash would. After each kill every complete checkpoint
must restore bitwise to the uninterrupted run's values at its step, none may go missing,
and a temporary folder left by the kill must neither count as a checkpoint nor block the
next save.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.context
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from shared.checkpoint import DIGEST, Built, Case, CheckpointStore
from shared.core import Trajectory

KILLS = 20
"""The slow tier's count; the fast tier kills the saver a few times (the same checks)."""
FAST_KILLS = 3
CASE = Case("bias-adder", "jax", "harness", 5000, optimizer="momentum")
ARGV = ["--impl", "jax", "--optimizer", "momentum", "--steps", str(CASE.steps), "--every", "1"]


def _uninterrupted(steps: int) -> Trajectory:
    built = Built(CASE)
    trainer = built.trainer()
    out = Trajectory()
    out.record_initial(*trainer.canonical())
    trainer.run(*built.segment(0, steps), out)
    return out


def _save_run(directory: str) -> None:
    """One `state-rosetta checkpoint save` run, in a process forked from the fork server."""
    from shared.cli import main

    sys.exit(main(["checkpoint", "save", directory, *ARGV]))


def _kill_one(context: multiprocessing.context.BaseContext, directory: Path, delay: float) -> None:
    """Start a save run, wait until it completes a step, then SIGKILL it `delay` s later."""
    before = set(directory.glob("*/state-rosetta.sha256.json")) if directory.is_dir() else set()
    process = context.Process(target=_save_run, args=(str(directory),))  # type: ignore[attr-defined]
    process.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.is_alive():
            if directory.is_dir() and set(directory.glob("*/state-rosetta.sha256.json")) - before:
                break
            time.sleep(0.005)
        time.sleep(delay)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.join(timeout=30)
    assert process.exitcode == -signal.SIGKILL


@pytest.mark.parametrize(
    "kills", [FAST_KILLS, pytest.param(KILLS, marks=pytest.mark.slow)], ids=lambda n: f"{n}-kills"
)
def test_kills_lose_nothing_and_corrupt_nothing(tmp_path: Path, kills: int) -> None:
    directory = tmp_path / "ckpt"
    rng = np.random.default_rng(0)
    complete: set[int] = set()
    checked: set[int] = set()
    killed_mid_save = 0
    built = Built(CASE)
    # Each run is a process forked from a server that has imported the command line already
    # (its start-up would otherwise be most of the test's time); the run itself is the
    # command line's own code, from argument parsing to orbax.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["shared.cli", "shared.checkpoint"])
    for _ in range(kills):
        _kill_one(context, directory, float(rng.uniform(0.0, 0.3)))
        # A kill inside a save leaves orbax's temporary folder, or a step folder that orbax
        # finished but that has no digest yet: neither may count as a checkpoint.
        leftovers = [
            p.name
            for p in directory.iterdir()
            if "tmp" in p.name or (p.name.isdigit() and not (p / DIGEST).is_file())
        ]
        killed_mid_save += bool(leftovers)
        with CheckpointStore(directory) as store:
            steps = set(store.steps())
            assert not any(str(s) in leftovers for s in steps)  # a partial save is no step
            lost = complete - steps
            assert not lost, f"complete checkpoints lost after a kill: {sorted(lost)}"
            complete = steps
            expected = _uninterrupted(max(steps))
            for step in sorted(steps - checked):
                trainer = built.trainer()
                trainer.restore(store.restore(trainer.checkpoint(), step))
                params, state = trainer.canonical()
                for name, value in {**params, **state}.items():
                    want = (expected.params | expected.state)[name][step]
                    assert np.array_equal(np.asarray(value), want), (step, name)
                checked.add(step)
    assert len(complete) >= kills  # every run saved at least once before its kill
    # The latest checkpoint goes on exactly as the uninterrupted run did (momentum's trace).
    last = max(complete)
    trainer = built.trainer()
    with CheckpointStore(directory) as store:
        trainer.restore(store.restore(trainer.checkpoint()))
    after = Trajectory()
    after.record_initial(*trainer.canonical())
    trainer.run(*built.segment(last, last + 3), after)
    expected = _uninterrupted(last + 3)
    for s in range(1, 4):
        assert np.array_equal(after.params["bias"][s], expected.params["bias"][last + s])
    report = {
        "kills": kills,
        "killed_during_a_save": killed_mid_save,
        "complete_checkpoints": len(complete),
        "restored_bitwise": len(checked),
        "corrupt_restores": 0,
        "lost_checkpoints": 0,
    }
    print(json.dumps(report))
    out = os.environ.get("STATE_ROSETTA_KILL_REPORT")
    if out:
        Path(out).write_text(json.dumps(report))
