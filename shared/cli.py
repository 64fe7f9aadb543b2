"""The `state-rosetta` command line (also `python -m shared`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from . import _docs
from ._harness import LOOPS
from ._optim import OPTIMIZERS
from ._registry import IMPLEMENTATIONS, MLP_BN_IMPLEMENTATIONS, MODELS
from ._report import plot, print_report, write_json
from ._run import CompareOptions, run_compare

EXIT_AGREE, EXIT_DIVERGE, EXIT_USAGE = 0, 1, 2
LONG_RUN_STEPS = 2_000  # total steps over all trajectories above which a progress bar shows


class UsageError(Exception):
    """Bad arguments or bad data: exit 2 with one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, no usage dump: the contract for exit code 2.
        raise UsageError(message)


def _csv(choices: Sequence[str], what: str):  # type: ignore[no-untyped-def]
    def parse(text: str) -> tuple[str, ...]:
        items = tuple(item.strip() for item in text.split(",") if item.strip())
        for item in items:
            if item not in choices:
                raise argparse.ArgumentTypeError(
                    f"unknown {what} {item!r}; expected one of {', '.join(choices)}"
                )
        return items

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="state-rosetta", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    c = sub.add_parser(
        "compare",
        help="train every implementation in every loop and compare the trajectories",
        description="Train a model (the bias adder, or an MLP with BatchNorm on digits) in every "
        "framework and loop; compare step by step. Exit 0 when all agree within the declared "
        "tolerances, 1 when any does not, 2 on bad arguments or data.",
    )
    c.add_argument(
        "--model",
        choices=list(MODELS),
        default="bias-adder",
        help="bias-adder (the seed's model) or mlp-bn (Dense, BatchNorm, relu, Dense on "
        "scikit-learn's digits) (default: bias-adder)",
    )
    mode = c.add_mutually_exclusive_group()
    mode.add_argument(
        "--aligned",
        dest="mode",
        action="store_const",
        const="aligned",
        help="mlp-bn: set every BatchNorm to the same settings; all must agree (the default)",
    )
    mode.add_argument(
        "--defaults",
        dest="mode",
        action="store_const",
        const="defaults",
        help="mlp-bn: each framework's own BatchNorm defaults; report the drift and its cause",
    )
    c.add_argument("--hidden", type=int, default=32, help="mlp-bn: hidden width H (default: 32)")
    c.add_argument(
        "--impls",
        type=_csv(
            list(dict.fromkeys([*IMPLEMENTATIONS, *MLP_BN_IMPLEMENTATIONS])), "implementation"
        ),
        default=None,
        help="comma-separated (default: all of the model's)",
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
        "--loop",
        type=_csv(LOOPS, "loop"),
        default=LOOPS,
        help="comma-separated harness, native, scan (default: all)",
    )
    c.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps (default: 10, or the data file's length; mlp-bn: 200)",
    )
    c.add_argument("--batch", type=int, default=None, help="batch size (default: 8; mlp-bn: 64)")
    c.add_argument(
        "--features", type=int, default=None, help="feature size D (default: 4; mlp-bn: 64)"
    )
    c.add_argument("--momentum", type=float, default=0.9, help="EMA momentum (default: 0.9)")
    c.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="(default: sgd)")
    c.add_argument(
        "--lr", type=float, default=None, help="learning rate (default: 0.02; mlp-bn: 0.1)"
    )
    c.add_argument("--seed", type=int, default=0, help="data and init seed (default: 0)")
    c.add_argument(
        "--seed-faithful",
        action="store_true",
        help="keep the seed's keepdims=True: the state turns into (1, D)",
    )
    c.add_argument(
        "--data",
        type=Path,
        metavar="FILE.npy",
        help="your data: (batch, D), reused every step, or (steps, batch, D)",
    )
    c.add_argument("--json", type=Path, metavar="PATH", help="write the run as JSON")
    c.add_argument("--plot", type=Path, metavar="PATH", help="write a PNG of the trajectories")
    _docs.add_parser(sub)
    b = sub.add_parser(
        "bench",
        help="time each framework's training step: native idiom, harness step, harness scan",
        description="Per-step cost of every implementation on every path, at a tiny and a large "
        "shape, as ratios to a pure-JAX jax.jit step measured in the same run.",
    )
    b.add_argument("--quick", action="store_true", help="a smoke run, under a minute")
    b.add_argument(
        "--models",
        type=_csv(["bias-adder", "mlp-bn"], "model"),
        default=("bias-adder", "mlp-bn"),
        help="comma-separated bias-adder, mlp-bn (default: both)",
    )
    b.add_argument(
        "--impls",
        type=_csv(list(IMPLEMENTATIONS), "implementation"),
        default=None,
        help="comma-separated (default: every implementation of each model; the baseline, "
        "jax for bias-adder and haiku for mlp-bn, must be included)",
    )
    b.add_argument("--json", type=Path, metavar="PATH", help="write one row per measurement")
    b.add_argument("--plot", type=Path, metavar="PATH", help="write a PNG of the ratios")
    return parser


