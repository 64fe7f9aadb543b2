"""A checkpoint from someone else is data, never code, and is read only where its digest
vouches for every byte; a checkpoint folder has one writer, and one it cannot write is
refused at once (issue 26)."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from shared.checkpoint import DIGEST, CheckpointStore
from shared.cli import main

PLUGINS = Path(__file__).resolve().parents[1] / "bias_adder" / "plugins"
SAVE = ["--impl", "jax", "--steps", "6", "--until", "2"]
WRITER_STEPS = 400
REFUSED_WITHIN_S = 5
"""An unwritable checkpoint folder is refused within this (orbax used to wait about 300 s)."""
"""Steps of a writer in the lock test, each saved: long enough to be writing when the second
writer starts (about 40 ms a save)."""


def _error(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 2) -> str:
    assert main(argv) == code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.out + captured.err, lines
    return lines[0]


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    directory = tmp_path / "ckpt"
    assert main(["checkpoint", "save", str(directory), *SAVE]) == 0
    return directory


def _rewrite_meta(directory: Path, step: int, edit) -> None:
    """Edit a step's metadata, then recompute its digest, as whoever sends it could."""
    path = directory / str(step) / "meta" / "metadata"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))
    _redigest(directory / str(step))


def _redigest(folder: Path) -> None:
    files = {
        str(p.relative_to(folder)): {
            "bytes": p.stat().st_size,
            "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
        }
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != DIGEST
    }
    digest = json.loads((folder / DIGEST).read_text())
    (folder / DIGEST).write_text(json.dumps({**digest, "files": files}))


PAYLOAD = """
import pathlib
pathlib.Path({marker!r}).write_text("imported")
Evil = SPEC = None
"""


@pytest.mark.parametrize("field", ["implementation", "model"])
@pytest.mark.parametrize("where", ["absolute", "relative"])
def test_continue_never_imports_code_a_checkpoint_names(
    saved, tmp_path, capsys, monkeypatch, field, where
):
    marker = tmp_path / "was-imported"
    payload = saved / "2" / "evil.py"  # inside the step: the recomputed digest lists it
    payload.write_text(PAYLOAD.format(marker=str(marker)))
    name = f"{payload}:Evil" if where == "absolute" else "evil.py:Evil"
    monkeypatch.chdir(saved / "2")  # where a relative path would be found

    def plant(meta):
        meta["case"][field] = name
        meta[field] = name  # the identity the restore checks, too

    _rewrite_meta(saved, 2, plant)
    with CheckpointStore(saved) as store:
        store.verify(2)  # the digest vouches for the planted file and metadata
    line = _error(capsys, ["checkpoint", "continue", str(saved), "--out", str(tmp_path / "o")])
    option = "--impl" if field == "implementation" else "--model"
    assert f"its run names {option} {name!r}, which is not built in" in line
    assert "never imported" in line
    assert not marker.exists()
    assert "evil" not in " ".join(sys.modules)


def test_continue_imports_a_plugin_the_user_names_and_only_that(tmp_path, capsys):
    impl = f"{PLUGINS / 'wrong_momentum.py'}:WrongMomentumFromStep"
    directory = tmp_path / "ckpt"
    argv = ["checkpoint", "save", str(directory), "--impl", impl, "--steps", "6", "--until", "2"]
    assert main(argv) == 0
    out = tmp_path / "o.npz"
    line = _error(capsys, ["checkpoint", "continue", str(directory), "--out", str(out)])
    assert f"pass --impl {impl} yourself" in line and not out.exists()
    assert main(["checkpoint", "continue", str(directory), "--out", str(out), "--impl", impl]) == 0
    assert out.is_file()


def test_a_digest_that_lists_nothing_is_refused(saved, tmp_path, capsys):
    (saved / "2" / DIGEST).write_text(json.dumps({"files": {}}))
    line = _error(capsys, ["checkpoint", "continue", str(saved), "--out", str(tmp_path / "o")])
    assert f"its {DIGEST} lists no files" in line


def test_a_file_beyond_the_digest_is_refused(saved, tmp_path, capsys):
    (saved / "2" / "train" / "extra").write_bytes(b"payload")
    line = _error(capsys, ["checkpoint", "continue", str(saved), "--out", str(tmp_path / "o")])
    assert "file train/extra is not in its" in line


