"""What every `state-rosetta` subcommand shares: the exit codes, the usage error, the parser
class that turns argparse's complaints into it, the console, checks of common arguments, and
the model's own options."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console

from ._registry import DEFAULT_MODEL
from .core import ModelSpec, check_writable

EXIT_AGREE, EXIT_DIVERGE, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
"""0: all agree (or done); 1: something diverged, a trajectory failed, or docs are stale;
2: bad arguments or data (a bad plug-in too); 3: an internal error (a bug of this tool)."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (SIGINT) or SIGTERM: the shell's 128 + SIGINT."""

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with every control character (an escape sequence's ESC too, but not a newline or
    a tab) shown as `\\xNN`: names from files and plug-ins never reach the terminal raw."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def one_line(text: str) -> str:
    """`text` on one printable line (its lines joined)."""
    return printable(" ".join(line.strip() for line in str(text).splitlines() if line.strip()))


class SafeConsole(Console):
    """A rich console that shows control characters in printed text as `\\xNN` (rich drops
    some, but passes ESC through, so a name could move the cursor or retitle the terminal)."""

    def render_str(self, text: str, **kwargs: Any) -> Any:
        return super().render_str(printable(text), **kwargs)


class UsageError(Exception):
    """Bad arguments or bad data: exit 2 with one line."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one-line `UsageError`s, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        # One line, no usage dump: the contract for exit code 2.
        raise UsageError(message)


def csv(text: str) -> tuple[str, ...]:
    """A comma-separated option's items, stripped, empty ones dropped."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def check_output(*paths: Path | None) -> None:
    """Refuse (`UsageError`) before the run an output path that cannot be written, or that is
    something other than a regular file (see `check_writable`)."""
    for path in paths:
        if path is not None:
            try:
                check_writable(path)
            except ValueError as e:
                raise UsageError(str(e)) from None


def check_count(option: str, value: int | None, *, least: int = 1) -> None:
    """Refuse a count below `least` (`--steps 0`, `--processes 0`)."""
    if value is not None and value < least:
        raise UsageError(f"{option}: expected an integer >= {least}, got {value}")


SEED_LIMIT = 2**63
"""Seeds are 0 .. 2**63 - 1: NumPy's generators take no negative seed, and `jax.random.key`
no seed beyond a signed 64-bit integer."""


def check_seed(seed: int) -> None:
    """Refuse a seed NumPy's and JAX's generators cannot both take."""
    if not 0 <= seed < SEED_LIMIT:
        raise UsageError(f"--seed: expected 0 <= SEED < 2**63, got {seed}")


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


def model_values(args: argparse.Namespace, spec: ModelSpec) -> dict[str, Any]:
    """The model's own options as parsed, by key."""
    return {o.key: getattr(args, f"model_{o.key}") for o in spec.options}


def model_of(argv: Sequence[str]) -> str:
    """The `--model` value of a command line, before the full parse."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model", default=DEFAULT_MODEL)
    known, _ = pre.parse_known_args(list(argv))
    return str(known.model)


def model_flags(spec: ModelSpec) -> str:
    """The model's own flags, for a message about arguments it does not know."""
    flags = [o.flag for o in spec.options] + [f"--{m}" for m in spec.modes]
    return f" (its own options: {', '.join(flags) if flags else 'none'})"
