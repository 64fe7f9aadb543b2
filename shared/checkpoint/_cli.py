"""`state-rosetta checkpoint`: resume, transplant, save and continue, from the command line.

Every checkpoint command is here: its parser, the cases it builds from the arguments, and
its run function; the library modules (`_resume`, `_transplant`, `_store`) know no command
line.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from .._command import (
    EXIT_AGREE,
    EXIT_DIVERGE,
    UsageError,
    add_model_options,
    check_count,
    check_output,
    check_seed,
    csv,
    model_values,
)
from .._registry import DEFAULT_MODEL, MODELS, implementations, is_registered, load_spec
from ..core import LOOPS, OPTIMIZERS, ModelSpec, json_bytes, write_atomic
from ..report import resume_table, transplant_matrix
from ._case import Built, Case
from ._convert_cli import add_convert_parser, run_convert
from ._errors import CheckpointError
from ._resume import continue_from, errors_path, resume, trajectory_bytes
from ._store import CheckpointStore
from ._transplant import transplant

SUBCOMMANDS = ("resume", "transplant", "save", "continue", "convert")
"""`checkpoint`'s subcommands; all but `continue` and `convert` take the model's own
options."""


def add_parser(sub: Any, spec: ModelSpec | None) -> None:
    """Add `checkpoint` and its subcommands to the command line's subparsers."""
    c = sub.add_parser(
        "checkpoint",
        help="save, resume in a fresh process, audit and transplant checkpoints (orbax)",
        description="Checkpoints of every model, framework and loop, written by orbax. Exit 0 "
        "when every resume is bitwise and every transplant within its bounds, 1 when not, 2 "
        "on bad arguments or a bad checkpoint.",
    )
    actions = c.add_subparsers(dest="action", required=True, parser_class=type(c))

    def run_options(p: argparse.ArgumentParser, *, many: bool) -> None:
        p.add_argument(
            "--model",
            default=DEFAULT_MODEL,
            metavar="NAME|FILE.py:ATTR",
            help=f"a built-in model ({', '.join(MODELS)}) or your own ModelSpec",
        )
        if many:
            p.add_argument(
                "--impls",
                type=csv,
                default=None,
                help="comma-separated implementations (default: all of the model's)",
            )
        p.add_argument("--steps", type=int, default=None, help="steps of the whole run")
        p.add_argument("--batch", type=int, default=None, help="(default: the model's)")
        p.add_argument("--lr", type=float, default=None, help="(default: the model's)")
        p.add_argument("--seed", type=int, default=0, help="(default: 0)")
        if spec is not None:
            add_model_options(p, spec)

    r = actions.add_parser(
        "resume",
        help="save after K steps, restore in a fresh process, train on: bitwise?",
        description="For every implementation, loop and optimizer: train K steps and save "
        "(params, state, optimizer state, step, RNG state), audit the save, restore it in a "
        "fresh Python process into freshly built objects, train on to the last step, and "
        "compare with the uninterrupted run bitwise.",
    )
    run_options(r, many=True)
    r.add_argument("--loop", type=csv, default=LOOPS, help="comma-separated (default: all)")
    r.add_argument(
        "--optimizer",
        type=csv,
        default=("sgd",),
        help=f"comma-separated, or all ({', '.join(OPTIMIZERS)}; default: sgd)",
    )
    r.add_argument("--at", type=int, default=None, help="save after this step (default: half)")
    r.add_argument("--dir", type=Path, default=None, help="keep the checkpoints here")
    r.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")

    t = actions.add_parser(
        "transplant",
        help="save in one framework, restore into another through canonical names, train on",
        description="For every ordered pair of implementations (A, B): train A for K steps and "
        "save its params, state and optimizer state under canonical names; restore them into "
        "B, train B on, and compare with A's own continuation within the model's "
        "cross-framework bounds.",
    )
    run_options(t, many=True)
    t.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="(default: adam)")
    t.add_argument("--at", type=int, default=None, help="transplant after this step")
    t.add_argument("--json", type=Path, metavar="PATH", help="write the matrix as JSON")

    s = actions.add_parser(
        "save",
        help="train one implementation and save checkpoints into DIR (going on from its latest)",
        description="Train one implementation in one loop, saving into DIR every --every steps "
        "and at --until. If DIR holds checkpoints of the same run, training goes on from the "
        "latest complete one; of another run, nothing is written (exit 2).",
    )
    s.add_argument("dir", type=Path, metavar="DIR")
    run_options(s, many=False)
    s.add_argument("--impl", required=True, help="a registered implementation or MODULE:ATTR")
    s.add_argument("--loop", choices=LOOPS, default="harness", help="(default: harness)")
    s.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="(default: sgd)")
    s.add_argument("--until", type=int, default=None, help="stop after this step (default: all)")
    s.add_argument("--every", type=int, default=None, help="also save every N steps")

    g = actions.add_parser(
        "continue",
        help="restore the latest checkpoint of each DIR and train on (resume's fresh process)",
        description="Restore the latest checkpoint of each DIR into freshly built objects and "
        "train on. A checkpoint is data, never code: a model or implementation it names that "
        "is not built in is imported only when you name it here with --model or --impl.",
    )
    g.add_argument("dirs", nargs="+", type=Path, metavar="DIR")
    g.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="FILE.py:ATTR",
        help="a model of your own that the checkpoints may name (repeatable)",
    )
    g.add_argument(
        "--impl",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="an implementation of your own that the checkpoints may name (repeatable)",
    )
    g.add_argument("--steps", type=int, default=None, help="train on to this step")
    g.add_argument("--out", type=Path, required=True, metavar="FILE.npz")
    add_convert_parser(actions)


