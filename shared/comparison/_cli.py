"""`state-rosetta compare`: train a model in every framework and loop and compare."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from .._api import CompareOptions, run_compare, suggest_tolerances
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
from .._devices import ensure_devices
from .._registry import DEFAULT_MODEL, MODELS, implementations, is_registered
from ..core import (
    KEEP,
    LOOPS,
    OPTIMIZERS,
    PARALLEL_MODES,
    SIDECAR_SUFFIX,
    CompareResult,
    ModelSpec,
    RunOptions,
)
from ..report import plot, print_report, print_suggestions, write_json
from ._footprint import check_devices, check_fits, footprint, probe

LONG_RUN_STEPS = 2_000  # total steps over all trajectories above which a progress bar shows


def parse_loops(text: str) -> tuple[str, ...]:
    """`--loop`'s value: comma-separated loop names, each one of `LOOPS`."""
    loops = csv(text)
    if not loops:
        raise argparse.ArgumentTypeError(f"expected one or more of {', '.join(LOOPS)}")
    for loop in loops:
        if loop not in LOOPS:
            raise argparse.ArgumentTypeError(
                f"unknown loop {loop!r}; expected one of {', '.join(LOOPS)}"
            )
    return loops


def add_parser(sub: Any, spec: ModelSpec | None) -> None:
    """`compare`, with the generic options and, when the model is known, the model's own."""
    c = sub.add_parser(
        "compare",
        help="train a model in every framework and loop and compare the trajectories",
        description="Train a model in every framework and loop (or your own implementations "
        "of your own model) and compare step by step. Exit 0 when all agree within the "
        "declared tolerances, 1 when any diverges or fails, 2 on bad arguments or data.",
    )
    c.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="NAME|FILE.py:ATTR",
        help=f"a built-in model ({', '.join(MODELS)}) or your own ModelSpec as FILE.py:ATTR or "
        f"MODULE:ATTR (default: {DEFAULT_MODEL})",
    )
    c.add_argument(
        "--impls",
        type=csv,
        default=None,
        help="comma-separated registered implementations of a built-in model (default: all)",
    )
    c.add_argument(
        "--impl",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="add your own implementation (a factory: config -> implementation); "
        "MODULE may be a path to a .py file; repeatable",
    )
    c.add_argument(
        "--reference",
        metavar="NAME",
        help="the implementation (or IMPL/LOOP trajectory) every other one is compared with "
        "(default: the model's reference, or the first --impl)",
    )
    c.add_argument(
        "--tolerance",
        metavar="T",
        help="judge every pair by T instead of the model's tolerances: bitwise, a count of "
        "float32 ULPs (4ulp) or an absolute bound (1e-6)",
    )
    c.add_argument(
        "--loop", type=parse_loops, default=LOOPS, help="comma-separated harness, native, scan"
    )
    c.add_argument("--steps", type=int, default=None, help="training steps (default: the model's)")
    c.add_argument("--batch", type=int, default=None, help="batch size (default: the model's)")
    c.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="(default: sgd)")
    c.add_argument("--lr", type=float, default=None, help="learning rate (default: the model's)")
    c.add_argument(
        "--seed", type=int, default=0, help="seeds the data, the init and the keys (default: 0)"
    )
    c.add_argument(
        "--data",
        type=Path,
        metavar="FILE.npy",
        help="your own data, for models that take it (the model's help says which shapes)",
    )
    c.add_argument("--json", type=Path, metavar="PATH", help="write the run as JSON")
    c.add_argument("--plot", type=Path, metavar="PATH", help="write a PNG of the trajectories")
    c.add_argument(
        "--devices",
        type=int,
        default=1,
        metavar="N",
        help="train data-parallel over N devices and compare with one device (on CPU: forced "
        "host devices)",
    )
    c.add_argument(
        "--parallel",
        choices=PARALLEL_MODES,
        default="shard_map",
        help="with --devices: each framework's cross-device argument under shard_map "
        "(default), plain jit over a sharded batch, or shard_map without synchronisation",
    )
    c.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="P",
        help="run on P local processes (127.0.0.1, gloo), --devices-per-process each",
    )
    c.add_argument(
        "--devices-per-process", type=int, default=None, metavar="N", help="with --processes"
    )
    c.add_argument(
        "--port",
        type=int,
        default=None,
        help="with --processes: the coordinator's port on 127.0.0.1 (default: a free one)",
    )
    c.add_argument(
        "--no-lockstep",
        dest="lockstep",
        action="store_false",
        help="run no lockstep: each pair's verdict is its free-running comparison alone",
    )
    c.add_argument(
        "--keep",
        choices=KEEP,
        default="auto",
        help="keep every value of every step (trajectories), or only per-step summaries; "
        "auto: every value while the run is small (default)",
    )
    c.add_argument(
        "--suggest-tolerances",
        action="store_true",
        help="train nothing else: measure the model's rounding floor from its reference "
        "(its scan, its step op by op, its float64 oracle) and print a Tolerances block",
    )
    c.add_argument(
        "--force",
        action="store_true",
        help="run even when the memory estimate says the run does not fit this machine",
    )
    c.add_argument("--process-id", type=int, default=None, help=argparse.SUPPRESS)
    c.add_argument("--coordinator", default=None, help=argparse.SUPPRESS)
    if spec is not None:
        add_model_options(c, spec)


