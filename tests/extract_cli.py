"""Helpers for the extraction CLI tests."""

from __future__ import annotations

from pathlib import Path

from extract_landmarks import main


def run_cli(*args, workers=1) -> int:
    return main([str(a) for a in args] + ["--quiet", "--workers", str(workers)])


def touch(path: Path) -> None:
    """An empty file (parents made): enough for listing jobs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
