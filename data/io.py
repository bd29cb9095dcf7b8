"""The per-video landmark file format (atomic writes: data.files).

A landmark file is ``<dir>/<video name with extension>.npy``: float32 (T, V, 3), x and y
normalised to the frame width and height, z MediaPipe's relative depth (same scale as x; 0 for
dlib), the
format of the published landmark files. Its metadata lives in the sidecar
``<dir>/<video name with extension>.json`` (see :data:`META_KEYS`). Published files have no
sidecar; readers then fall back to a per-dataset default frame size and rate.
"""

from __future__ import annotations

import json
import math
import os
import reprlib
from pathlib import Path

import numpy as np

from data.files import atomic_save_npy, atomic_write, json_text

#: Keys of the sidecar written next to every landmark array.
META_KEYS = (
    "video",  # video name with extension (the file stem of the .npy)
    "fps",  # frame rate of the array rows (source rate / stride; see extraction.even_rows)
    "source_fps",  # frame rate of the source video
    "n_frames",  # rows of the array
    "width",  # source frame width in pixels, as displayed (after a container rotation)
    "height",  # source frame height in pixels, as displayed
    "backend",  # "mediapipe" | "dlib"
    "backend_version",
    "n_landmarks",
    "face_found",  # list of 0/1 per row; 0 rows were filled by interpolation
    "stride",
    "max_frames",
    "source",  # source path as given
    "source_size",  # bytes
    "source_mtime",  # seconds since the epoch
)
# Optional keys: "variable_frame_rate" (rows resampled to an even grid: source rows, shortest and
# longest step, data.extraction.even_rows) and "rotation" (degrees the container's display
# rotation turned the frames).


def landmark_files(folder: str | os.PathLike) -> list[Path]:
    """The landmark files of a folder, in name order: ``*.npy`` but hidden files (a macOS
    ``._x.npy`` beside every file copied from a Mac is no landmark file)."""
    return sorted(p for p in Path(folder).glob("*.npy") if not p.name.startswith("."))


def landmark_path(out_dir: str | os.PathLike, video_name: str) -> Path:
    """``<out_dir>/<video name with extension>.npy``."""
    return Path(out_dir) / f"{video_name}.npy"


def meta_path(npy_path: str | os.PathLike) -> Path:
    """Sidecar of a landmark file: ``x.mp4.npy`` -> ``x.mp4.json``."""
    p = Path(npy_path)
    return p.with_name(p.name.removesuffix(".npy") + ".json")


def save_landmarks(npy_path: str | os.PathLike, landmarks: np.ndarray, meta: dict) -> None:
    """Write a landmark array and its sidecar, each atomically, the sidecar last: it marks a
    complete output (readers take an array without one for a published file).

    The sidecar is written to its temp file before the array is replaced, so only two renames
    separate the old pair from the new. A failure before the array is replaced keeps the old
    pair; after it, both files are removed (never a new array beside the old sidecar, or alone).
    """
    landmarks = np.asarray(landmarks, dtype=np.float32)
    if landmarks.ndim != 3 or landmarks.shape[-1] != 3:
        raise ValueError(f"{npy_path}: landmarks must be (T, V, 3), got {landmarks.shape}")
    check_finite(npy_path, landmarks, "nothing was written")
    text = json_text(meta)
    replaced = False

    def write(tmp: Path) -> None:
        nonlocal replaced
        tmp.write_text(text)
        atomic_save_npy(npy_path, landmarks)
        replaced = True

    try:
        atomic_write(meta_path(npy_path), write)
    except BaseException:
        if replaced:
            Path(npy_path).unlink(missing_ok=True)
            meta_path(npy_path).unlink(missing_ok=True)
        raise


#: The lowest frame rate a sidecar may record (a frame every 100 s is no video: a corrupt value).
MIN_FPS = 0.01


def _count(v, least: int = 1) -> bool:
    return type(v) is int and v >= least  # not a bool, not a float


def _rate(v) -> bool:
    return v is None or (type(v) in (int, float) and math.isfinite(v) and v >= MIN_FPS)


def _size(v) -> bool:
    return v is None or _count(v)


#: What each sidecar value must be where the key is present (sidecars of earlier versions lack
#: some; a null rate or size is unknown, taken from labels.csv or the dataset's defaults); a value
#: of another kind is a damaged sidecar, as unreadable JSON is.
SIDECAR_VALUES = {
    "fps": (_rate, f"null or a frame rate of at least {MIN_FPS:g}"),
    "source_fps": (_rate, f"null or a frame rate of at least {MIN_FPS:g}"),
    "width": (_size, "null or a positive number of pixels"),
    "height": (_size, "null or a positive number of pixels"),
    "n_frames": (lambda v: _count(v, 0), "a count of rows"),
    "n_landmarks": (_count, "a positive count"),
    "stride": (_count, "a positive whole number"),
    "max_frames": (_size, "null or a positive whole number"),
    "face_found": (
        lambda v: type(v) is list and all(type(x) in (int, bool) and x in (0, 1) for x in v),
        "a list of 0 and 1, one per row",
    ),
    "rotation": (lambda v: type(v) is int and v in (0, 90, 180, 270), "0, 90, 180 or 270"),
}


