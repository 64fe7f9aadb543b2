"""`state-rosetta bench`: its parser and its run function (the step bench, the depth bench
and the device bench)."""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console

from .._command import EXIT_AGREE, EXIT_DIVERGE, UsageError, check_output, csv
from .._registry import MODELS, versions
from ..core import ModelSpec, json_bytes, write_atomic
from ._report import Target


def add_parser(sub: Any, spec: ModelSpec | None = None) -> None:
    """Add `bench` to the command line's subparsers (`spec` is not used)."""
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
        type=csv,
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
        type=csv,
        default=None,
        help=f"comma-separated built-in models ({', '.join(MODELS)}; default: all)",
    )
    b.add_argument(
        "--impls",
        type=csv,
        default=None,
        help="comma-separated (default: every implementation of each model; each model's "
        "baseline must be included)",
    )
    b.add_argument(
        "--devices",
        type=csv,
        default=None,
        help="time the data-parallel harness step on these device counts instead "
        "(e.g. 1,2,4,8; CPU host devices)",
    )
    b.add_argument(
        "--processes",
        type=csv,
        default=None,
        help="with --devices: also spread the largest count over these process counts (e.g. 1,2)",
    )
    b.add_argument(
        "--verdict",
        action="store_true",
        help="time and measure the peak memory of whole cross-validations against the plain "
        "training of the same implementations, as the model and the steps grow, and fit "
        "their growth (each case in fresh processes)",
    )
    b.add_argument(
        "--sizes",
        type=csv,
        default=None,
        metavar="D,D,...",
        help="with --verdict: the bias adder's feature counts of the size sweep "
        "(default: 1000,10000,100000,1000000)",
    )
    b.add_argument(
        "--step-counts",
        type=csv,
        default=None,
        metavar="N,N,...",
        help="with --verdict: the step sweep's step counts, at the largest size "
        "(default: 10,100,1000)",
    )
    b.add_argument("--json", type=Path, metavar="PATH", help="write one row per measurement")
    b.add_argument("--plot", type=Path, metavar="PATH", help="write a PNG of the ratios")


def run(args: argparse.Namespace, console: Console) -> int:
    """Run `state-rosetta bench`: 0 measured, 1 a judged target missed (`--check`)."""
    import jax

    from . import BenchOptions, run_bench
    from . import plot as bench_plot
    from . import print_report as bench_report
    from . import write_json as bench_json

    check_output(args.json, args.plot)
    if args.verdict:
        return _verdict_bench(args, console)
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
        if len(set(depths)) < 2 or min(depths) < 1:
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
    return _checked(args, targets, console)


def _checked(args: argparse.Namespace, targets: Sequence[Target], console: Console) -> int:
    """`--check`: exit 1 when a judged target is missed, naming each."""
    missed = [t for t in targets if t.judged and not t.ok]
    if args.check and missed:
        for t in missed:
            console.print(f"bench --check: target missed: {t.text}")
        return EXIT_DIVERGE
    return EXIT_AGREE


def _device_bench(args: argparse.Namespace, console: Console) -> int:
    from ..report import device_bench_table
    from ._devices import run_device_bench

    try:
        devices = [int(n) for n in args.devices]
        processes = [int(p) for p in (["1"] if args.processes is None else args.processes)]
    except ValueError:
        raise UsageError("--devices, --processes: expected comma-separated integers") from None
    if not devices or not processes or min(devices) < 1 or min(processes) < 1:
        raise UsageError("--devices, --processes: expected counts >= 1")
    with console.status("benchmarking devices"):
        rows = [asdict(r) for r in run_device_bench(devices, processes, quick=args.quick)]
    console.print(f"versions: {versions()}")
    console.print(device_bench_table(rows))
    if args.json is not None:
        data = {
            "versions": versions(),
            "device": "cpu (forced host devices, 2 cores)",
            "rows": rows,
        }
        write_atomic(args.json, json_bytes(data))
        console.print(f"wrote {args.json}")
    return EXIT_AGREE


def _ints(option: str, values: list[str] | None) -> list[int] | None:
    if values is None:
        return None
    try:
        out = [int(v) for v in values]
    except ValueError:
        raise UsageError(f"bench {option}: expected comma-separated integers") from None
    if not out or min(out) < 1:
        raise UsageError(f"bench {option}: expected integers >= 1")
    return out


def _verdict_bench(args: argparse.Namespace, console: Console) -> int:
    import jax

    from ..report import growth_table, verdict_table
    from ._verdict import SIZES, STEP_COUNTS, cases, fit, measure
    from ._verdict_targets import verdict_targets

    sizes = _ints("--sizes", args.sizes) or list(SIZES)
    steps = _ints("--step-counts", args.step_counts) or list(STEP_COUNTS)
    if args.quick:
        sizes, steps = sizes[:2], steps[:2]
    chosen = cases(sizes, steps, depths=(1, 4) if args.quick else (1, 4, 16))
    start = time.perf_counter()
    with console.status("benchmarking the verdict") as status:
        measured = [measure(c, progress=lambda text: status.update(text)) for c in chosen]
    rows = [
        {
            **asdict(m.case),
            **{k: getattr(m, k) for k in ("plain_s", "verdict_s", "plain_rss", "verdict_rss")},
        }
        for m in measured
    ]
    growth = [asdict(g) for g in fit(measured)]
    targets = verdict_targets(rows, quick=args.quick)
    device = f"{jax.devices()[0].device_kind} ({jax.default_backend()})"
    console.print(f"device: {device}; versions: {versions()}")
    console.print(verdict_table(rows))
    console.print(growth_table(growth))
    for t in targets:
        verdict = ("met" if t.ok else "MISSED") if t.judged else "not judged"
        console.print(f"target: {t.text} ({verdict})")
    seconds = time.perf_counter() - start
    console.print(f"measured in {seconds:.0f} s")
    if args.json is not None:
        command = " ".join(
            ["state-rosetta bench --verdict"]
            + (["--quick"] if args.quick else [])
            + ([f"--sizes {','.join(args.sizes)}"] if args.sizes else [])
            + ([f"--step-counts {','.join(args.step_counts)}"] if args.step_counts else [])
        )
        data = {
            "python": ".".join(platform.python_version_tuple()[:2]),
            "command": command,
            "versions": versions(),
            "device": device,
            "cpus": os.cpu_count(),
            "seconds": seconds,
            "rows": rows,
            "growth": growth,
            "targets": [t._asdict() for t in targets],
        }
        write_atomic(args.json, json_bytes(data))
        console.print(f"wrote {args.json}")
    return _checked(args, targets, console)
