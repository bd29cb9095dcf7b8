"""Landmark storage for training: one packed, memory-mapped array instead of one file per video.

``<landmarks dir>/.packed/landmarks-<key>.npy`` holds every video's rows back to back, float32
(sum T, V, 3), already in isotropic pixels (x*W, y*H, z*W); ``landmarks-<key>.json`` lists each
file's offset, length, frame size, byte size and mtime. The key hashes that list, so a pack is
found again only for the same files with the same content and frame sizes, and two runs on
different subsets of one folder each keep their own pack. Opening is a memory map (no read) and a
video is a read-only view, so a training clip touches only the frames it uses; a worker process
re-opens the map lazily after pickling, so DataLoader workers share the page cache instead of
copying arrays.

Both stores answer ``get(file) -> (T, V, 3) float32`` isotropic pixels; ``scales`` maps each
landmark file name to its frame size (W, H).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import uuid
import warnings
from pathlib import Path

import numpy as np

from data.files import atomic_write_json
from data.io import REEXTRACT, check_finite, read_npy, to_isotropic

PACK_DIR = ".packed"
#: Part of every pack key: bump it when the packed layout, units or checks change, so old packs
#: go unused (4: files with NaN or inf are refused).
PACK_FORMAT = 4
#: A pack nobody opened for this long is removed by the next build in its folder.
UNUSED_DAYS = 30


#: The fix named when a dataset's landmark file cannot be read (a demo names its generator).
DATASET_FILE_FIX = f"{REEXTRACT}, or remove it from the dataset"


def npy_shape(path: str | Path, fix: str = DATASET_FILE_FIX) -> tuple[int, ...]:
    """Shape of a .npy file from its header only; ValueError naming the file and ``fix`` when the
    header is unreadable, not (T, V, 3), or promises more data than the file holds (a truncated
    copy)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            data_bytes = os.fstat(f.fileno()).st_size - f.tell()
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable .npy landmark file ({e}); {fix}") from e
    if len(shape) != 3 or shape[-1] != 3 or dtype.kind not in "fiu":
        raise ValueError(
            f"{path}: expected a (T, V, 3) landmark array of real numbers, got shape {shape} of "
            f"{dtype}; {fix}"
        )
    if data_bytes < math.prod(shape) * dtype.itemsize:
        raise ValueError(
            f"{path}: truncated (holds {data_bytes} of the {math.prod(shape) * dtype.itemsize} "
            f"bytes its header promises); {fix}"
        )
    return shape


def check_point_counts(folder: Path, shapes: dict[Path, tuple[int, ...]]) -> int:
    """The landmark count V the files of ``shapes`` (file -> (T, V, 3)) share; ValueError naming a
    file per count and the fix when they differ (two backends, or two versions of one)."""
    by_count: dict[int, list[Path]] = {}
    for f, shape in shapes.items():
        by_count.setdefault(shape[1], []).append(Path(f))
    if len(by_count) > 1:
        seen = ", ".join(
            f"{len(fs)} with {c} (e.g. {min(fs).name})" for c, fs in sorted(by_count.items())
        )
        raise ValueError(
            f"{folder}: landmark files mix point counts: {seen}; extract every video with one "
            "--backend (extract_landmarks.py ... --backend B --overwrite)"
        )
    return next(iter(by_count))


