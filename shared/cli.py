"""The `state-rosetta` command line (also `python -m shared`).

`compare` trains a model in every framework and loop and compares; `diff` compares two saved
runs; `docs` generates the idioms guide; `bench` times the training steps. Exit codes: 0 all
agree (or done), 1 something diverged, failed or is stale, 2 bad arguments or data.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ._api import CompareOptions, run_compare
from ._devices import ensure_devices
from ._registry import DEFAULT_MODEL, MODELS, implementations, is_registered, load_spec, versions
from .core import (
    LOOPS,
    OPTIMIZERS,
    PARALLEL_MODES,
    ModelSpec,
    config_differences,
    diff_runs,
    load_run,
    parse_tolerance,
    summary_counts,
    write_atomic,
)
from .report import plot, print_report, write_json

EXIT_AGREE, EXIT_DIVERGE, EXIT_USAGE = 0, 1, 2
LONG_RUN_STEPS = 2_000  # total steps over all trajectories above which a progress bar shows


class UsageError(Exception):
    """Bad arguments or bad data: exit 2 with one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, no usage dump: the contract for exit code 2.
        raise UsageError(message)


def _csv(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _loops(text: str) -> tuple[str, ...]:
    loops = _csv(text)
    for loop in loops:
        if loop not in LOOPS:
            raise argparse.ArgumentTypeError(
                f"unknown loop {loop!r}; expected one of {', '.join(LOOPS)}"
            )
    return loops


def _add_compare(sub: Any, spec: ModelSpec | None) -> None:
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
        type=_csv,
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
        "--loop", type=_loops, default=LOOPS, help="comma-separated harness, native, scan"
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
    c.add_argument("--process-id", type=int, default=None, help=argparse.SUPPRESS)
    c.add_argument("--coordinator", default=None, help=argparse.SUPPRESS)
    if spec is not None:
        add_model_options(c, spec)


def add_model_options(parser: Any, spec: ModelSpec) -> None:
    """The model's own options (and its modes) as a group of `parser`'s arguments."""
    group = parser.add_argument_group(f"options of model {spec.name}")
    for option in spec.options:
        flags = [option.flag, *getattr(option, "aliases", ())]
        if option.type is None:
            group.add_argument(
                *flags, dest=f"model_{option.key}", action="store_true", help=option.help
            )
        else:
            group.add_argument(
                *flags,
                dest=f"model_{option.key}",
                metavar=option.key.upper(),
                type=option.type,
                default=option.default,
                help=option.help,
            )
    if spec.modes:
        modes = group.add_mutually_exclusive_group()
        for mode in spec.modes:
            modes.add_argument(
                f"--{mode}",
                dest="mode",
                action="store_const",
                const=mode,
                help=spec.mode_help.get(mode, f"mode {mode}"),
            )


def build_parser(spec: ModelSpec | None = None) -> argparse.ArgumentParser:
    """The parser; `compare` gets `spec`'s own options (the default model's when `None`)."""
    parser = _Parser(prog="state-rosetta", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_compare(sub, spec)
    d = sub.add_parser(
        "diff",
        help="compare two saved runs (compare --json) step by step",
        description="Compare two runs saved by `state-rosetta compare --json`, for example from "
        "two machines or two releases, trajectory by trajectory (bitwise unless --tolerance). "
        "Exit 0 when all agree, 1 when any diverges, 2 when the files cannot be read or the "
        "runs' models or configs differ (unless --ignore-config).",
    )
    d.add_argument("a", type=Path, metavar="A.json")
    d.add_argument("b", type=Path, metavar="B.json", help="the reference run")
    d.add_argument(
        "--ignore-config",
        action="store_true",
        help="compare even when the runs' models or configs differ",
    )
    d.add_argument("--tolerance", metavar="T", help="bitwise (default), 4ulp or 1e-6")
    from .docs._generate import add_parser

    add_parser(sub)
    from .checkpoint._cli import add_parser as add_checkpoint

    add_checkpoint(sub, spec, add_model_options)
    b = sub.add_parser(
        "bench",
        help="time each framework's training step: native idiom, harness step, harness scan",
        description="Per-step cost of every implementation on every path, at a tiny and a large "
        "shape, as ratios to each model's baseline measured in the same run.",
    )
    b.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run (50 s on 2 cores in the recorded run, docs/performance-quick.json); "
        "its large-shape ratios are too noisy to judge",
    )
    b.add_argument(
        "--depth",
        type=_csv,
        default=None,
        metavar="L,L,...",
        help="time each path against the number of layers instead (e.g. 1,4,16,64; the "
        "bias-stack model), fit the cost per layer and plot time against depth "
        "(under 10 minutes on 2 cores in the recorded runs)",
    )
    b.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when a judged target is missed (each is printed with its measured value)",
    )
    b.add_argument(
        "--models",
        type=_csv,
        default=None,
        help=f"comma-separated built-in models ({', '.join(MODELS)}; default: all)",
    )
    b.add_argument(
        "--impls",
        type=_csv,
        default=None,
        help="comma-separated (default: every implementation of each model; each model's "
        "baseline must be included)",
    )
    b.add_argument(
        "--devices",
        type=_csv,
        default=None,
        help="time the data-parallel harness step on these device counts instead "
        "(e.g. 1,2,4,8; CPU host devices)",
    )
    b.add_argument(
        "--processes",
        type=_csv,
        default=None,
        help="with --devices: also spread the largest count over these process counts (e.g. 1,2)",
    )
    b.add_argument("--json", type=Path, metavar="PATH", help="write one row per measurement")
    b.add_argument("--plot", type=Path, metavar="PATH", help="write a PNG of the ratios")
    return parser


