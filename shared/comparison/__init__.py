"""`state-rosetta compare`: its parser and its run function.

(Not `shared.compare`: that name is the core's `compare` function, re-exported by `shared`,
which a subpackage of the same name would replace on import.)
"""

from ._cli import add_parser, run

__all__ = ["add_parser", "run"]
