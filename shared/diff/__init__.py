"""`state-rosetta diff`: two saved runs compared step by step; its parser and run function."""

from ._cli import add_parser, run

__all__ = ["add_parser", "run"]