def run(args: argparse.Namespace, console: Console) -> int:
    """Run `state-rosetta checkpoint ACTION`; a bad checkpoint, `ValueError` and `TypeError`
    are usage errors (exit 2, their first line)."""
    command = {
        "continue": _continue,
        "save": _save,
        "transplant": _transplant,
        "resume": _resume,
        "convert": run_convert,
    }[args.action]
    for option in ("at", "until", "every"):  # --steps, --batch: the model checks them
        check_count(f"--{option}", getattr(args, option, None))
    if hasattr(args, "seed"):
        check_seed(args.seed)
    outputs = [getattr(args, "json", None), getattr(args, "out", None)]
    if args.action == "continue":
        outputs.append(errors_path(args.out))
    check_output(*outputs)
    try:
        return command(args, console)
    except (CheckpointError, ValueError, TypeError) as e:
        raise UsageError(str(e).splitlines()[0]) from None


def _model(args: argparse.Namespace) -> tuple[ModelSpec, dict[str, str]]:
    spec = load_spec(args.model)
    registry = implementations(spec.name) if is_registered(args.model) else {}
    return spec, registry


def _cases(args: argparse.Namespace, spec: ModelSpec, registry: dict[str, str]) -> list[Case]:
    names = tuple(registry) if args.impls is None else args.impls
    unknown = [n for n in names if n not in registry and ":" not in n]
    if unknown or not names:
        raise ValueError(
            f"--impls: unknown implementation {unknown[0] if unknown else ''!r}; expected "
            f"{', '.join(registry) or 'MODULE:ATTR'}"
        )
    optimizers = OPTIMIZERS if args.optimizer == ("all",) else args.optimizer
    for name in (*optimizers, *args.loop):
        if name not in (*OPTIMIZERS, *LOOPS):
            raise ValueError(f"unknown optimizer or loop {name!r}")
    steps = args.steps or spec.steps
    return [
        Case(
            args.model,
            impl,
            loop,
            steps,
            optimizer=opt,
            lr=args.lr,
            seed=args.seed,
            mode=getattr(args, "mode", None),
            batch=args.batch,
            values=model_values(args, spec),
        )
        for impl in names
        for loop in args.loop
        for opt in optimizers
    ]


def _at(args: argparse.Namespace, steps: int) -> int:
    at = steps // 2 if args.at is None else args.at
    if not 0 < at < steps:
        raise ValueError(f"--at: expected a step between 1 and {steps - 1}, got {at}")
    return at


def _resume(args: argparse.Namespace, console: Console) -> int:
    """`checkpoint resume`: the resume proof of every case, in a table."""
    spec, registry = _model(args)
    cases = _cases(args, spec, registry)
    steps = cases[0].steps
    at = _at(args, steps)
    if args.dir is not None and args.dir.exists():
        if not args.dir.is_dir():
            raise ValueError(f"--dir {args.dir}: not a folder")
        if any(args.dir.iterdir()):
            raise ValueError(f"--dir {args.dir}: not empty; nothing was overwritten")
    with console.status("checkpoints") as status:
        results = resume(cases, at, workdir=args.dir, progress=lambda t: status.update(t))
    rows = []
    for r in results:
        if r.error is not None:
            verdict = f"failed: {r.error.splitlines()[0]}"
        elif r.pair is not None and r.pair.agree:
            verdict = "bitwise"
        else:
            verdict = "DIFFERS" + ("" if r.pair is None else f" at {r.pair.first_divergence}")
        audit = "clean" if not r.findings else "; ".join(str(f) for f in r.findings)
        rows.append((r.case.implementation, r.case.loop, r.case.optimizer, verdict, audit))
    title = f"{spec.name}: saved after step {at} of {steps}, resumed in a fresh process"
    console.print(resume_table(title, rows))
    ok = all(r.ok for r in results)
    console.print(
        f"{sum(r.ok for r in results)} of {len(results)} resumed bitwise with a clean audit"
        if ok
        else f"[bold red]{sum(not r.ok for r in results)} of {len(results)} did not[/]"
    )
    if args.json is not None:
        data = {
            "model": spec.name,
            "at": at,
            "steps": steps,
            "cases": [r.to_json() for r in results],
        }
        write_atomic(args.json, json_bytes(data))
        console.print(f"wrote {escape(str(args.json))}")
    return EXIT_AGREE if ok else EXIT_DIVERGE