def _fingerprint(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


class FileStore:
    """Reads a landmark file each time it is asked (no packing); ``fix`` is named when one is
    unreadable or holds NaN."""

    def __init__(self, scales: dict[str, tuple[int, int]], fix: str = DATASET_FILE_FIX):
        self.scales = scales
        self.fix = fix

    def get(self, file: Path) -> np.ndarray:
        """(T, V, 3) float32 isotropic pixels, a fresh array."""
        w, h = self.scales[Path(file).name]
        rows = read_npy(file, fix=self.fix)
        check_finite(file, rows, self.fix)
        return to_isotropic(rows, w, h)


class PackedStore:
    """Memory-mapped packed landmarks, stored in isotropic pixels."""

    def __init__(self, data_path: Path, entries: dict[str, tuple[int, int]]):
        self.data_path = Path(data_path)
        self.entries = entries  # file name -> (offset, length)
        self._mm: np.ndarray | None = None

    def __getstate__(self):
        return {"data_path": self.data_path, "entries": self.entries, "_mm": None}

    def _array(self) -> np.ndarray:
        if self._mm is None:
            if not self.data_path.exists():
                raise FileNotFoundError(
                    f"{self.data_path}: packed landmarks removed while in use (a landmark file "
                    "changed during this run); run again to repack"
                )
            self._mm = np.load(self.data_path, mmap_mode="r")
        return self._mm

    def get(self, file: Path) -> np.ndarray:
        """(T, V, 3) float32 isotropic pixels, a read-only view (copy before writing to it)."""
        offset, length = self.entries[Path(file).name]
        return self._array()[offset : offset + length]


def _pack_entries(files: list[Path], scales, shapes) -> list[dict]:
    """Per file, in pack order: name, offset, length, frame size and source fingerprint."""
    entries, offset = [], 0
    for f in files:
        size, mtime = _fingerprint(f)
        length = shapes[f][0]
        scale = list(scales[f.name])
        entries.append({"file": f.name, "offset": offset, "length": length, "scale": scale,
                        "size": size, "mtime_ns": mtime})  # fmt: skip
        offset += length
    return entries


def _pack_key(entries: list[dict]) -> str:
    """Content key of a pack: changes with the file set, any file's bytes or frame size."""
    content = json.dumps({"format": PACK_FORMAT, "entries": entries}, sort_keys=True)
    return hashlib.sha1(content.encode()).hexdigest()[:16]


def _store(data_path: Path, entries: list[dict]) -> PackedStore:
    return PackedStore(data_path, {e["file"]: (e["offset"], e["length"]) for e in entries})


def open_packed(
    files: list[Path], scales: dict[str, tuple[int, int]], shapes: dict | None = None
) -> PackedStore | None:
    """The packed store of ``files`` (one folder) if one was built for exactly this content."""
    if not files:
        return None
    shapes = shapes or {f: npy_shape(f) for f in files}
    entries = _pack_entries(files, scales, shapes)
    data_path = files[0].parent / PACK_DIR / f"landmarks-{_pack_key(entries)}.npy"
    if not data_path.exists():
        return None
    try:
        os.utime(data_path.with_suffix(".json"))  # marks the pack as in use (see UNUSED_DAYS)
    except OSError:
        pass
    return _store(data_path, entries)


def build_packed(
    files: list[Path],
    scales: dict[str, tuple[int, int]],
    shapes: dict | None = None,
    fix: str = DATASET_FILE_FIX,
) -> PackedStore:
    """Pack ``files`` (one folder, same landmark count) into ``<folder>/.packed``; atomic.

    The pack is named by its content key and appears by a rename, so a reader never sees a half
    written pack, and runs packing different file sets of one folder keep each other's packs.
    A file that is unreadable or holds NaN or inf is refused by name, with ``fix``.
    Packs whose sources changed or vanished, or that nobody opened for :data:`UNUSED_DAYS`, are
    removed afterwards.
    """
    if not files:
        raise ValueError("no landmark files to pack")
    pack = files[0].parent / PACK_DIR
    pack.mkdir(exist_ok=True)
    shapes = shapes or {f: npy_shape(f, fix) for f in files}
    n_points = check_point_counts(files[0].parent, {f: shapes[f] for f in files})
    entries = _pack_entries(files, scales, shapes)
    stem = f"landmarks-{_pack_key(entries)}"
    atomic_write_json(pack / f"{stem}.json", {"format": PACK_FORMAT, "entries": entries})
    tmp = pack / f".{stem}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        total = entries[-1]["offset"] + entries[-1]["length"]
        out = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.float32, shape=(total, n_points, 3)
        )
        for f, e in zip(files, entries, strict=True):
            w, h = scales[f.name]
            rows = read_npy(f, mmap=True, fix=fix)
            check_finite(f, rows, fix)
            out[e["offset"] : e["offset"] + e["length"]] = to_isotropic(rows, w, h)
        out.flush()
        del out
        os.replace(tmp, pack / f"{stem}.npy")
    finally:
        tmp.unlink(missing_ok=True)
    _remove_stale(pack)
    return _store(pack / f"{stem}.npy", entries)


def landmark_store(
    sizes: dict[Path, tuple[int, int]], shapes, fix: str = DATASET_FILE_FIX, pack: bool = True
) -> FileStore | PackedStore:
    """The store of the landmark files ``sizes`` maps to their frame (width, height): packed
    (built if needed) or, without ``pack`` or where the pack cannot be written (a read-only
    dataset), the files read one by one."""
    scales = {f.name: size for f, size in sizes.items()}
    if pack:
        files = sorted(sizes)
        store = open_packed(files, scales, shapes)
        if store is not None:
            return store
        try:
            return build_packed(files, scales, shapes, fix)
        except OSError as e:
            warnings.warn(
                f"could not pack {files[0].parent} ({e}); reading files one by one", stacklevel=3
            )
    return FileStore(scales, fix)


def _remove_stale(pack: Path) -> None:
    """Delete packs of another :data:`PACK_FORMAT`, whose index names a source file that changed
    or vanished or that were not opened for :data:`UNUSED_DAYS`, data without an index (the older
    single-index layout), and temporary files of builds killed over a day ago. A file that cannot
    be deleted (mapped on Windows, say) is left for a later build."""
    now = time.time()
    _unlink(pack / "index.json")
    for index in pack.glob("landmarks-*.json"):
        try:
            unused = now - index.stat().st_mtime > UNUSED_DAYS * 86400
            content = json.loads(index.read_text())
            entries = content["entries"]
            stale = (
                unused
                or content.get("format") != PACK_FORMAT
                or any(
                    _fingerprint(pack.parent / e["file"]) != (e["size"], e["mtime_ns"])
                    for e in entries
                )
            )
        except FileNotFoundError:
            stale = True
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if stale:
            _unlink(index.with_suffix(".npy"))
            _unlink(index)
    for data in pack.glob("landmarks-*.npy"):
        if not data.with_suffix(".json").exists():
            _unlink(data)
    for tmp in pack.glob(".landmarks-*.tmp"):
        try:
            if now - tmp.stat().st_mtime > 86400:
                _unlink(tmp)
        except OSError:
            pass


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass
