"""Building the per-dataset D-Marker table (:mod:`data.dmarker_table`) from a folder of landmark
files: ``python dmarker.py`` and :func:`build_dmarker_table`.

A rebuild reuses a video's row when its fingerprint (and the fps / frame size it would use) is
unchanged, recomputes changed or new files, and drops rows of files that are gone; files it
cannot measure are recorded with their fingerprints (``DMarkerTable.unmeasurable``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data.dmarker import (
    DEFAULT_EYELID,
    N_DMARKERS,
    DMarkerResult,
    check_options,
    video_descriptors,
)
from data.dmarker_table import (
    CACHE_NAME,
    DMarkerTable,
    fingerprint,
    read_table,
    replaceable,
    video_key,
)
from data.files import WriteError, check_folder, check_writable
from data.io import (
    check_whole_video,
    landmark_files,
    load_landmarks,
    load_meta,
    meta_path,
    to_isotropic,
)
from data.mirror import mirror_landmarks, mirror_permutation
from data.smile_phases import DEFAULT_PHASE_RULE
from data.subjects import LabelsTable


def _known(meta: dict | None, fps, frame_size) -> tuple[float | None, tuple | None]:
    """(fps, (width, height)) as far as known: the sidecar's values, else the arguments."""
    meta = meta or {}
    rate = meta.get("fps") or fps
    size = (meta["width"], meta["height"]) if meta.get("width") and meta.get("height") else None
    size = size or frame_size
    return (float(rate) if rate else None), (tuple(map(float, size)) if size else None)


def _rate_and_size(npy: Path, meta: dict | None, fps, frame_size) -> tuple[float, float, float]:
    """(fps, width, height): the sidecar's values, else the arguments; ValueError if neither."""
    rate, size = _known(meta, fps, frame_size)
    if rate and size:
        return rate, *size
    side = meta_path(npy).name
    missing = " and ".join(
        flag for flag, ok in (("--fps F", rate), ("--frame-size WxH", size)) if not ok
    )
    raise ValueError(
        f"{npy}: no frame rate / frame size (sidecar {side} missing or incomplete); if "
        "extract_landmarks.py made it and was stopped, run it again; for a published file, "
        f"pass {missing} (UvA-NEMO: --fps 50 --frame-size 1920x1080), or --labels with a "
        "labels.csv giving its fps,width,height"
    )


def _compute(
    npy: Path, fps, frame_size, **options
) -> tuple[DMarkerResult, np.ndarray, tuple[float, ...]]:
    """The video's D-Markers, its mirror image's features (225,) and the (fps, w, h) used."""
    arr, meta = load_landmarks(npy)
    check_whole_video(npy, meta)
    rate, width, height = _rate_and_size(npy, meta, fps, frame_size)
    face_found = (meta or {}).get("face_found")
    try:
        iso = to_isotropic(arr, width, height)
        res = video_descriptors(iso, rate, face_found=face_found, **options)
    except ValueError as e:
        raise ValueError(f"{npy}: {e}") from e
    try:
        mirror = mirror_landmarks(iso, mirror_permutation(iso.shape[1]))
        mirrored = video_descriptors(mirror, rate, face_found=face_found, **options).features
    except ValueError as e:
        raise ValueError(f"{npy}: in its mirror image (left and right swapped): {e}") from e
    return res, mirrored, (rate, width, height)


def _fallback(labels: LabelsTable | None, name: str, fps, frame_size) -> tuple:
    """(fps, (width, height)) for file ``name`` without a sidecar: per value its ``labels``
    row's column, else the argument (as training takes them)."""
    row = labels.row(name) if labels is not None else None
    meta = labels.meta.get(row, {}) if row is not None else {}
    width, height = frame_size or (None, None)
    width, height = meta.get("width") or width, meta.get("height") or height
    return meta.get("fps") or fps, ((width, height) if width and height else None)


def _reusable(old: DMarkerTable | None, name: str, npy: Path, fp, fps, frame_size) -> int | None:
    """Row of ``old`` that still holds this file's D-Markers, else None."""
    i = None if old is None else old.file_row(name)
    if i is None:
        return None
    if tuple(int(x) for x in old.fingerprints[i]) != tuple(fp):
        return None
    try:
        meta = load_meta(npy)
    except ValueError:  # unreadable sidecar: recompute, which reports it
        return None
    # What is known now (sidecar, else arguments) must match the row; what is not known now
    # (no sidecar, flag left out) keeps the value the row was computed with.
    rate, size = _known(meta, fps, frame_size)
    if rate and rate != float(old.fps[i]):
        return None
    if size and size != tuple(map(float, old.frame_size[i])):
        return None
    return i


