"""The folders the tool keeps in the shared temporary directory (the XLA compilation cache of
the resume proof, the Keras home) are used only while they are this user's alone: one made
beforehand by someone else, or writable by others, is not used (issue 26)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OTHER_UID = 65534  # nobody
RESUME = (
    "from shared.checkpoint import Case, resume; "
    "print(resume([Case('bias-adder', 'jax', 'harness', 4)], 2)[0].ok)"
)
KERAS = "import os, impl_keras; print(os.environ['KERAS_HOME'])"


def _run(code: str, scratch: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_HOME",)}
    home = scratch / "home"
    home.mkdir(exist_ok=True)
    env.update(PYTHONPATH=str(ROOT), TMPDIR=str(scratch), HOME=str(home))
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )


def _premade(folder: Path, how: str) -> None:
    """A folder made before the run, as another user could: mode 0777, or someone else's."""
    folder.mkdir()
    if how == "mode 0777":
        folder.chmod(0o777)
    else:
        if os.geteuid() != 0:
            pytest.skip("giving a folder to another user takes root")
        folder.chmod(0o700)
        os.chown(folder, OTHER_UID, -1)


WHY = {"mode 0777": "others may write in it (mode 0777)", "another owner": f"uid {OTHER_UID}"}
HOW = ["mode 0777", pytest.param("another owner", marks=pytest.mark.slow)]


def _cache(scratch: Path) -> Path:
    return scratch / f"state-rosetta-xla-cache-{os.getuid()}"


@pytest.mark.slow
def test_the_compilation_cache_is_made_private_and_used(tmp_path):
    """The control: without a planted folder, the run makes it (0700) and fills it."""
    done = _run(RESUME, tmp_path)
    assert done.returncode == 0 and done.stdout.split() == ["True"], done.stderr[-2000:]
    cache = _cache(tmp_path)
    assert cache.stat().st_mode & 0o777 == 0o700
    assert any(cache.iterdir())


@pytest.mark.parametrize("how", HOW)
def test_a_planted_compilation_cache_is_not_used(tmp_path, how):
    cache = _cache(tmp_path)
    _premade(cache, how)
    (cache / "planted").write_text("a program of theirs")
    done = _run(RESUME, tmp_path)
    assert done.returncode == 0 and done.stdout.split() == ["True"], done.stderr[-2000:]
    assert f"state-rosetta: warning: not using {cache}: " in done.stderr
    assert WHY[how] in done.stderr
    assert sorted(p.name for p in cache.iterdir()) == ["planted"]  # nothing read or written


@pytest.mark.parametrize("how", HOW)
def test_a_planted_keras_home_is_not_used(tmp_path, how):
    home = tmp_path / f"state-rosetta-keras-{os.getuid()}"
    _premade(home, how)
    # A keras.json of theirs that would stop every Keras implementation (floatx float16).
    (home / "keras.json").write_text(json.dumps({"backend": "jax", "floatx": "float16"}))
    done = _run(KERAS, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    used = Path(done.stdout.strip())
    assert used != home and used.name.startswith("state-rosetta-keras-")
    assert f"not using {home}: " in done.stderr and WHY[how] in done.stderr
    assert not used.exists()  # the private one of that process is removed at its exit
