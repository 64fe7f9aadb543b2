"""Calling the user's code (a `--impl` or `--model` plug-in) so that it cannot end the run.

`sys.exit()` in a plug-in raises `SystemExit`, which no `except Exception` catches: without
this, it would end the command with its code (`sys.exit(0)` at import made the tool exit 0,
"all agree", having compared nothing). Where the core calls a plug-in (its import, its
factory, its init, its training), `contained` turns `SystemExit` and any other exception
that is not an `Exception` into a [`PluginError`][], which the caller reports like any other
failure of that plug-in. A `KeyboardInterrupt` is Ctrl-C's as often as the plug-in's, so it
still stops the run, as a [`PluginInterrupt`][] that names where it happened.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class PluginError(RuntimeError):
    """A plug-in raised `SystemExit` or another `BaseException` that is not an `Exception`."""


class PluginInterrupt(KeyboardInterrupt):
    """A `KeyboardInterrupt` (Ctrl-C, or raised by the plug-in) while a plug-in ran."""


@contextmanager
def contained(what: str) -> Iterator[None]:
    """Run the block (a call of the user's code) so that only `Exception`s leave it.

    **Arguments:**

    - `what`: what is being called, for the message (e.g. `"--impl x.py:F: its factory"`).
    """
    try:
        yield
    except Exception:
        raise
    except KeyboardInterrupt as e:
        if isinstance(e, PluginInterrupt):
            raise
        raise PluginInterrupt(f"interrupted in {what}") from e
    except BaseException as e:  # SystemExit, GeneratorExit, a BaseException of its own
        detail = f"({e})" if str(e) else ""
        raise PluginError(f"{what} raised {type(e).__name__}{detail}") from e