def _model_of(argv: Sequence[str]) -> str:
    """The `--model` value of a compare command line, before the full parse."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model", default=DEFAULT_MODEL)
    known, _ = pre.parse_known_args(list(argv))
    return str(known.model)


def _parse(argv: Sequence[str]) -> tuple[argparse.Namespace, ModelSpec | None]:
    argv = list(argv)
    spec = None
    takes_model = argv[:1] == ["compare"] or (
        argv[:1] == ["checkpoint"] and argv[1:2] != ["continue"] and len(argv) > 1
    )
    if takes_model:
        try:
            spec = load_spec(_model_of(argv[1:]))
        except (ValueError, TypeError) as e:
            raise UsageError(str(e)) from None
    parser = build_parser(spec)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        where = f" of model {spec.name}" if spec is not None else ""
        known = "" if spec is None else _model_flags(spec)
        raise UsageError(f"unrecognized arguments{where}: {' '.join(unknown)}{known}")
    return args, spec


def _model_flags(spec: ModelSpec) -> str:
    flags = [o.flag for o in spec.options] + [f"--{m}" for m in spec.modes]
    return f" (its own options: {', '.join(flags) if flags else 'none'})"


def _check_output(*paths: Path | None) -> None:
    for path in paths:
        if path is not None and not path.parent.is_dir():
            raise UsageError(f"cannot write {path}: no such directory {path.parent}")


def _options(args: argparse.Namespace, spec: ModelSpec) -> CompareOptions:
    data = None
    if args.data is not None:
        try:
            data = np.load(args.data, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise UsageError(f"--data {args.data}: cannot read a .npy array: {e}") from None
    _check_output(args.json, args.plot)
    if args.impls is not None and not is_registered(args.model):
        raise UsageError("--impls picks a built-in model's implementations; use --impl here")
    values = {o.key: getattr(args, f"model_{o.key}") for o in spec.options}
    return CompareOptions(
        model=spec if not is_registered(args.model) else args.model,
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
        values=values,
        reference=args.reference,
        tolerance=args.tolerance,
        devices=args.devices,
        parallel=args.parallel,
    )


def compare_command(args: argparse.Namespace, spec: ModelSpec, console: Console) -> int:
    if args.devices < 1:
        raise UsageError(f"--devices: expected at least 1, got {args.devices}")
    if args.processes > 1 or args.devices_per_process is not None:
        if args.process_id is None:  # the launcher: start the processes, report what they did
            from ._launch import launch

            try:
                return launch(args, console)
            except ValueError as e:
                raise UsageError(str(e)) from None
        from ._launch import join_processes

        join_processes(args)  # a launched process: form the global mesh first
    elif args.devices > 1:
        code = ensure_devices(args.devices, args.argv)
        if code is not None:  # ran in a child process that could see the devices
            return code
    options = _options(args, spec)
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
    print_report(result, console)
    if args.json is not None:
        for path in write_json(result, args.json):
            console.print(f"wrote {escape(str(path))}")
    if args.plot is not None:
        plot(result, args.plot)
        console.print(f"wrote {escape(str(args.plot))}")
        for analysis in result.analyses:
            if analysis.plot is not None:
                path = args.plot.with_name(f"{args.plot.stem}.{analysis.key}{args.plot.suffix}")
                analysis.plot(path)
                console.print(f"wrote {escape(str(path))}")
    return EXIT_AGREE if result.agree else EXIT_DIVERGE


def diff_command(args: argparse.Namespace, console: Console) -> int:
    from rich.table import Table

    from .core import describe_divergence

    try:
        a, b = load_run(args.a), load_run(args.b)
        tolerance = parse_tolerance(args.tolerance or "bitwise")
    except ValueError as e:
        raise UsageError(str(e)) from None
    differences = config_differences(a, b)
    if differences and not args.ignore_config:
        raise UsageError(
            f"{args.a} and {args.b} are runs of different models or configs: "
            f"{'; '.join(differences)} (--ignore-config compares them anyway)"
        )
    for line in differences:
        console.print(f"[yellow]config differs[/] {escape(line)}")
    pairs, unpaired = diff_runs(a, b, tolerance)
    if not pairs:
        raise UsageError(f"{args.a} and {args.b} have no trajectories in common to compare")
    t = Table(title=f"{args.a} against {args.b}", title_justify="left")
    for column in ("trajectory", "max |diff|", "max ULP", "bitwise", "first divergence", "verdict"):
        t.add_column(column)
    for p in pairs:
        t.add_row(
            escape(p.a if p.a == p.b else f"{p.a} against {p.b}"),
            f"{p.max_abs:.3g}",
            str(p.max_ulp),
            "yes" if p.bitwise else "no",
            "-" if p.first_divergence is None else str(p.first_divergence),
            "[green]agrees[/]" if p.agree else "[bold red]DIVERGES[/]",
        )
    console.print(t)
    for p in pairs:
        if p.first_divergence is not None:
            detail = describe_divergence(
                a.trajectories[p.a], b.trajectories[p.b], p.first_divergence
            )
            ours, theirs = f"{p.a} ({a.path.name})", f"{p.b} ({b.path.name})"
            console.print(
                f"[bold red]{escape(ours)}[/] diverges from {escape(theirs)} first at "
                f"{escape(detail)}"
            )
    for line in unpaired:
        console.print(f"[dim]only in {escape(line)}[/]")
    counts = summary_counts(pairs)
    agree = counts["diverge"] == 0
    verdict = "[green]the runs agree[/]" if agree else "[bold red]the runs differ[/]"
    console.print(
        f"{verdict}: {counts['agree']} trajectories agree, {counts['diverge']} diverge "
        f"(tolerance {tolerance.describe()})"
    )
    return EXIT_AGREE if agree else EXIT_DIVERGE


def bench_command(args: argparse.Namespace, console: Console) -> int:
    import time

    import jax

    from .bench import BenchOptions, run_bench
    from .bench import plot as bench_plot
    from .bench import print_report as bench_report
    from .bench import write_json as bench_json

    _check_output(args.json, args.plot)
    if args.devices is not None:
        if args.depth is not None:
            raise UsageError("bench: --depth and --devices are separate runs; give one of them")
        return _device_bench(args, console)
    depths = None
    if args.depth is not None:
        try:
            depths = tuple(int(d) for d in args.depth)
        except ValueError:
            raise UsageError(
                f"bench --depth: expected comma-separated integers, got {','.join(args.depth)}"
            ) from None
        if min(depths) < 1 or len(set(depths)) < 2:
            raise UsageError(
                f"bench --depth: expected two or more distinct depths >= 1, got {args.depth}"
            )
    start = time.perf_counter()
    try:
        options = BenchOptions(
            models=args.models, impls=args.impls, quick=args.quick, depths=depths
        )
        with console.status("benchmarking") as status:
            rows = run_bench(options, progress=lambda text: status.update(text))
    except ValueError as e:
        raise UsageError(str(e)) from None
    seconds = time.perf_counter() - start
    device = (
        f"{jax.devices()[0].device_kind} ({jax.default_backend()}, {len(jax.devices())} device(s))"
    )
    console.print(f"device: {device}; versions: {versions()}")
    targets = bench_report(rows, console, quick=args.quick)
    console.print(f"measured in {seconds:.0f} s")
    if args.json is not None:
        command = " ".join(
            ["state-rosetta bench"]
            + (["--quick"] if args.quick else [])
            + ([f"--depth {','.join(args.depth)}"] if args.depth else [])
            + ([f"--models {','.join(args.models)}"] if args.models else [])
            + ([f"--impls {','.join(args.impls)}"] if args.impls else [])
        )
        bench_json(
            rows,
            versions(),
            device,
            args.json,
            quick=args.quick,
            seconds=seconds,
            command=command,
        )
        console.print(f"wrote {args.json}")
    if args.plot is not None:
        bench_plot(rows, args.plot)
        console.print(f"wrote {args.plot}")
    missed = [t for t in targets if t.judged and not t.ok]
    if args.check and missed:
        for t in missed:
            console.print(f"bench --check: target missed: {t.text}")
        return EXIT_DIVERGE
    return EXIT_AGREE


def _device_bench(args: argparse.Namespace, console: Console) -> int:
    import json as json_module
    from dataclasses import asdict

    from rich.table import Table

    from .bench._devices import run_device_bench

    try:
        devices = [int(n) for n in args.devices]
        processes = [int(p) for p in (args.processes or ["1"])]
    except ValueError:
        raise UsageError("--devices, --processes: expected comma-separated integers") from None
    if min(devices) < 1 or min(processes) < 1:
        raise UsageError("--devices, --processes: expected counts >= 1")
    with console.status("benchmarking devices"):
        rows = run_device_bench(devices, processes, quick=args.quick)
    table = Table(title="data-parallel harness step, median per step (CPU host devices)")
    for column in (
        "model",
        "shape",
        "mode",
        "devices",
        "processes",
        "median us",
        "p10-p90 us",
        "x 1 device",
    ):
        table.add_column(
            column, justify="left" if column in ("model", "shape", "mode") else "right"
        )
    for r in rows:
        table.add_row(
            r.model,
            r.shape,
            r.mode,
            str(r.devices),
            str(r.processes),
            f"{r.median_us:.0f}",
            f"{r.p10_us:.0f}-{r.p90_us:.0f}",
            f"{r.ratio_to_one_device:.2f}",
        )
    console.print(f"versions: {versions()}")
    console.print(table)
    if args.json is not None:
        data = {
            "versions": versions(),
            "device": "cpu (forced host devices, 2 cores)",
            "rows": [asdict(r) for r in rows],
        }
        write_atomic(args.json, json_module.dumps(data, indent=1).encode())
        console.print(f"wrote {args.json}")
    return EXIT_AGREE


def main(argv: Sequence[str] | None = None) -> int:
    console = Console()
    if not console.is_terminal:  # a log or a pipe: wide enough that the table never wraps
        console = Console(width=140)
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args, spec = _parse(argv)
        args.argv = argv
        if args.command == "compare":
            assert spec is not None
            return compare_command(args, spec, console)
        if args.command == "diff":
            return diff_command(args, console)
        if args.command == "docs":
            from .docs._generate import run

            return run(args, console)
        if args.command == "bench":
            return bench_command(args, console)
        if args.command == "checkpoint":
            from .checkpoint import CheckpointError
            from .checkpoint._cli import run as checkpoint_run

            try:
                return checkpoint_run(args, console)
            except (CheckpointError, ValueError, TypeError) as e:
                raise UsageError(str(e).splitlines()[0]) from None
        raise UsageError(f"unknown command {args.command!r}")
    except UsageError as e:
        print(f"state-rosetta: error: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
