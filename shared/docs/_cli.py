"""`state-rosetta docs`: its parser and its run function."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from ..core import ModelSpec
from . import _site
from ._generate import DocsError, build_site, check, write


def add_parser(subparsers: Any, spec: ModelSpec | None = None) -> None:
    """Add `docs` to the `state-rosetta` subcommands (`spec` is not used)."""
    d = subparsers.add_parser(
        "docs",
        help="generate the guide's pages from the marked regions of the code and build the site",
        description="Write the guide's pages (docs/guide/), docs/results.md and its plot from "
        "the framework files' marked regions and a real compare run, re-render the recorded "
        "numbers of docs/performance.md, then build the site with MkDocs (Material) into "
        "site/, warnings as errors. With --check, write nothing: exit 1 and name the stale "
        "files when they differ, or the warnings when the site does not build cleanly.",
    )
    d.add_argument("--check", action="store_true", help="compare with the files on disk")
    d.add_argument("--root", type=Path, default=None, help="repository root (default: found)")


def run(args: argparse.Namespace, console: Console) -> int:
    """Run `state-rosetta docs`: 0 written or current, 1 stale or a failed build, 2 on a bad
    marker or root."""
    try:
        if args.check:
            stale = check(args.root)
            for relpath in stale:
                console.print(f"[bold red]stale[/] {relpath}")
            if stale:
                console.print("run `state-rosetta docs` to regenerate")
                return 1
            with tempfile.TemporaryDirectory() as tmp:
                build_site(args.root, Path(tmp) / "site")
            console.print("docs are up to date, and the site builds without warnings")
            return 0
        for relpath in write(args.root):
            console.print(f"wrote {relpath}")
        console.print(f"built {build_site(args.root)}")
        return 0
    except DocsError as e:
        print(f"state-rosetta: error: {e}", file=sys.stderr)
        return 2
    except _site.SiteError as e:
        print(f"state-rosetta: {e}", file=sys.stderr)
        return 1