def build_dmarker_table(
    landmark_dir: str | os.PathLike,
    output: str | os.PathLike | None = None,
    fps: float | None = None,
    frame_size: tuple[float, float] | None = None,
    *,
    labels: LabelsTable | None = None,
    eyelid: str = DEFAULT_EYELID,
    phase_rule: str = DEFAULT_PHASE_RULE,
    force: bool = False,
    progress: bool = False,
) -> DMarkerTable:
    """D-Markers of every ``*.npy`` in ``landmark_dir``, cached in ``output``.

    fps and frame size (width, height) come from each file's sidecar, else from its row of
    ``labels`` (labels.csv's fps,width,height columns, as training reads them), else from the
    arguments.
    Files that fail (unreadable, no rate/size, degenerate face) are listed in ``table.errors`` and
    left out; the others are still computed. The table is written (atomically) when anything
    changed (not when every file failed: ``table.path`` is then None and a previous table is
    kept). ``eyelid`` and ``phase_rule`` are passed to ``video_descriptors`` (a table built
    with other settings is recomputed). ``force`` recomputes everything.
    """
    check_options(eyelid, phase_rule)  # before any file: a bad setting is no per-file failure
    landmark_dir = Path(landmark_dir)
    if landmark_dir.exists() and not landmark_dir.is_dir():
        raise ValueError(f"{landmark_dir}: not a folder; give the folder that holds the .npy files")
    if output is not None and Path(output).is_dir():
        raise ValueError(
            f"{output}: a folder; give the table's file, e.g. {Path(output) / CACHE_NAME}"
        )
    if output is not None and Path(output).suffix.lower() != ".npz":
        raise ValueError(
            f"{output}: the table is an .npz archive; give --output a name ending in .npz (as a "
            ".npy it would pass for a landmark file)"
        )
    if not landmark_dir.is_dir():
        raise FileNotFoundError(
            f"{landmark_dir}: no such folder; "
            f"run extract_landmarks.py --output {landmark_dir} first"
        )
    files = landmark_files(landmark_dir)
    if not files:
        inner = landmark_dir / "npy"
        fix = (
            f"a dataset root? give its landmark folder: --landmarks {inner}"
            if landmark_files(inner)
            else "run extract_landmarks.py first"
        )
        raise FileNotFoundError(f"no landmark files (*.npy) under {landmark_dir}: {fix}")
    output = Path(output) if output else landmark_dir / CACHE_NAME
    check_folder(output.parent, "--output's folder")
    if output.exists() and not replaceable(output):
        raise ValueError(
            f"{output}: exists and is not a D-Marker table of dmarker.py; give --output another "
            "file (an .npz)"
        )
    old = None
    if output.is_file() and not force:
        try:
            old = read_table(output)
        except ValueError:  # unreadable or of another version: rebuilt whole
            pass
        if old is not None and (old.eyelid, old.phase_rule) != (eyelid, phase_rule):
            old = None
    rows: list[tuple] = []  # (name, result, mirrored features, (fps, w, h), fingerprint)
    errors: dict[str, str] = {}
    failed: dict[str, tuple[int, ...]] = {}
    reused, probed = 0, False
    for npy in tqdm(files, desc="D-Markers", unit="video", disable=not progress):
        name, fp = video_key(npy.name), None
        try:
            fp = fingerprint(npy)
            rate, size = _fallback(labels, name, fps, frame_size)
            i = _reusable(old, name, npy, fp, rate, size)
            if i is not None:
                reused += 1
                used = (old.fps[i], *old.frame_size[i])
                rows.append((name, old.result(name), old.mirrored[i], used, fp))
                continue
            if not probed:  # the table will change: it must be writable before the work
                check_writable(output)
                probed = True
            res, mirrored, used = _compute(npy, rate, size, eyelid=eyelid, phase_rule=phase_rule)
            rows.append((name, res, mirrored, used, fp))
        except WriteError:
            raise
        except (ValueError, OSError) as e:
            errors[name] = str(e)
            if fp is not None:
                failed[name] = fp
    empty = np.zeros((0, N_DMARKERS), dtype=np.float32)
    table = DMarkerTable(
        names=[r[0] for r in rows],
        features=np.stack([r[1].features for r in rows]) if rows else empty,
        mirrored=np.stack([r[2] for r in rows]) if rows else empty,
        signals=[r[1].signals for r in rows],
        raw_signals=[r[1].raw_signals for r in rows],
        phases=np.array([r[1].phases for r in rows], dtype=np.int64).reshape(-1, 4),
        fps=np.array([r[3][0] for r in rows], dtype=np.float64),
        frame_size=np.array([r[3][1:] for r in rows], dtype=np.float64).reshape(-1, 2),
        cheek_available=np.array([r[1].cheek_available for r in rows], dtype=bool),
        status=[r[1].status for r in rows],
        fingerprints=np.array([r[4] for r in rows], dtype=np.int64).reshape(-1, 4),
        eyelid=eyelid,
        phase_rule=phase_rule,
        errors=errors,
        failed=failed,
        reused=reused,
    )
    if not rows and errors:  # nothing computed: keep the previous table, if any
        return table
    if old is None or reused != len(rows) or len(old) != len(rows) or old.failed != failed:
        table.save(output)
    else:
        table.path = output
    return table
