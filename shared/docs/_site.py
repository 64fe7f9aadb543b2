"""Build the site with MkDocs and Material for MkDocs, warnings as errors.

The configuration is the repository's `mkdocs.yml`. The build runs in a child process from
the repository root (where the snippets' paths start), so that MkDocs's logging and its
plugins' state stay out of the caller's process.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

CONFIG = "mkdocs.yml"
SITE_DIR = "site"  # `state-rosetta docs` builds here; ignored by git


class SiteError(RuntimeError):
    """The engine is missing, or the build failed or warned."""


def build(root: Path, site_dir: Path) -> list[str]:
    """Build the site from `root/mkdocs.yml` into `site_dir`; return the build's log lines.

    Raises `SiteError` naming every warning (the build is `--strict`) or the missing engine.
    """
    for module in ("mkdocs", "material", "pymdownx", "mkdocstrings"):
        if importlib.util.find_spec(module) is None:
            raise SiteError(
                f"docs: the site needs {module!r}, which is not installed; run "
                "pip install -e '.[docs]'"
            )
    # Material 9.8 prints a banner (its end of life, May 2027) that NO_MKDOCS_2_WARNING=1
    # silences; with that variable set, measured here, `--strict` no longer fails on a
    # warning. So it is removed, and the banner is left to print.
    env = {k: v for k, v in os.environ.items() if k != "NO_MKDOCS_2_WARNING"}
    command = [
        sys.executable,
        "-m",
        "mkdocs",
        "build",
        "--strict",  # not with --quiet: it drops the warnings before strict mode counts them
        "--config-file",
        str(root / CONFIG),
        "--site-dir",
        str(site_dir),
    ]
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    if done.returncode != 0:
        named = [line for line in lines if line.startswith(("WARNING", "ERROR"))]
        raise SiteError(
            "docs: mkdocs build --strict failed (warnings are errors):\n"
            + "\n".join(named or lines)
        )
    return lines
