"""Atomic file writes and the per-video landmark file format.

A landmark file is ``<dir>/<video name with extension>.npy``: float32 (T, V, 3), x and y
normalised to the frame width and height, z MediaPipe's relative depth (same scale as x; 0 for
dlib), the
format of the published landmark files. Its metadata lives in the sidecar
``<dir>/<video name with extension>.json`` (see :data:`META_KEYS`). Published files have no
sidecar; readers then fall back to a per-dataset default frame size and rate.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import reprlib
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

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


UMASK = os.umask(0)  # the process umask (read by setting it; set back at once)
os.umask(UMASK)


def temp_prefix(path: str | os.PathLike) -> str:
    """Start of the temp names that write ``path``: ``.<16 hex digits of a hash of its name>.``
    (a random part and ``.tmp`` follow): 30 bytes in all for any name, so every name that the
    file system takes can be written."""
    return f".{hashlib.sha256(os.fsencode(Path(path).name)).hexdigest()[:16]}."


def check_folder(path: str | os.PathLike, flag: str) -> None:
    """Raise ValueError when ``path``, a folder to write into, is empty (an unset shell variable
    would make it the current folder), a file, or lies below a file."""
    if not str(path).strip():
        raise ValueError(f"{flag} {str(path)!r}: empty; give a folder")
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                what = "is a file" if p == path else f"lies below the file {p}"
                raise ValueError(f"{flag} {path}: {what}; it must be a folder (new or existing)")
            return


class WriteError(OSError):
    """A file could not be written (a full disk, say); the message names it and the fix."""


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp)`` on a temp file in the target folder, then rename it over ``path``.

    An OSError (of ``write``, or making the folder, the temp file or the rename) becomes a
    :class:`WriteError` naming ``path``, not the temp file (numpy's own message on a full disk is
    "103248 requested and 48096 written")."""
    path, tmp = Path(path), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        write(tmp)
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except WriteError:
        raise
    except OSError as e:  # its folder, the temp file, the write or the rename
        raise _write_error(path, "not written", e) from e
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return path


def check_writable(path: str | os.PathLike) -> None:
    """:class:`WriteError` now, before the work whose result goes to ``path``, when ``path``
    cannot be written: a temp file is created and removed in its folder, or, where that is still
    to be made, in the folder it would be made in (nothing is left behind)."""
    path = Path(path)
    folder = next(p for p in (path.parent, *path.parent.parents) if p.exists())
    try:
        fd, name = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise _write_error(path, "cannot be written", e) from e


def _write_error(path: Path, what: str, e: OSError) -> WriteError:
    return WriteError(
        f"{path}: {what} ({e.strerror or e}); free space on its disk, or check that its folder "
        "can be written and takes a name that long"
    )


def atomic_write_dir(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Make a folder appear whole: ``write(tmp)`` fills a temp sibling folder that is renamed to
    ``path`` (replacing it when empty). Into a folder that holds other files the new entries are
    moved one by one, in name order: only that case is not atomic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~UMASK)  # mkdtemp makes 0700; give the folder the usual mode
    try:
        write(tmp)
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        if not path.exists():
            os.replace(tmp, path)
            return path
        for entry in sorted(tmp.iterdir()):
            os.replace(entry, path / entry.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """``np.save`` that never leaves a partial file behind (temp file + rename)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    return atomic_write(path, write)


def atomic_save_npz(path: str | os.PathLike, **arrays: Any) -> Path:
    """``np.savez`` (uncompressed) written atomically; ``path`` keeps its name as given."""

    def write(tmp: Path) -> None:
        buffer = io.BytesIO()  # np.savez leaves its zip open when a write fails
        np.savez(buffer, **arrays)
        tmp.write_bytes(buffer.getbuffer())

    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


#: A lone surrogate: what a file name that is not valid UTF-8 holds after ``os.fsdecode``.
_SURROGATE = re.compile("[\ud800-\udfff]")


def is_valid_unicode(name: str) -> bool:
    """Whether a name holds no lone surrogate (it was valid UTF-8 on disk)."""
    return _SURROGATE.search(name) is None


def print_names_as_given() -> None:
    """Let standard output print file names that are not valid UTF-8 as their bytes, as ``ls``
    does (``surrogateescape``, the C locale's default), instead of failing mid-report."""
    if reconfigure := getattr(sys.stdout, "reconfigure", None):
        reconfigure(errors="surrogateescape")


def json_text(obj: Any) -> str:
    """The JSON files' format: indented, UTF-8 as is, a final newline. Lone surrogates (file
    names that are not valid UTF-8) are written as ``\\u`` escapes, which UTF-8 can hold and
    ``json.loads`` reads back as the same name."""
    text = json.dumps(obj, indent=2, ensure_ascii=False)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", text) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write JSON (indented, UTF-8) atomically."""
    return atomic_write_text(path, json_text(obj))


def read_json(path: str | os.PathLike, fix: str, keys: tuple[str, ...] = ()) -> Any:
    """The JSON content of ``path``; a file that is not valid JSON is a ValueError naming it and
    ``fix`` (what to do about it), and so, given ``keys``, is one that is not an object holding
    them (valid JSON of another kind)."""
    path = Path(path)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e}); {fix}") from e
    missing = [k for k in keys if not isinstance(content, dict) or k not in content]
    if missing:
        raise ValueError(
            f"{path}: not the expected file, a JSON object with {', '.join(keys)} "
            f"({', '.join(missing)} missing); {fix}"
        )
    return content


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
    meta = meta or {}
    found = meta.get("face_found", [None] * rows)
    counts = {meta.get("n_frames", rows), len(found) if isinstance(found, list) else -1}
    if counts != {rows}:
        raise ValueError(
            f"{meta_path(npy_path)}: describes another array than {Path(npy_path).name} ({rows} "
            "rows); re-run extract_landmarks.py, it re-extracts this video"
        )


def to_isotropic(landmarks: np.ndarray, width: float, height: float) -> np.ndarray:
    """Normalised (x/W, y/H, z/W) landmarks -> pixels on all three axes. (..., 3) -> (..., 3)."""
    scale = np.array([width, height, width], dtype=np.float32)
    return np.asarray(landmarks, dtype=np.float32) * scale
