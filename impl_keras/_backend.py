"""Keras on the JAX backend: chosen before Keras is first imported, and checked after.

Keras reads `KERAS_BACKEND` once, when it is first imported; without it, Keras 3 asks for
TensorFlow (and, wherever `KERAS_HOME` is unset, writes `~/.keras/keras.json`). This module
is imported first by `impl_keras`, so that `import impl_keras` works whatever the
environment says, or fails with a message that says what to change.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

from shared.core import private_folder

BACKEND = "jax"
FLOATX = "float32"


def _keras_home() -> None:
    """Keep Keras from writing `~/.keras/keras.json` when the user has none.

    Keras reads its settings from `KERAS_HOME` (default `~/.keras`) and, when the file is
    missing, writes one there on import. A user who has a `keras.json` keeps it: it is read
    (and checked below). Otherwise Keras gets a folder of its own under the system's
    temporary directory (made with mode 0700, and used only while it is this user's alone),
    and nothing is written under `$HOME`.
    """
    if "KERAS_HOME" in os.environ:
        return
    if os.path.exists(os.path.join(os.path.expanduser("~"), ".keras", "keras.json")):
        return
    shared_home = os.path.join(tempfile.gettempdir(), f"state-rosetta-keras-{os.getuid()}")
    # Only a folder this user alone owns: one someone else made there first could hold a
    # keras.json of theirs. Otherwise a fresh private one for this process, removed at exit.
    home = private_folder(shared_home)
    if home is None:
        fresh = tempfile.mkdtemp(prefix="state-rosetta-keras-")
        atexit.register(shutil.rmtree, fresh, ignore_errors=True)
        home = Path(fresh)
    os.environ["KERAS_HOME"] = str(home)


def _select_backend() -> None:
    """Select the JAX backend if Keras is not imported yet; then check what Keras uses."""
    if "keras" not in sys.modules:
        # Only this process's later `import keras` reads them; one process has one backend,
        # and every model in this package is written for JAX.
        os.environ["KERAS_BACKEND"] = BACKEND
        _keras_home()
    import keras

    backend = keras.backend.backend()
    if backend != BACKEND:
        raise ImportError(
            f"keras: Keras was imported with backend {backend!r} before impl_keras; expected "
            f"{BACKEND!r}. Set KERAS_BACKEND=jax before the first `import keras` (or import "
            "impl_keras first)"
        )
    floatx = keras.config.floatx()
    if floatx != FLOATX:
        raise ImportError(
            f"keras: keras.config.floatx() is {floatx!r} (from keras.json in "
            f"{os.environ.get('KERAS_HOME', '~/.keras')} or keras.config.set_floatx); expected "
            f"{FLOATX!r}: every framework here trains in float32"
        )


_select_backend()
