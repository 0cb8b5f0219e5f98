"""npm packages for the tests that run Node: installed once into a cache folder keyed by their list.

Node and npm come from Debian's packages (`.ci/run` installs them); the packages go to
`~/.cache/spendwatch-tests/node-<hash of the list>`, outside the repository, so that a rerun installs
nothing. Without node or npm a test is skipped on a workstation and fails under CI (`CI` set), so CI
cannot pass it by skipping it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest


def missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def node_modules(packages: tuple[str, ...]) -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing("needs node and npm (apt-get install nodejs npm)")
    key = hashlib.sha256("\n".join(packages).encode()).hexdigest()[:16]
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spendwatch-tests" / f"node-{key}"
    done = folder / "installed"
    if not done.exists():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "package.json").write_text('{"name": "spendwatch-node-tests", "private": true}\n')
        result = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--no-save", *packages],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        done.write_text("\n".join(packages) + "\n")
    return folder / "node_modules"