def _data(args: argparse.Namespace) -> np.ndarray | None:
    if args.data is None:
        return None
    try:
        data = np.load(args.data, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UsageError(f"--data {args.data}: cannot read a .npy array: {e}") from None
    if not isinstance(data, np.ndarray):  # an .npz archive
        raise UsageError(f"--data {args.data}: expected one .npy array, got {type(data).__name__}")
    return data


def _options(args: argparse.Namespace, spec: ModelSpec) -> CompareOptions:
    data = args.data_array
    if args.impls is not None and not is_registered(args.model):
        raise UsageError("--impls picks a built-in model's implementations; use --impl here")
    return CompareOptions(
        model=spec,  # loaded once, before the parse
        mode=getattr(args, "mode", None),
        impls=args.impls,
        user_impls=tuple(args.impl),
        loops=args.loop,
        steps=args.steps,
        batch=args.batch,
        optimizer=args.optimizer,
        lr=args.lr,
        seed=args.seed,
        data=data,
        data_source=None if args.data is None else str(args.data),
        values=model_values(args, spec),
        reference=args.reference,
        tolerance=args.tolerance,
        devices=args.devices,
        parallel=args.parallel,
        lockstep=args.lockstep,
        keep=args.keep,
    )


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse bad counts, ports, seeds and outputs before anything starts."""
    for option, value in (  # --steps and --batch: the model says what it takes
        ("--devices", args.devices),
        ("--processes", args.processes),
        ("--devices-per-process", args.devices_per_process),
    ):
        check_count(option, value)
    check_seed(args.seed)
    if args.port is not None and not 0 < args.port < 2**16:
        raise UsageError(
            f"--port: expected 1..65535, got {args.port} (or leave --port out: the launcher "
            "picks a free one)"
        )
    check_reports(args.json, args.plot)


def check_reports(json: Path | None, plot: Path | None = None) -> None:
    """Refuse, before anything trains, a `--json` (or its sidecar) or `--plot` path that
    cannot be written."""
    check_output(json, plot)  # first: a path with no name ('.', '/') is a folder, refused here
    if json is not None:
        check_output(json.with_name(json.name + SIDECAR_SUFFIX))


def _guard(args: argparse.Namespace, spec: ModelSpec, *, devices: int, processes: int) -> None:
    """The memory guard (skipped with --force): refuse a run that cannot fit."""
    if args.force:
        return
    options = RunOptions(
        steps=args.steps,
        batch=args.batch,
        optimizer=args.optimizer,
        lr=args.lr,
        seed=args.seed,
        mode=getattr(args, "mode", None),
        data=args.data_array,
        values=model_values(args, spec),
    )
    found = probe(spec, options)
    check_devices(found, devices)
    if found is None:
        return
    estimate = footprint(
        spec,
        found,
        model=args.model,
        impls=args.impls,
        user_impls=tuple(args.impl),
        loops=args.loop,
        devices=devices,
        seed=args.seed,
    )
    check_fits(estimate, processes)


def run(args: argparse.Namespace, console: Console) -> int:
    """Run `state-rosetta compare` (`args.spec`: the model's spec, loaded before the parse)."""
    spec: ModelSpec = args.spec
    _check_arguments(args)
    args.data_array = _data(args)
    if args.processes > 1 or args.devices_per_process is not None:
        if args.process_id is None:  # the launcher: start the processes, report what they did
            from .._launch import launch

            per = args.devices_per_process or 1
            _guard(args, spec, devices=args.processes * per, processes=args.processes)
            try:
                return launch(args, console)
            except ValueError as e:
                raise UsageError(str(e)) from None
        from .._launch import join_processes

        join_processes(args)  # a launched process: form the global mesh first
    else:
        _guard(args, spec, devices=args.devices, processes=1)
        if args.devices > 1:
            code = ensure_devices(args.devices, args.argv)
            if code is not None:  # ran in a child process that could see the devices
                return code
    options = _options(args, spec)
    if args.suggest_tolerances:
        try:
            measured = suggest_tolerances(options)
        except (ValueError, TypeError) as e:
            raise UsageError(str(e)) from None
        print_suggestions(spec.name, measured, console)
        return EXIT_AGREE
    registered = implementations(spec.name) if is_registered(args.model) else {}
    count = len(options.impls if options.impls is not None else registered)
    count += len(options.user_impls)
    total = (options.steps or spec.steps) * count * len(options.loops)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=total < LONG_RUN_STEPS,
    ) as bar:
        task = bar.add_task("training", total=count * len(options.loops))

        def advance(name: str) -> None:
            bar.update(task, description=f"training {name}", advance=1)

        try:
            result = run_compare(options, progress=advance)
        except (ValueError, TypeError) as e:
            raise UsageError(str(e)) from None
    if args.process_id not in (None, 0):  # a launched process: process 0 reports
        return EXIT_AGREE if result.agree else EXIT_DIVERGE
    return report(result, console, json=args.json, plot_path=args.plot)


def report(
    result: CompareResult,
    console: Console,
    *,
    json: Path | None = None,
    plot_path: Path | None = None,
) -> int:
    """Print the run's table, divergences and verdict line, write its JSON and plots; return
    the exit code (0 all agree, 1 something diverged or failed). `state-rosetta port` reports
    through this too, so that a port's result reads as a comparison's."""
    print_report(result, console)
    if json is not None:
        for path in write_json(result, json):
            console.print(f"wrote {escape(str(path))}")
    if plot_path is not None:
        plot(result, plot_path)
        console.print(f"wrote {escape(str(plot_path))}")
        for analysis in result.analyses:
            if analysis.plot is not None:
                path = plot_path.with_name(f"{plot_path.stem}.{analysis.key}{plot_path.suffix}")
                analysis.plot(path)
                console.print(f"wrote {escape(str(path))}")
    return EXIT_AGREE if result.agree else EXIT_DIVERGE
