"""Loading the user's own objects from `MODULE:ATTR` or `path/to/file.py:ATTR`."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from ._plugin import PluginError, contained


def load_object(spec: str, *, option: str = "--impl") -> Any:
    """Load `ATTR` from `"MODULE:ATTR"` or `"path/to/file.py:ATTR"`.

    The current directory goes on the import path (as for `python -m`), and so does the
    file's own folder for `FILE.py:ATTR` (as for `python FILE.py`), so that a module beside
    it can be imported. Anything raised while importing (`sys.exit()` too) is a bad argument:
    `ValueError`, naming the option, the module and the error.

    **Arguments:**

    - `spec`: what the user wrote.
    - `option`: the command-line option it came from, for the message.
    """
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{option}: expected MODULE:ATTR or FILE.py:ATTR, got {spec!r}")
    try:
        with contained(f"{option} {spec}: importing {module_name!r}"):
            if module_name.endswith(".py"):
                path = Path(module_name)
                _put_on_path(path.resolve().parent, Path.cwd())
                module = _import_file(path)
            else:
                _put_on_path(Path.cwd())
                module = importlib.import_module(module_name)
    except Exception as e:  # a plug-in that fails to import is a bad argument, whatever it raised
        cause = e.__cause__ if isinstance(e, PluginError) and e.__cause__ is not None else e
        first = next(iter(str(cause).splitlines()), "")
        raise ValueError(
            f"{option} {spec}: cannot import {module_name!r}: {type(cause).__name__}: {first}"
        ) from e
    try:
        with contained(f"{option} {spec}: reading {attr!r}"):
            return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"{option} {spec}: module {module_name!r} has no {attr!r}") from None
    except PluginError as e:
        raise ValueError(str(e)) from e


def _put_on_path(*folders: Path) -> None:
    # Kept there afterwards, as `python -m` keeps the current directory: a plug-in may import
    # its neighbours lazily, inside a function, long after it was loaded.
    for folder in reversed(folders):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


def _import_file(path: Path) -> ModuleType:
    """Import a file as Python would from its folder (`import STEM`), when that name is free.

    Then a sibling file's `from STEM import X` gets the same module, not a second copy. A
    stem that is no identifier, or that names another module already, gets a private name.
    """
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    resolved = path.resolve()
    stem = path.stem
    existing = sys.modules.get(stem)
    if existing is not None and _file_of(existing) == resolved:
        return existing
    if stem.isidentifier() and existing is None:
        found = importlib.util.find_spec(stem)  # the file's folder is first on the path
        if found is not None and found.origin and Path(found.origin).resolve() == resolved:
            return importlib.import_module(stem)
    digest = hashlib.sha1(os.fsencode(resolved)).hexdigest()[:10]
    name = f"_state_rosetta_user_{stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _file_of(module: ModuleType) -> Path | None:
    file = getattr(module, "__file__", None)
    return None if file is None else Path(file).resolve()
