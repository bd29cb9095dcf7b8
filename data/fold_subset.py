"""Fold files without the videos that have no landmark file (``python -m data.folds subset``).

    python -m data.folds subset SRC DST --landmarks DIR

A video whose extraction failed (no face found, a damaged file) makes the published folds
unusable as they are: training refuses a listed video without a landmark file. This writes the
same folds without such videos into the new folder DST, with ``subset.json`` recording the
source and every dropped video, so that results on DST say they are not the published protocol.
Nothing else changes: each remaining video keeps its fold and its label.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from data.files import atomic_write_dir, atomic_write_json
from data.folds import Fold, read_fold_files, write_folds
from data.names import landmark_index, match_names

#: Written beside the subset's fold folders: what they were made from and what they leave out.
SUBSET_META = "subset.json"


def subset_folds(src: Path, dst: Path, landmarks: Path) -> dict[str, list[str]]:
    """Write ``src``'s folds without the videos that have no landmark file under ``landmarks``
    into the new folder ``dst``; returns {fold folder name: its test videos dropped}.

    ValueError when ``dst`` exists and is not empty, when no video would be dropped (use ``src``
    as it is), when every one would (the wrong landmark folder) or when a fold would be left
    without a test or training video."""
    folds, labels = read_fold_files(src)
    index = landmark_index(landmarks) if landmarks.is_dir() else {}
    if not index:
        raise FileNotFoundError(f"--landmarks {landmarks}: no landmark files (.npy) there")
    _, missing = match_names(sorted(labels), index)
    if not missing:
        raise ValueError(f"{src}: every listed video has a landmark file in {landmarks}; use it")
    if len(missing) == len(labels):
        raise ValueError(
            f"{src}: none of its {len(labels)} videos has a landmark file in {landmarks}: "
            "give the landmark folder of this dataset"
        )
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise ValueError(f"{dst}: exists and is not an empty folder; choose a new one")
    gone = set(missing)
    kept = [
        Fold(
            f.index,
            f.name,
            tuple(n for n in f.train if n not in gone),
            tuple(n for n in f.test if n not in gone),
        )
        for f in folds
    ]
    if empty := [f.name for f in kept if not f.test or not f.train]:
        raise ValueError(
            f"{src}: without the {len(gone)} video(s) that have no landmark file in {landmarks}, "
            f"fold(s) {', '.join(empty)} would have no test or no training video left; extract "
            "them, or make folds of your own"
        )
    dropped = {f.name: sorted(gone.intersection(f.test)) for f in folds}
    meta = {
        "source": str(src.resolve()),
        "landmarks": str(landmarks.resolve()),
        "dropped": sorted(gone),
        "dropped_from_test_folds": {k: v for k, v in dropped.items() if v},
        "note": "the source folds without videos that have no landmark file: not the source's "
        "protocol; report results on it as such",
    }

    def write(tmp: Path) -> None:
        write_folds(tmp, kept, labels)
        atomic_write_json(tmp / SUBSET_META, meta)

    atomic_write_dir(dst, write)
    return dropped


def run_subset(src: Path, dst: Path, landmarks: Path) -> None:
    """The ``subset`` command: write the subset and say what it left out."""
    dropped = subset_folds(src, dst, landmarks)
    n = sum(len(v) for v in dropped.values())
    per_fold = ", ".join(f"{k}: {len(v)}" for k, v in dropped.items() if v)
    shown = sorted(x for v in dropped.values() for x in v)
    print(
        f"{dst}: the {len(dropped)} folds of {src} without {n} video(s) that have no landmark "
        f"file in {landmarks} (test folds {per_fold}; e.g. {', '.join(shown[:3])}); listed in "
        f"{dst / SUBSET_META}. Vet it: python -m data.folds check "
        f"{shlex.quote(str(dst))} --landmarks {shlex.quote(str(landmarks))}"
    )
