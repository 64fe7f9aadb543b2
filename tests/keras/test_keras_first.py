"""A user's file that imports Keras first still gets the JAX backend, from every loader."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

USER_IMPL = """
import keras  # first, as a Keras user writes it: Keras reads its backend at this import


def make(config):
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
"""

PROBE = """
import sys
from shared import load_factory
load_factory(sys.argv[1])
import keras
print(keras.backend.backend())
"""


@pytest.mark.slow  # a fresh process, 4 s: Keras's import; port's own path has its test too
def test_a_user_impl_file_that_imports_keras_first_gets_the_jax_backend(tmp_path):
    # `compare --impl FILE.py:ATTR` and `--model FILE.py:ATTR` load through the registry's
    # loader, as `port` does; a fresh process, since Keras picks its backend once.
    (tmp_path / "keras_impl.py").write_text(USER_IMPL)
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["KERAS_HOME"] = str(tmp_path)  # no keras.json of this machine's user decides it
    done = subprocess.run(
        [sys.executable, "-c", PROBE, f"{tmp_path / 'keras_impl.py'}:make"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["jax"]
