"""Landmark storage for training: one packed, memory-mapped array instead of one file per video.

``<landmarks dir>/.packed/landmarks-<id>.npy`` holds every video's rows back to back, float32
(sum T, L, 3), already in isotropic pixels (x*W, y*H, z*W); ``index.json`` (written last,
atomically) lists each file's offset, length, frame size, byte size and mtime. It is rebuilt when a
source file or a frame size changes. Opening is a memory map (no read) and a video is a read-only
view, so a training clip touches only the frames it uses; a worker process re-opens the map lazily
after pickling, so DataLoader workers share the page cache instead of copying arrays.

Both stores answer ``get(file) -> (T, L, 3) float32`` isotropic pixels; ``scales`` maps each
landmark file name to its frame size (W, H).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np

from data.io import atomic_write_json, to_isotropic

PACK_DIR = ".packed"
INDEX = "index.json"


def npy_shape(path: str | Path) -> tuple[int, ...]:
    """Shape of a .npy file from its header only."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape = np.lib.format.read_array_header_1_0(f)[0]
            else:
                shape = np.lib.format.read_array_header_2_0(f)[0]
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable .npy landmark file ({e}); re-extract it") from e
    if len(shape) != 3 or shape[-1] != 3:
        raise ValueError(f"{path}: expected a (T, L, 3) landmark array, got shape {shape}")
    return shape


def _fingerprint(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


class FileStore:
    """Reads a landmark file each time it is asked (no packing)."""

    def __init__(self, scales: dict[str, tuple[int, int]]):
        self.scales = scales

    def get(self, file: Path) -> np.ndarray:
        """(T, L, 3) float32 isotropic pixels, a fresh array."""
        w, h = self.scales[Path(file).name]
        return to_isotropic(np.load(file, allow_pickle=False), w, h)


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
            self._mm = np.load(self.data_path, mmap_mode="r")
        return self._mm

    def get(self, file: Path) -> np.ndarray:
        """(T, L, 3) float32 isotropic pixels, a read-only view (copy before writing to it)."""
        offset, length = self.entries[Path(file).name]
        return self._array()[offset : offset + length]


def open_packed(files: list[Path], scales: dict[str, tuple[int, int]]) -> PackedStore | None:
    """The packed store of ``files`` (all in one folder) if one exists and is up to date."""
    if not files:
        return None
    pack = files[0].parent / PACK_DIR
    try:
        index = json.loads((pack / INDEX).read_text())
        by_name = {e["file"]: e for e in index["entries"]}
        data_path = pack / index["data"]
        if not data_path.exists():
            return None
        entries = {}
        for f in files:
            e = by_name.get(f.name)
            fresh = e is not None and tuple(_fingerprint(f)) == (e["size"], e["mtime_ns"])
            if not fresh or tuple(e["scale"]) != tuple(scales[f.name]):
                return None
            entries[f.name] = (e["offset"], e["length"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return PackedStore(data_path, entries)


def build_packed(
    files: list[Path], scales: dict[str, tuple[int, int]], shapes: dict | None = None
) -> PackedStore:
    """Pack ``files`` (one folder, same landmark count) into ``<folder>/.packed``; atomic.

    The data file gets a fresh name and the index is replaced last, so a reader never sees a half
    written pack; older data files are removed afterwards.
    """
    if not files:
        raise ValueError("no landmark files to pack")
    pack = files[0].parent / PACK_DIR
    pack.mkdir(exist_ok=True)
    shapes = shapes or {f: npy_shape(f) for f in files}
    n_points = {shapes[f][1] for f in files}
    if len(n_points) != 1:
        raise ValueError(f"{files[0].parent}: landmark files mix point counts {sorted(n_points)}")
    total = sum(shapes[f][0] for f in files)
    data_name = f"landmarks-{uuid.uuid4().hex[:12]}.npy"
    tmp = pack / f".{data_name}.tmp"
    entries, offset = [], 0
    try:
        out = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.float32, shape=(total, n_points.pop(), 3)
        )
        for f in files:
            size, mtime = _fingerprint(f)
            w, h = scales[f.name]
            arr = to_isotropic(np.load(f, mmap_mode="r"), w, h)
            out[offset : offset + len(arr)] = arr
            entries.append({"file": f.name, "offset": offset, "length": len(arr),
                            "scale": [w, h], "size": size, "mtime_ns": mtime})  # fmt: skip
            offset += len(arr)
        out.flush()
        del out
        os.replace(tmp, pack / data_name)
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_json(pack / INDEX, {"version": 2, "data": data_name, "entries": entries})
    for old in pack.glob("landmarks-*.npy"):
        if old.name != data_name:
            old.unlink(missing_ok=True)
    return PackedStore(pack / data_name, {e["file"]: (e["offset"], e["length"]) for e in entries})
