"""Helpers for the extraction CLI tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from data.io import META_KEYS, load_landmarks
from data.video import open_source
from extract_landmarks import main


def run_cli(*args, workers=1) -> int:
    return main([str(a) for a in args] + ["--quiet", "--workers", str(workers)])


def touch(path: Path) -> None:
    """An empty file (parents made): enough for listing jobs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def write_avi(pyfeat_data: Path, path: Path, n_frames: int, fps: float = 30) -> Path:
    """The first frames of single_face.mp4 as an MJPG .avi."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 360))
    for _, rgb in open_source(pyfeat_data / "single_face.mp4").frames(max_frames=n_frames):
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def summary_rows(text: str) -> dict[str, str]:
    """video name -> its summary line."""
    return {line.split()[0]: line for line in text.splitlines() if line.startswith("  ")}


def assert_valid(npy: Path) -> None:
    arr, meta = load_landmarks(npy)
    assert meta is not None and set(meta) == set(META_KEYS)
    assert arr.shape == (meta["n_frames"], meta["n_landmarks"], 3) and np.isfinite(arr).all()
