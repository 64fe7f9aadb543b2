"""The `state-rosetta` command line (also `python -m shared`).

`compare` trains a model in every framework and loop and compares; `port` checks a port
against its reference, each its framework's own object; `diff` compares two saved runs;
`docs` generates the idioms guide; `checkpoint` saves, resumes and transplants; `bench` times
the training steps. Exit codes: 0 all agree (or done), 1 something diverged, failed or
is stale, 2 bad arguments or data, 3 an internal error (STATE_ROSETTA_TRACEBACK=1 prints its
traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from rich.console import Console

from ._command import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Parser,
    SafeConsole,
    UsageError,
    model_flags,
    model_of,
    one_line,
)
from ._registry import is_registered, load_spec
from .bench import _cli as bench
from .checkpoint import _cli as checkpoint
from .comparison import _cli as compare
from .comparison import _port_cli as port
from .core import ModelSpec, PluginError
from .diff import _cli as diff
from .docs import _cli as docs

__all__ = ["COMMANDS", "Command", "UsageError", "build_parser", "main"]


class Command(NamedTuple):
    """A subcommand: how it adds its parser, how it runs, and whether it takes a model (its
    own options are added to the parser once the `--model` is known)."""

    add_parser: Callable[[Any, ModelSpec | None], None]
    run: Callable[[argparse.Namespace, Console], int]
    takes_model: Callable[[Sequence[str]], bool] = lambda rest: False


COMMANDS: dict[str, Command] = {
    "compare": Command(compare.add_parser, compare.run, lambda rest: True),
    "port": Command(port.add_parser, port.run),
    "diff": Command(diff.add_parser, diff.run),
    "docs": Command(docs.add_parser, docs.run),
    # Every checkpoint action but `continue` (which takes its case from the checkpoint).
    "checkpoint": Command(
        checkpoint.add_parser, checkpoint.run, lambda rest: rest[:1] not in ([], ["continue"])
    ),
    "bench": Command(bench.add_parser, bench.run),
}
"""The subcommands, by name, in the order `--help` lists them."""


def build_parser(spec: ModelSpec | None = None) -> argparse.ArgumentParser:
    """The parser; the commands that take a model get `spec`'s own options."""
    parser = Parser(prog="state-rosetta", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS.values():
        command.add_parser(sub, spec)
    return parser


def _parse(argv: Sequence[str]) -> tuple[argparse.Namespace, ModelSpec | None]:
    argv = list(argv)
    spec = None
    command = COMMANDS.get(argv[0]) if argv else None
    if command is not None and command.takes_model(argv[1:]):
        try:
            spec = load_spec(model_of(argv[1:]))
        except (ValueError, TypeError) as e:
            raise UsageError(str(e)) from None
    args, unknown = build_parser(spec).parse_known_args(argv)
    if unknown:
        where = f" of model {spec.name}" if spec is not None else ""
        known = "" if spec is None else model_flags(spec)
        raise UsageError(f"unrecognized arguments{where}: {' '.join(unknown)}{known}")
    return args, spec


TRACEBACK_ENV = "STATE_ROSETTA_TRACEBACK"
"""Set (to anything but empty or 0) to print an internal error's traceback too."""


def _fail(code: int, message: str) -> int:
    print(f"state-rosetta: {one_line(message)}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run `state-rosetta ARGV` (default: `sys.argv[1:]`); returns the exit code.

    Whatever happens, the exit code keeps its meaning: 0 agree, 1 diverged or a trajectory
    failed, 2 bad input (arguments, data, plug-ins, checkpoints, a run too large), 3 an
    internal error, 130 interrupted; every error is one line on stderr, no traceback.
    """
    console = SafeConsole()
    if not console.is_terminal:  # a log or a pipe: wide enough that the table never wraps
        console = SafeConsole(width=160)
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args, spec = _parse(argv)  # --help ends here, with SystemExit(0), as argparse does
    except UsageError as e:
        return _fail(EXIT_USAGE, f"error: {e}")
    try:
        args.argv, args.spec = argv, spec
        return COMMANDS[args.command].run(args, console)
    except (UsageError, PluginError) as e:
        return _fail(EXIT_USAGE, f"error: {e}")
    except MemoryError:
        return _fail(EXIT_USAGE, "error: out of memory: the run's sizes do not fit this machine")
    except KeyboardInterrupt as e:
        code = getattr(e, "exit_code", EXIT_INTERRUPTED)  # 143 for the launcher's SIGTERM
        return _fail(code, f"{e}" if str(e) else "interrupted")
    except SystemExit as e:  # a --model's code (an --impl's is contained), or a bug of ours
        own = args.spec is None or is_registered(getattr(args, "model", ""))
        return _fail(
            EXIT_INTERNAL if own else EXIT_USAGE,
            f"{'internal ' if own else ''}error: the run called sys.exit({e.code!r})",
        )
    except Exception as e:
        if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
            traceback.print_exc()
        return _fail(
            EXIT_INTERNAL,
            f"internal error: {type(e).__name__}: {next(iter(str(e).splitlines()), '')} "
            f"(set {TRACEBACK_ENV}=1 for the traceback)",
        )


if __name__ == "__main__":
    sys.exit(main())
