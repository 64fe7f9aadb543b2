"""`state-rosetta diff A.json B.json`: two saved runs, trajectory by trajectory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from .._command import EXIT_AGREE, EXIT_DIVERGE, UsageError
from ..core import ModelSpec, config_differences, diff_runs, load_run, parse_tolerance
from ..report import print_diff


def add_parser(sub: Any, spec: ModelSpec | None = None) -> None:
    """Add `diff` to the command line's subparsers (`spec` is not used: no model options)."""
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


def run(args: argparse.Namespace, console: Console) -> int:
    """Run `state-rosetta diff`: 0 the runs agree, 1 they differ, 2 bad files or configs."""
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
    pairs, unpaired = diff_runs(a, b, tolerance)
    if not pairs:
        raise UsageError(f"{args.a} and {args.b} have no trajectories in common to compare")
    agree = print_diff(console, a, b, pairs, unpaired, tolerance, differences)
    return EXIT_AGREE if agree else EXIT_DIVERGE
