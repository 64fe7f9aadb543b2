"""`state-rosetta checkpoint convert`: its parser and run function."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from .._command import EXIT_AGREE, EXIT_DIVERGE
from ..core import json_bytes, write_atomic
from ._convert import check_converted, convert
from ._layouts import LAYOUTS


def add_convert_parser(actions: Any) -> None:
    """Add `convert` to `checkpoint`'s subcommands."""
    v = actions.add_parser(
        "convert",
        help="convert a native checkpoint into another framework's native layout",
        description="Read the latest checkpoint in SRC, written by a framework's native loop "
        "(checkpoint save --loop native), and write it into DST in another framework's "
        "native layout: params and state through canonical names, the optimizer state in "
        "the target's form, the step counter in the target's dtype. DST must not exist; "
        "nothing is left there when the conversion fails. With --check, the target trains "
        "on from DST in a fresh process and is compared with the source framework's own "
        "uninterrupted run (exit 1 when it parts beyond the model's bound).",
    )
    v.add_argument("src", type=Path, metavar="SRC")
    v.add_argument("dst", type=Path, metavar="DST")
    frameworks = ", ".join(LAYOUTS)
    v.add_argument("--to", required=True, metavar="FRAMEWORK", help=f"one of {frameworks}")
    v.add_argument(
        "--from",
        dest="framework",
        default=None,
        metavar="FRAMEWORK",
        help="the framework SRC must be of (default: the one its metadata names)",
    )
    v.add_argument("--check", action="store_true", help="train on in a fresh process and compare")
    v.add_argument("--steps", type=int, default=None, help="--check: train on to this step")
    v.add_argument("--json", type=Path, metavar="PATH", help="write the result as JSON")


def run_convert(args: argparse.Namespace, console: Console) -> int:
    """`checkpoint convert SRC DST --to FRAMEWORK`."""
    done = convert(args.src, args.dst, to=args.to, framework=args.framework)
    source, target = done.source.implementation, done.target.implementation
    console.print(
        f"converted {escape(source)}/native step {done.at} ({escape(done.source.model)}, "
        f"{done.source.optimizer}) into {escape(target)}: {escape(str(done.directory))}"
    )
    steps = {"from": done.step_dtypes[0], "into": done.step_dtypes[1]}
    console.print(
        f"step counter: {steps['from'] or 'none'} -> {steps['into'] or 'none'}; state not "
        f"carried {done.not_carried or 'none'}; {escape(target)}'s own {done.own or 'none'}"
    )
    data: dict[str, Any] = done.to_json()
    code = EXIT_AGREE
    if args.check:
        pair = check_converted(done, args.steps)
        data["check"] = {
            "ok": pair.ok,
            "bitwise": pair.bitwise,
            "max_abs": pair.max_abs,
            "tolerance": pair.tolerance.describe(),
            "reason": pair.tolerance.reason,
            "first_divergence": None
            if pair.first_divergence is None
            else str(pair.first_divergence),
        }
        verdict = (
            "bitwise"
            if pair.bitwise
            else f"within bound (max {pair.max_abs:.1e} abs)"
            if pair.ok
            else f"[bold red]parts at {pair.first_divergence}[/]"
        )
        console.print(
            f"continued in a fresh process against {escape(source)}'s uninterrupted run: "
            f"{verdict}; bound {escape(pair.tolerance.describe())}"
        )
        if pair.tolerance.reason:
            console.print(f"the bound's reason: {escape(pair.tolerance.reason)}")
        code = EXIT_AGREE if pair.ok else EXIT_DIVERGE
    if args.json is not None:
        write_atomic(args.json, json_bytes(data))
        console.print(f"wrote {escape(str(args.json))}")
    return code
