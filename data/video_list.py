"""Which videos a dataset holds, each matched to exactly one landmark file.

Names come from the fold files, else from ``labels.csv``, else from the landmark files
themselves (:func:`source_names`). :func:`match_files` matches them to ``<name>.npy`` files (with
or without the video extension) and refuses what would silently corrupt a run: a listed video
without a file, and two names of one file (a row ``x.mp4`` and a row ``x``: one video scored
twice). Generated folds must still list the videos the dataset lists (:func:`check_generated`),
and landmark files that ``labels.csv`` or the fold files leave out are reported
(:func:`warn_unlisted`).
"""

from __future__ import annotations

import hashlib
import shlex
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

from data.folds import GENERATED_META
from data.io import read_npy
from data.names import match_names, nfc, strip_video_ext
from data.subjects import LabelsTable


def source_names(table: LabelsTable | None, index: dict[str, Path | None]) -> list[str]:
    """The videos a dataset lists without fold files: ``labels.csv``'s rows, else every landmark
    file, named without its video extension unless another file shares that name."""
    if table is not None:
        return sorted(table.labels)
    stems = {nfc(p.name[: -len(".npy")]): p for p in index.values() if p}
    return sorted(
        strip_video_ext(stem) if index.get(strip_video_ext(stem)) == path else stem
        for stem, path in stems.items()
    )


def check_generated(
    folds_dir: Path, fold_names, current: list[str], source: str, index: dict[str, Path | None]
) -> None:
    """Generated folds (``folds_meta.json``) must list the landmark files ``source`` lists now
    (a name may gain or lose its video extension); else ValueError naming what was added and
    removed, and how to generate folds again."""

    def files(names) -> dict:  # landmark file (or the name, without one) -> name
        return {index.get(nfc(n)) or n: n for n in names}

    old, new = files(fold_names), files(current)
    if old.keys() == new.keys():
        return
    added = sorted(new[k] for k in new.keys() - old.keys())
    gone = sorted(old[k] for k in old.keys() - new.keys())
    change = "; ".join(
        f"{len(part)} {what} (e.g. {', '.join(part[:3])})"
        for part, what in ((added, f"added to {source}"), (gone, "no longer listed"))
        if part
    )
    raise ValueError(
        f"{folds_dir}: folds generated for {len(old)} videos, but {source} lists {len(new)} "
        f"now: {change}; delete its fold folders and {GENERATED_META} to generate folds for the "
        "current videos (runs on the old folds stay comparable only with each other)"
    )


def match_files(
    names: list[str],
    index: dict[str, Path | None],
    landmarks_dir: Path,
    where: dict[str, str | Path],
    subset: tuple[Path, Path] | None = None,
) -> dict[str, Path]:
    """The landmark file of each name; ``where``: name -> the file that lists it, for messages;
    ``subset``: (the fold files, one's own or published, that list ``names``, if they do; the
    folder a subset of them without the missing videos would go to).

    FileNotFoundError for names without a file (with a file of another spelling when there is
    one: ``x.mp4`` for ``X.mp4``, ``a/x.mp4`` for ``x.mp4``); ValueError when two names match one
    file.
    """
    files, missing = match_names(names, index)
    if missing:
        shown = [_missing(n, where, index) for n in missing[:10]]
        if subset is None:
            fix = "remove them from labels.csv"
        else:  # published folds are not edited by hand: a subset, which says what it left out
            src, dst = (shlex.quote(str(p)) for p in subset)
            fix = (
                f"write the folds without them: python -m data.folds subset {src} {dst} "
                f"--landmarks {shlex.quote(str(landmarks_dir))}, then train with --folds {dst} "
                "(not the published protocol: say so)"
            )
        raise FileNotFoundError(
            f"{len(missing)} listed video(s) have no landmark file in {landmarks_dir}: "
            f"{', '.join(shown)}{' ...' if len(missing) > 10 else ''}; extract them "
            f"(extract_landmarks.py) or {fix}"
        )
    by_file: dict[Path, list[str]] = {}
    for n, f in files.items():
        by_file.setdefault(f, []).append(n)
    for f, same in by_file.items():
        if len(same) > 1:
            shown = " and ".join(f"{n!r} ({where[n]})" if n in where else repr(n) for n in same)
            raise ValueError(
                f"{shown} name one landmark file, {f}: one video would count twice; keep one"
            )
    return files


def _missing(name: str, where: dict[str, str | Path], index: dict[str, Path | None]) -> str:
    """``name (the file that lists it)``, and a landmark file it may mean."""
    entry = f"{name} ({where[name]})" if name in where else name
    base = nfc(Path(name).name).removesuffix(".npy")  # a path, or the file, given for a name
    folded = {k.casefold(): p for k, p in index.items() if p}
    for key in (base, strip_video_ext(base)):
        found = index.get(key) or folded.get(key.casefold())
        if found:
            return f"{entry} (name it {found.name[: -len('.npy')]!r}?)"
    return entry


def warn_unlisted(
    source: str, files: dict[str, Path], index: dict[str, Path | None], landmarks_dir, fix: str
) -> None:
    """Warn about landmark files that ``source`` (``labels.csv``, the fold files) lists under no
    name: they are left out."""
    left = sorted({p for p in index.values() if p} - set(files.values()))
    if left:
        warnings.warn(
            f"{landmarks_dir}: {len(left)} landmark file(s) not in {source} are left out "
            f"(e.g. {', '.join(p.name for p in left[:3])}); {fix}",
            stacklevel=3,
        )


def check_no_copies(videos: dict, fix: str) -> None:
    """Refuse two videos whose landmark files hold the same array: one video under two names (a
    copied file) lands in training and test, or counts twice. ``videos``: name -> ``Video``.

    Files are grouped by their length and first frame (a few KB read per file); only files
    that share both are read whole."""

    def digest(v, frames: slice) -> tuple:
        part = np.ascontiguousarray(read_npy(v.file, mmap=True, fix=fix)[frames])
        return v.n_frames, part.shape, hashlib.sha256(part.tobytes()).digest()

    by_start = defaultdict(list)
    for v in videos.values():
        by_start[digest(v, slice(0, 1))].append(v)
    for group in (g for g in by_start.values() if len(g) > 1):
        by_whole = defaultdict(list)
        for v in group:
            by_whole[digest(v, slice(None))].append(v)
        copies = next((g for g in by_whole.values() if len(g) > 1), None)
        if copies:
            a, b = copies[:2]
            raise ValueError(
                f"{a.file} and {b.file} hold the same landmarks ({a.name}: subject {a.subject}; "
                f"{b.name}: subject {b.subject}): one video under two names would be scored "
                "twice or cross from training to test; remove the copy from the dataset"
            )
