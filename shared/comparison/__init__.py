"""`state-rosetta compare` and `state-rosetta port`: their parsers and run functions, and
the port's built-in losses (`PORT_LOSSES`, by `--loss` name).

(Not `shared.compare`: that name is the core's `compare` function, re-exported by `shared`,
which a subpackage of the same name would replace on import.)
"""

from ._cli import add_parser, run
from ._port_cli import LOSSES as PORT_LOSSES

__all__ = ["PORT_LOSSES", "add_parser", "run"]