def _transplant(args: argparse.Namespace, console: Console) -> int:
    """`checkpoint transplant`: every ordered pair of implementations, as a matrix."""
    spec, registry = _model(args)
    args.loop = ("harness",)
    args.optimizer = (args.optimizer,)
    cases = _cases(args, spec, registry)
    steps = cases[0].steps
    at = _at(args, steps)
    with console.status("transplants") as status:
        results = transplant(cases, at, progress=lambda t: status.update(t))
    names = list(dict.fromkeys(r.source for r in results))
    cells = {(r.source, r.target): (r.verdict(), r.ok) for r in results}
    title = (
        f"{spec.name}: saved in A after step {at}, restored into B, trained to {steps} "
        f"({cases[0].optimizer}); B against A's own continuation"
    )
    console.print(transplant_matrix(title, names, cells))
    for r in results:
        if r.error is not None:
            console.print(
                f"[bold red]{escape(r.source)} -> {escape(r.target)}[/]: {escape(r.error)}"
            )
        elif r.carried.not_carried or r.carried.own:
            console.print(
                f"{escape(r.source)} -> {escape(r.target)}: state not carried "
                f"{r.carried.not_carried or 'none'}; {escape(r.target)}'s own "
                f"{r.carried.own or 'none'}"
            )
        elif r.pair is not None and not r.pair.ok:
            console.print(
                f"[bold red]{escape(r.source)} -> {escape(r.target)}[/] parts from "
                f"{escape(r.source)}'s continuation at {r.pair.first_divergence} "
                f"(bound {escape(r.pair.tolerance.describe())})"
            )
    ok = all(r.ok for r in results)
    if args.json is not None:
        data = {
            "model": spec.name,
            "at": at,
            "steps": steps,
            "optimizer": cases[0].optimizer,
            "mode": cases[0].mode,
            "pairs": [r.to_json() for r in results],
        }
        write_atomic(args.json, json_bytes(data))
        console.print(f"wrote {escape(str(args.json))}")
    return EXIT_AGREE if ok else EXIT_DIVERGE


def _save(args: argparse.Namespace, console: Console) -> int:
    """`checkpoint save DIR`: train one case, saving as it goes (on from DIR's latest)."""
    spec, registry = _model(args)
    if args.impl not in registry and ":" not in args.impl:
        raise ValueError(
            f"--impl: unknown implementation {args.impl!r}; expected "
            f"{', '.join(registry) or 'MODULE:ATTR'}"
        )
    case = Case(
        args.model,
        args.impl,
        args.loop,
        args.steps or spec.steps,
        optimizer=args.optimizer,
        lr=args.lr,
        seed=args.seed,
        mode=getattr(args, "mode", None),
        batch=args.batch,
        values=model_values(args, spec),
    )
    until = case.steps if args.until is None else args.until
    every = until if args.every is None else args.every
    if not 0 < until <= case.steps or every < 1:
        raise ValueError(f"--until, --every: expected 1 <= N <= {case.steps}")
    built = Built(case)
    trainer = built.trainer()
    identity = built.identity
    with CheckpointStore(args.dir, create=True) as store:
        start = 0
        if store.steps():
            meta = store.meta()
            if meta.get("case") != case.to_json():
                raise CheckpointError(
                    f"checkpoint {store.directory}: holds another run ({meta.get('case')}); "
                    "nothing was overwritten"
                )
            start = store.latest()
            trainer.restore(store.restore(trainer.checkpoint(), expect=identity))
            console.print(f"going on from step {start}")
        step = start
        while step < until:
            stop = min(until, (step // every + 1) * every)
            built.train(trainer, step, stop)  # not kept: the checkpoints are the record
            step = stop
            store.save(step, trainer.checkpoint(), {**identity, "case": case.to_json()})
            console.print(f"saved step {step}")
    return EXIT_AGREE


def _continue(args: argparse.Namespace, console: Console) -> int:
    """`checkpoint continue DIR... --out FILE.npz` (the resume proof's fresh process).

    One folder that cannot be continued raises its error (exit 2). With several, each
    failure is written to `FILE.npz.errors.json` by folder, the others are continued, and
    the exit code is 1.
    """
    directories: Sequence[str] = [str(d) for d in args.dirs]
    trajectories, errors = {}, {}
    for directory in directories:
        try:
            plugins = (*args.model, *args.impl)
            _, _, trajectories[directory] = continue_from(directory, args.steps, plugins)
        except Exception as e:
            if len(directories) == 1:
                raise
            errors[directory] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    write_atomic(args.out, trajectory_bytes(trajectories))
    if errors:
        write_atomic(errors_path(args.out), json_bytes(errors))
    return EXIT_DIVERGE if errors else EXIT_AGREE