def load_meta(npy_path: str | os.PathLike) -> dict | None:
    """The sidecar of a landmark file, or None when it has none (published files); ValueError
    when it is not JSON, not an object or holds a value of another kind (:data:`SIDECAR_VALUES`)."""
    p = meta_path(npy_path)
    if not p.exists():
        return None
    try:
        meta = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        meta = e
    fix = "run extract_landmarks.py again, it re-extracts this video"
    if not isinstance(meta, dict):
        why = meta if isinstance(meta, Exception) else "not a JSON object"
        raise ValueError(f"{p}: unreadable sidecar ({why}); {fix}")
    for key, (valid, what) in SIDECAR_VALUES.items():
        if key in meta and not valid(meta[key]):
            raise ValueError(
                f"{p}: damaged sidecar, {key} is {reprlib.repr(meta[key])}, not {what}; {fix}"
            )
    return meta


def cut_short(meta: dict | None) -> bool:
    """Whether the sidecar ``meta`` says extraction stopped at ``--max-frames`` before the video
    ended (a quick run). Sidecars of earlier versions record the limit even where the video ended
    first: fewer rows than the limit mean a whole video."""
    limit = (meta or {}).get("max_frames")
    if limit is None:
        return False
    rows = meta.get("variable_frame_rate", {}).get("source_rows", meta.get("n_frames", 0))
    return rows >= limit


def check_whole_video(npy_path: str | os.PathLike, meta: dict | None) -> None:
    """Raise ValueError when ``meta`` is a quick run's (:func:`cut_short`): it holds the start of
    the smile only."""
    if cut_short(meta):
        limit = meta["max_frames"]
        raise ValueError(
            f"{npy_path}: a quick run (--max-frames {limit}) that holds the first {limit} frames "
            "only; re-extract the video without --max-frames"
        )


#: The fix named for a damaged landmark file: a rerun without --overwrite keeps an output whose
#: size and sidecar look complete (one holding NaN, say).
REEXTRACT = "run extract_landmarks.py on its video again with --overwrite"


def read_npy(npy_path: str | os.PathLike, mmap: bool = False, fix: str = REEXTRACT) -> np.ndarray:
    """``np.load`` of a landmark file (memory-mapped with ``mmap``); an unreadable or truncated
    file raises ValueError naming it and ``fix``."""
    try:
        array = np.load(npy_path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:  # EOFError: an empty file
        raise ValueError(f"{npy_path}: not a readable .npy landmark file ({e}); {fix}") from e
    if not isinstance(array, np.ndarray):  # np.load opens an .npz archive whatever its name
        array.close()
        raise ValueError(f"{npy_path}: an .npz archive, not a .npy landmark file; {fix}")
    return array


def check_finite(npy_path: str | os.PathLike, landmarks: np.ndarray, fix: str = REEXTRACT) -> None:
    """Raise ValueError naming the file and ``fix`` when ``landmarks`` hold NaN or inf
    (extract_landmarks.py never writes them; a model or a descriptor would turn them into NaN)."""
    if not np.isfinite(landmarks).all():
        raise ValueError(f"{npy_path}: landmarks contain NaN or inf; {fix}")


def load_landmarks(npy_path: str | os.PathLike) -> tuple[np.ndarray, dict | None]:
    """Read a landmark array (T, V, 3) float32 and its sidecar (None when absent).

    Raises ValueError naming the file when it is not a (T, V, 3) array, holds NaN or inf or its
    sidecar counts other frames.
    """
    npy_path = Path(npy_path)
    arr = read_npy(npy_path)
    if arr.ndim != 3 or arr.shape[-1] != 3 or arr.dtype.kind not in "fiu":
        raise ValueError(
            f"{npy_path}: expected a (T, V, 3) landmark array of real numbers, got shape "
            f"{arr.shape} of {arr.dtype}; give a landmark file of extract_landmarks.py"
        )
    arr = arr.astype(np.float32, copy=False)
    check_finite(npy_path, arr)
    meta = load_meta(npy_path)
    check_sidecar_rows(npy_path, meta, len(arr))
    return arr, meta or None


def check_sidecar_rows(npy_path: str | os.PathLike, meta: dict | None, rows: int) -> None:
    """Raise ValueError when the sidecar's ``n_frames`` or ``face_found`` counts other frames than
    the array's ``rows`` (a sidecar left from another extraction)."""
    meta = meta or {}  # from load_meta: face_found, where present, is a list
    counts = {meta.get("n_frames", rows), len(meta.get("face_found", range(rows)))}
    if counts != {rows}:
        raise ValueError(
            f"{meta_path(npy_path)}: describes another array than {Path(npy_path).name} ({rows} "
            "rows); re-run extract_landmarks.py, it re-extracts this video"
        )


def to_isotropic(landmarks: np.ndarray, width: float, height: float) -> np.ndarray:
    """Normalised (x/W, y/H, z/W) landmarks -> pixels on all three axes. (..., 3) -> (..., 3)."""
    scale = np.array([width, height, width], dtype=np.float32)
    return np.asarray(landmarks, dtype=np.float32) * scale
