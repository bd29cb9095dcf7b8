"""Extraction jobs: what an input (video file, folder of videos, frame folder, dataset root)
becomes, and where each output goes.

Output names follow the published landmark files: ``<video file name>.npy`` (UvA-NEMO, BBC, any
video), ``<session id>.npy`` (MMI), ``<clip folder>.npy`` (SPOS and other frame folders). Two
sources that would write one output file (compared as file systems that ignore case do) are both
jobs marked failed; a source found twice under one name is one job. Outputs and contact sheets must
not land where a later run would take them for input.
"""

from __future__ import annotations

import os
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from data.files import check_folder
from data.io import landmark_path
from data.video import VIDEO_EXTS, is_video
from data.video_sources import OUTPUT_DIRNAME, dataset_sources, is_clip_input, walked


@dataclass(frozen=True)
class Job:
    """One source (video file or frame folder) -> ``output`` (``<dir>/<name>.npy``).

    ``error`` marks a source found unusable while listing (reported as failed)."""

    source: Path
    name: str
    output: Path
    error: str = ""


def make_jobs(
    inputs: str | os.PathLike, dataset: str | None = None, output: str | os.PathLike | None = None
) -> tuple[list[Job], Path]:
    """Jobs for an input (video file, folder of videos, frame folder) or a dataset root.

    Default output folder: ``<dataset root or input folder>/npy`` (``<parent>/npy`` for a single
    video or frame folder). Sources that would write one output file (names compared as where
    case is ignored) are jobs marked failed; a source found twice under one name counts once.
    """
    path = Path(inputs)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if not (path.is_file() or path.is_dir()):  # a pipe, socket or device: nothing to seek in
        raise ValueError(f"{path}: not a regular file or folder; give a video file or a folder")
    single = dataset is None and (path.is_file() or is_clip_input(path))
    if single and path.is_dir():
        path = Path(os.path.abspath(path))  # "." or "..": its folder's name (links kept)
    out = Path(output) if output else (path.parent if single else path) / OUTPUT_DIRNAME
    check_folder(out, "--output" if output else "output folder")
    if dataset is not None:
        found = dataset_sources(dataset, path, out)
    elif single:
        if path.is_file() and not is_video(path):
            raise ValueError(f"{path}: not a video file ({', '.join(sorted(VIDEO_EXTS))})")
        found = [(path, path.name)]
    else:
        found = dataset_sources("folder", path, out)
    return _jobs(_once(found), out), out


def _once(found: list[tuple]) -> list[tuple]:
    """``found`` without repeats of a (real source, name) pair: a linked file beside its target
    is one source, as a linked folder is walked once; the first path found is kept."""
    seen, kept = set(), []
    for src, name, *err in found:
        try:
            key = (src.resolve(), name)
        except (OSError, RuntimeError):  # a link loop: its job reports it
            key = (src, name)
        if key not in seen:
            seen.add(key)
            kept.append((src, name, *err))
    return kept


def _output_key(name: str) -> str:
    """An output name as file systems that ignore case (macOS, Windows, exFAT, SMB) compare it:
    ``Smile.mp4`` and ``smile.mp4`` are one file there."""
    return unicodedata.normalize("NFC", name).casefold()


def _jobs(found: list[tuple], out: Path) -> list[Job]:
    """A job per (source, name[, error]); sources whose output names are one file where case is
    ignored are all jobs marked failed."""
    by_key = defaultdict(list)
    for i, (src, name, *_) in enumerate(found):
        by_key[_output_key(name)].append((i, src, name))
    jobs = []
    for i, (src, name, *err) in enumerate(found):
        others = [(o, n) for k, o, n in by_key[_output_key(name)] if k != i]
        if others:
            err = [_clash_error(name, others)]
        jobs.append(Job(src, name, landmark_path(out, name), err[0] if err else ""))
    return jobs


def _clash_error(name: str, others: list[tuple[Path, str]]) -> str:
    """The reason for a job whose output ``name`` the ``others`` (source, name) also write."""
    listed = ", ".join(str(o) if n == name else f"{o} (as {n}.npy)" for o, n in others)
    same = all(n == name for _, n in others)
    where = "" if same else " where file names ignore case (macOS, Windows)"
    return f"{listed} would also write {name}.npy{where}; rename one of them"


def check_targets(jobs: list[Job], *targets: Path | None) -> None:
    """Raise ValueError when an output or ``--plot`` target lies inside a frame-folder source:
    the files written there would be read as frames of that clip on the next run."""
    for job in jobs:
        if not job.source.is_dir():
            continue
        src = job.source.resolve()
        for target in filter(None, targets):
            real = target.resolve()
            if real == src or src in real.parents:
                raise ValueError(
                    f"{target} is inside the frame folder {job.source}; write outputs and "
                    "contact sheets elsewhere (--output / --plot)"
                )


def check_plot(inputs: str | os.PathLike, output: Path, plot: Path | None) -> None:
    """Raise ValueError when ``--plot`` writes into a folder input where a later run's walk
    finds the sheets (anywhere but the output folder): it would take them for a clip's frames."""
    folder = plot.parent if plot is not None and plot.suffix.lower() == ".png" else plot
    if folder is None or not Path(inputs).is_dir() or folder.resolve() == output.resolve():
        return
    if walked(Path(inputs), folder):
        raise ValueError(
            f"--plot {plot} is inside the input folder {inputs}: a later run would read the "
            "contact sheets as a clip's frames; give a folder outside it, or --plot alone "
            "(next to the outputs)"
        )
