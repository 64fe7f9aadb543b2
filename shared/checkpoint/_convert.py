"""Convert a checkpoint of one framework's native loop into another framework's layout.

The source is read leaf by leaf against its framework's native layout (`_native_read`),
restored into that framework's freshly built loop, and taken apart into canonical names:
the params and state through the implementation's `to_canonical`, optax's state through
`canonical_opt_state` (its moments mirror the params, so they take the params' names), the
step counter as a number. The target is built from those names, its optimizer state by
`opt_state_from_canonical`, the step in the target's own dtype; state that only one side
keeps (NNX's RNG streams, say) is reported, not invented. The new checkpoint is written
into a hidden folder beside the destination, read back into fresh objects and compared,
and only then renamed into place: a conversion that fails leaves nothing at the
destination.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jax
import numpy as np

from .._registry import implementations
from ..core import (
    PairResult,
    Trajectory,
    canonical_opt_state,
    compare,
    contained,
    named_leaves,
    opt_state_from_canonical,
)
from ._case import Built, Case
from ._errors import CheckpointError
from ._layouts import NativeLayout, layout_for
from ._native_read import read_layout
from ._resume import _child_env, read_trajectories, trusted
from ._store import CheckpointStore
from ._trainers import NativeTrainer, make_trainer
from ._trees import savable


@dataclass
class Converted:
    """A conversion: the source's case and the target's, the step, and what was carried.

    **Fields:** `source`, `target` (the cases), `at` (the step), `directory` (the new
    checkpoint), `step_dtypes` (the step counter's dtype in each, `None` where one keeps
    none), `not_carried` (source state the target has no place for), `own` (target state
    the source did not have: the target's initial values).
    """

    source: Case
    target: Case
    at: int
    directory: Path
    step_dtypes: tuple[str | None, str | None] = (None, None)
    not_carried: list[str] = field(default_factory=list)
    own: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "from": self.source.implementation,
            "into": self.target.implementation,
            "model": self.source.model,
            "at": self.at,
            "directory": str(self.directory),
            "step_dtype": {"from": self.step_dtypes[0], "into": self.step_dtypes[1]},
            "not_carried": self.not_carried,
            "own": self.own,
        }


def _dtype(step: Any) -> str | None:
    if step is None:
        return None
    return "int" if isinstance(step, int) else str(np.asarray(step).dtype)


def _source(store: CheckpointStore, framework: str | None) -> tuple[Case, int]:
    meta = store.meta()
    try:
        case = Case.from_json(meta.get("case"))
    except CheckpointError as e:
        raise CheckpointError(
            f"checkpoint {store.directory}: its metadata names no usable run ({e})"
        ) from None
    try:
        trusted(case, (), store.directory)  # a checkpoint's code is never imported
    except CheckpointError:
        raise CheckpointError(
            f"checkpoint {store.directory}: its run names --model {case.model!r} --impl "
            f"{case.implementation!r}; convert reads checkpoints of built-in models only"
        ) from None
    option = f"--from {framework or case.implementation}"
    if case.loop != "native":
        raise CheckpointError(
            f"{option}: checkpoint {store.directory} was saved by the {case.loop} loop, "
            "expected a framework's native loop (checkpoint save --loop native)"
        )
    if framework is not None and framework != case.implementation:
        expected = layout_for(framework, "--from").description
        raise CheckpointError(
            f"{option}: checkpoint {store.directory} holds {case.implementation}'s native "
            f"layout, expected {expected}"
        )
    return case, int(meta["step"])


def _canonical(
    built: Built, store: CheckpointStore, at: int, layout: NativeLayout
) -> tuple[dict[str, Any], Any]:
    """The source restored into its fresh native loop, under canonical names."""
    option = f"--from {built.case.implementation}"
    trainer = built.trainer()
    assert isinstance(trainer, NativeTrainer)
    where = f"{option}: checkpoint {store.directory} step {at}"
    tree = read_layout(store.leaves(at), trainer.checkpoint(), where, layout.description)
    trainer.restore(tree)
    params, state = trainer.native.read()
    try:
        opt_state, step = layout.optimizer(tree, built.tx)
    except KeyError as e:
        raise CheckpointError(f"{where}: no optimizer state leaf {e.args[0]!r}") from None
    if step is not None and int(np.asarray(step)) != at:
        raise CheckpointError(
            f"{where}: its step counter says {int(np.asarray(step))}, expected {at} (the "
            "step it was saved at)"
        )
    cparams, cstate = built.impl.to_canonical(params, state)
    portable = {
        "params": dict(cparams),
        "state": dict(cstate),
        "opt_state": canonical_opt_state(built.impl, layout.mirrored(tree), state, opt_state),
    }
    return portable, step


def _target_tree(
    built: Built, portable: dict[str, Any], at: int, layout: NativeLayout
) -> tuple[Any, list[str], list[str], Any]:
    """The target's native checkpoint from canonical names; what it did not carry, its own
    state, and its step as written."""
    option = f"--to {built.case.implementation}"
    fresh_params, fresh_state = built.trainer().canonical()
    params, saved_state = portable["params"], portable["state"]
    if set(params) != set(fresh_params):
        name = sorted(set(params) ^ set(fresh_params))[0]
        raise CheckpointError(
            f"{option}: the params do not match at {name!r}; expected "
            f"{', '.join(sorted(fresh_params))}"
        )
    not_carried = sorted(set(saved_state) - set(fresh_state))
    own = sorted(set(fresh_state) - set(saved_state))
    state = {k: saved_state.get(k, v) for k, v in fresh_state.items()}
    impl = built.impl
    native_params, native_state = impl.from_canonical(params, state)
    trainer = make_trainer("native", impl, native_params, native_state, built.tx, built.spec.loss)
    template = trainer.checkpoint()
    mirrored = layout.mirrored(template)
    try:
        opt_state = opt_state_from_canonical(
            impl, mirrored, native_state, built.tx, portable["opt_state"], state
        )
        tree = layout.with_optimizer(template, built.tx, opt_state, at)
    except KeyError as e:
        raise CheckpointError(f"{option}: no optimizer state 'opt_state.{e.args[0]}'") from None
    _, step = layout.optimizer(tree, built.tx)
    return tree, not_carried, own, step


def convert(
    source: str | Path, destination: str | Path, *, to: str, framework: str | None = None
) -> Converted:
    """Convert the latest checkpoint in `source` (a native loop's) into `to`'s native layout,
    written as a new checkpoint at `destination`.

    **Arguments:**

    - `source`: a folder written by `checkpoint save --loop native`.
    - `destination`: a folder that does not exist (or is empty); written atomically.
    - `to`: the target implementation (`flax_nnx`, ...).
    - `framework`: the framework `source` must be of (`--from`); default: whatever its
      metadata names.

    Raises [`CheckpointError`][]: one line naming the framework's option (`--from`, `--to`),
    the checkpoint and what was expected.
    """
    target_layout = layout_for(to, "--to")
    with CheckpointStore(source) as store:
        case, at = _source(store, framework)
        source_layout = layout_for(case.implementation, "--from")
        built = Built(case)
        portable, source_step = _canonical(built, store, at, source_layout)
    target_case = replace(case, implementation=to)
    if to not in _implementations(case.model):
        raise CheckpointError(
            f"--to {to}: {case.model} has no {to} implementation; expected one of "
            f"{', '.join(_implementations(case.model))}"
        )
    target = Built(target_case)
    tree, not_carried, own, step = _target_tree(target, portable, at, target_layout)
    meta = {
        **target.identity,
        "case": target_case.to_json(),
        "converted_from": {
            "implementation": case.implementation,
            "directory": str(Path(source).absolute()),
            "step": at,
        },
    }
    folder = _write_atomically(Path(destination), at, tree, meta, target)
    return Converted(
        case, target_case, at, folder, (_dtype(source_step), _dtype(step)), not_carried, own
    )


def _implementations(model: str) -> list[str]:
    return list(implementations(model))


def _write_atomically(
    destination: Path, step: int, tree: Any, meta: dict[str, Any], target: Built
) -> Path:
    """Save into a hidden folder beside `destination`, read it back into the target's fresh
    objects and compare every leaf bitwise, then rename it to `destination`."""
    destination = destination.expanduser().absolute()
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise CheckpointError(
            f"checkpoint {destination}: exists; convert writes a new checkpoint and "
            "overwrites nothing"
        )
    if not destination.parent.is_dir():
        raise CheckpointError(f"checkpoint {destination}: its folder does not exist")
    scratch = Path(
        tempfile.mkdtemp(prefix=f".{destination.name}.converting-", dir=destination.parent)
    )
    try:
        with CheckpointStore(scratch, create=True) as store:
            store.save(step, tree, meta)
            _verify_written(store, tree, target)
        os.rename(scratch, destination)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return destination


def _verify_written(store: CheckpointStore, tree: Any, target: Built) -> None:
    """Read the new checkpoint back into the target's fresh objects, strictly (shapes,
    dtypes, every leaf there), and check that every leaf is what was written, bitwise."""
    fresh = target.trainer()
    back = store.restore(fresh.checkpoint(), expect=target.identity)
    written, read = named_leaves(savable(tree)), named_leaves(savable(back))
    for name, value in written.items():
        if name not in read or not np.array_equal(
            np.asarray(jax.device_get(value)), np.asarray(read[name])
        ):
            raise CheckpointError(
                f"--to {target.case.implementation}: leaf {name!r} did not read back as "
                "written; nothing was written"
            )


def check_converted(converted: Converted, steps: int | None = None) -> PairResult:
    """The proof of a conversion: the target trains on from the new checkpoint in a fresh
    Python process, and its steps are compared with the source framework's own
    uninterrupted run from the same step, within the bound the model states for the target
    against the source (`Tolerances.for_pair`)."""
    stop = converted.source.steps if steps is None else steps
    if not converted.at < stop <= converted.source.steps:
        raise ValueError(
            f"--steps: expected {converted.at + 1}..{converted.source.steps} (converted at "
            f"{converted.at}), got {stop}"
        )
    with tempfile.TemporaryDirectory(prefix="state-rosetta-convert-") as scratch:
        out = Path(scratch) / "continued.npz"
        command = [sys.executable, "-m", "shared", "checkpoint", "continue", "--out", str(out)]
        command += ["--steps", str(stop), str(converted.directory)]
        done = subprocess.run(command, capture_output=True, text=True, env=_child_env())
        if done.returncode != 0 or not out.is_file():
            raise RuntimeError(
                f"the fresh process failed (exit {done.returncode}): {done.stderr[-2000:]}"
            )
        continued = read_trajectories(out)[str(converted.directory)]
    source = Built(converted.source)
    with contained(f"training {converted.source.label}"):
        whole = source.uninterrupted()
    own = _from_step(whole, converted.at, stop)
    target = converted.target.implementation
    tolerances = source.spec.tolerances_for(source.setup.config, source.setup.optimizer)
    tolerance, loss_tolerance = tolerances.for_pair(
        f"{target}/native", f"{converted.source.implementation}/native"
    )
    return compare(
        continued,
        own,
        tolerance,
        names=(
            f"{converted.source.implementation}->{target}/native",
            f"{converted.source.implementation}/native",
        ),
        loss_tolerance=loss_tolerance,
    )


def _from_step(t: Trajectory, at: int, stop: int) -> Trajectory:
    """Steps `at + 1 .. stop` of `t`, its values at step `at` as the initial ones."""
    return Trajectory(
        loss=list(t.loss[at:stop]),
        params={k: list(v[at : stop + 1]) for k, v in t.params.items()},
        state={k: list(v[at : stop + 1]) for k, v in t.state.items()},
    )