def _options(args: argparse.Namespace) -> CompareOptions:
    data = None
    if args.data is not None:
        if args.batch is not None or args.features is not None:
            raise UsageError("--batch and --features come from --data; do not give both")
        try:
            data = np.load(args.data, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise UsageError(f"--data {args.data}: cannot read a .npy array: {e}") from None
    for path in (args.json, args.plot):
        if path is not None and not path.parent.is_dir():
            raise UsageError(f"cannot write {path}: no such directory {path.parent}")
    if args.model != "mlp-bn" and args.mode == "defaults":
        raise UsageError("--defaults applies to --model mlp-bn")
    return CompareOptions(
        model=args.model,
        mode=args.mode or "aligned",
        hidden=args.hidden,
        impls=args.impls,
        loops=args.loop,
        steps=args.steps,
        batch=args.batch,
        features=args.features,
        momentum=args.momentum,
        optimizer=args.optimizer,
        lr=args.lr,
        seed=args.seed,
        seed_faithful=args.seed_faithful,
        data=data,
        data_source=None if args.data is None else str(args.data),
        user_impls=tuple(args.impl),
    )


def compare_command(args: argparse.Namespace, console: Console) -> int:
    options = _options(args)
    impls = options.impls or tuple(MODELS[options.model])
    default_steps = 200 if options.model == "mlp-bn" else 10
    total = (options.steps or default_steps) * len(impls) * len(options.loops)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=total < LONG_RUN_STEPS,
    ) as bar:
        task = bar.add_task("training", total=len(impls + options.user_impls) * len(options.loops))

        def advance(name: str) -> None:
            bar.update(task, description=f"training {name}", advance=1)

        try:
            result = run_compare(options, progress=advance)
        except (ValueError, TypeError) as e:
            raise UsageError(str(e)) from None
    print_report(result, console)
    if args.json is not None:
        write_json(result, args.json)
        console.print(f"wrote {args.json}")
    if args.plot is not None:
        plot(result, args.plot)
        console.print(f"wrote {args.plot}")
    return EXIT_AGREE if result.agree else EXIT_DIVERGE


def bench_command(args: argparse.Namespace, console: Console) -> int:
    import jax

    from benchmarks import BenchOptions, report, run_bench

    from ._registry import versions

    for path in (args.json, args.plot):
        if path is not None and not path.parent.is_dir():
            raise UsageError(f"cannot write {path}: no such directory {path.parent}")
    try:
        options = BenchOptions(models=args.models, impls=args.impls, quick=args.quick)
        with console.status("benchmarking") as status:
            rows = run_bench(options, progress=lambda text: status.update(text))
    except ValueError as e:
        raise UsageError(str(e)) from None
    device = (
        f"{jax.devices()[0].device_kind} ({jax.default_backend()}, {len(jax.devices())} device(s))"
    )
    console.print(f"device: {device}; versions: {versions()}")
    report.print_report(rows, console)
    if args.json is not None:
        report.write_json(rows, versions(), device, args.json)
        console.print(f"wrote {args.json}")
    if args.plot is not None:
        report.plot(rows, args.plot)
        console.print(f"wrote {args.plot}")
    return EXIT_AGREE


def main(argv: Sequence[str] | None = None) -> int:
    console = Console()
    if not console.is_terminal:  # a log or a pipe: wide enough that the table never wraps
        console = Console(width=140)
    try:
        args = build_parser().parse_args(argv)
        if args.command == "compare":
            return compare_command(args, console)
        if args.command == "docs":
            return _docs.run(args, console)
        if args.command == "bench":
            return bench_command(args, console)
        raise UsageError(f"unknown command {args.command!r}")
    except UsageError as e:
        print(f"state-rosetta: error: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