def test_a_data_file_that_is_a_link_out_of_the_folder_is_refused(saved, tmp_path, capsys):
    data = max((saved / "2" / "train").rglob("d/*"), key=lambda p: p.stat().st_size)
    outside = tmp_path / "outside"
    outside.write_bytes(data.read_bytes())  # the same bytes: the digest would still match
    data.unlink()
    data.symlink_to(outside)
    line = _error(capsys, ["checkpoint", "continue", str(saved), "--out", str(tmp_path / "o")])
    assert "is a link" in line


def test_a_step_folder_whose_metadata_names_another_step_is_refused(saved, tmp_path, capsys):
    (saved / "2").rename(saved / "3")
    line = _error(capsys, ["checkpoint", "continue", str(saved), "--out", str(tmp_path / "o")])
    assert "the folder of step 3 holds the metadata of step 2" in line


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["case"].__setitem__("steps", "six"),
        lambda m: m["case"].__setitem__("loop", "warp"),
        lambda m: m.__setitem__("case", [1, 2]),
        lambda m: m["case"].__setitem__("values", None),
    ],
    ids=["steps a string", "an unknown loop", "case a list", "values null"],
)
def test_metadata_of_the_wrong_types_is_refused(saved, tmp_path, capsys, edit):
    _rewrite_meta(saved, 2, edit)
    line = _error(capsys, ["checkpoint", "continue", str(saved), "--out", str(tmp_path / "o")])
    assert "its metadata names no usable run" in line


def _unwritable(tmp_path: Path) -> Path:
    if os.geteuid() == 0:
        return Path("/proc/self/fdinfo")  # a folder that root cannot write into either
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o555)
    return folder


def test_saving_into_a_folder_that_cannot_be_written_is_refused_at_once(tmp_path, capsys):
    """orbax waited about 300 s for a directory-creation signal, then failed with 357
    lines of traceback."""
    folder = _unwritable(tmp_path)
    for target in (folder, folder / "new"):
        start = time.monotonic()
        line = _error(capsys, ["checkpoint", "save", str(target), *SAVE])
        assert time.monotonic() - start < REFUSED_WITHIN_S
        assert "cannot write into it" in line or "cannot write into" in line, line


# --- one writer per folder --------------------------------------------------------------------


def _writer(directory: str, err: str) -> None:
    """One `state-rosetta checkpoint save` run in a process of the fork server."""
    with open(err, "w") as stderr:
        sys.stderr = stderr
        argv = ["--impl", "jax", "--steps", str(WRITER_STEPS), "--every", "1"]
        code = main(["checkpoint", "save", directory, *argv])
        stderr.flush()
    os._exit(code)


def _race(context: multiprocessing.context.BaseContext, directory: Path, trial: int) -> None:
    errs = [directory.parent / f"err-{trial}-{i}" for i in range(2)]
    writers = [
        context.Process(target=_writer, args=(str(directory), str(e)))  # type: ignore[attr-defined]
        for e in errs
    ]
    for w in writers:
        w.start()
    try:
        deadline = time.monotonic() + 120
        while all(w.is_alive() for w in writers) and time.monotonic() < deadline:
            time.sleep(0.01)
        refused = [i for i, w in enumerate(writers) if not w.is_alive()]
        assert len(refused) == 1, "neither writer was refused"
        loser, winner = refused[0], 1 - refused[0]
        writers[loser].join(timeout=10)
        assert writers[loser].exitcode == 2
        line = errs[loser].read_text().strip().splitlines()
        assert len(line) == 1 and "another writer holds it" in line[0], line
        assert f"process {writers[winner].pid}" in line[0]
        assert writers[winner].is_alive()  # still writing: exactly one writer
    finally:
        for w in writers:
            if w.is_alive():
                os.kill(w.pid, signal.SIGKILL)
            w.join(timeout=30)
    with CheckpointStore(directory) as store:  # what the killed writer completed is intact
        for step in store.steps():
            store.verify(step)


@pytest.mark.parametrize("trials", [1, pytest.param(10, marks=pytest.mark.slow)])
def test_two_writers_give_one_writer_and_one_clean_refusal(tmp_path, trials):
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["shared.cli", "shared.checkpoint"])
    for trial in range(trials):
        _race(context, tmp_path / f"ckpt-{trial}", trial)
