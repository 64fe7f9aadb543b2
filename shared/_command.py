"""What every `state-rosetta` subcommand shares: the exit codes, the usage error, the parser
class that turns argparse's complaints into it, and the model's own options."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NoReturn

from .core import ModelSpec

EXIT_AGREE, EXIT_DIVERGE, EXIT_USAGE = 0, 1, 2
"""0: all agree (or done); 1: something diverged, failed or is stale; 2: bad arguments or
data."""


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
    """Refuse (`UsageError`) an output path whose folder does not exist, before the run."""
    for path in paths:
        if path is not None and not path.parent.is_dir():
            raise UsageError(f"cannot write {path}: no such directory {path.parent}")


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
