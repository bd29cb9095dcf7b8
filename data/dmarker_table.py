"""The per-dataset D-Marker table: every video's 225 descriptors, signals and phases in one file.

Default location ``<landmark_dir>/dmarkers.npz`` (plain ``np.savez``, readable with
``allow_pickle=False``), written atomically. Arrays in the file (n videos, T = total frames):

====================  ==============  =====================================================
key                   shape, dtype    meaning
====================  ==============  =====================================================
version               () int64        :data:`CACHE_VERSION` of the code that wrote it
eyelid                () str          eyelid mode (``data.dmarker.EYELID_MODES``)
phase_rule            () str          onset/offset rule (``data.smile_phases.PHASE_RULES``)
names                 (n,) str        landmark file names without ``.npy`` ("x.mp4")
features              (n, 225) f32    descriptors, columns ``feature_names``
mirrored              (n, 225) f32    descriptors of each video's mirror image (left and right
                                      swapped), the targets of mirrored training clips
feature_names         (225,) str      ``data.dmarker.FEATURE_NAMES``
signals, raw_signals  (T, 9) f32      smoothed / raw per-frame signals of all videos, stacked
offsets               (n + 1,) int64  video i owns rows ``offsets[i]:offsets[i + 1]``
signal_names          (9,) str        ``data.dmarker.SIGNAL_NAMES``
phases                (n, 4) int64    (onset_start, apex_start, offset_start, offset_end)
fps                   (n,) f64        frame rate used (omega)
frame_size            (n, 2) f64      width, height used for the isotropic conversion
cheek_available       (n,) bool       False for dlib-68 (cheek block = CHEEK_FILL)
status                (n,) str        ``data.dmarker.STATUSES``
fingerprints          (n, 4) int64    size, mtime_ns of the .npy and of its sidecar (-1: none)
failed_names          (m,) str        files the build could not measure ...
failed_fingerprints   (m, 4) int64    ... and their fingerprints then: unmeasurable, not new
====================  ==============  =====================================================

Built by :func:`data.dmarker_cache.build_dmarker_table`.
"""

from __future__ import annotations

import difflib
import os
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data.dmarker import (
    DEFAULT_EYELID,
    FEATURE_NAMES,
    N_DMARKERS,
    SIGNAL_NAMES,
    DMarkerResult,
)
from data.files import atomic_save_npz
from data.io import meta_path
from data.names import strip_video_ext
from data.smile_phases import DEFAULT_PHASE_RULE

CACHE_NAME = "dmarkers.npz"
#: Bump when the D-Marker maths change: tables of another version are recomputed on rebuild.
CACHE_VERSION = 3  # 3: the eyelid on the face's vertical, phases not made of filled gaps
_N_SIG = len(SIGNAL_NAMES)


def video_key(name: str) -> str:
    """A table name: the landmark file's name without ``.npy`` ("x.mp4")."""
    return str(name).removesuffix(".npy")


class VideoNames:
    """Rows of table names (:func:`video_key`), found with or without ``.npy`` and, when that is
    unambiguous, without the video extension ("x" for "x.mp4")."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.rows = {n: i for i, n in enumerate(names)}  # exact names
        self._stems: dict[str, list[str]] = {}
        for n in names:
            self._stems.setdefault(strip_video_ext(n), []).append(n)

    def row(self, name: str) -> int | None:
        key = video_key(name)
        if key in self.rows:
            return self.rows[key]
        found = self._stems.get(key, [])
        return self.rows[found[0]] if len(found) == 1 else None

    def sharing_stem(self, name: str) -> list[str]:
        """The names that ``name`` without a video extension could mean."""
        return self._stems.get(video_key(name), [])

    def closest(self, name: str) -> list[str]:
        """Up to three names close to ``name``, for messages: those that contain it (in any case)
        first, then the most similar spellings."""
        key = video_key(name).lower()
        lowered = {n.lower(): n for n in self.names}
        found = [n for low, n in lowered.items() if key and key in low]
        similar = difflib.get_close_matches(key, list(lowered), n=3, cutoff=0.4)
        return list(dict.fromkeys(found + [lowered[low] for low in similar]))[:3]


@dataclass(eq=False, kw_only=True)
class DMarkerTable:
    """D-Markers of every video of a dataset (see the module docstring for the file layout)."""

    names: list[str]
    features: np.ndarray  # (n, 225) float32
    mirrored: np.ndarray  # (n, 225) float32, of the mirror images
    feature_names: tuple[str, ...] = FEATURE_NAMES
    signals: list[np.ndarray] = field(default_factory=list)  # n x (t_i, 9) float32, smoothed
    raw_signals: list[np.ndarray] = field(default_factory=list)  # n x (t_i, 9) float32
    phases: np.ndarray | None = None  # (n, 4) int64
    fps: np.ndarray | None = None  # (n,) float64
    frame_size: np.ndarray | None = None  # (n, 2) float64
    cheek_available: np.ndarray | None = None  # (n,) bool
    status: list[str] = field(default_factory=list)
    fingerprints: np.ndarray | None = None  # (n, 4) int64
    eyelid: str = DEFAULT_EYELID
    phase_rule: str = DEFAULT_PHASE_RULE
    errors: dict[str, str] = field(default_factory=dict)  # files that failed (last build only)
    failed: dict[str, tuple[int, ...]] = field(default_factory=dict)  # their fingerprints (saved)
    reused: int = 0  # rows taken unchanged from the previous file (last build only)
    path: Path | None = None

    def __post_init__(self) -> None:
        self.names = [str(n) for n in self.names]
        self._names = VideoNames(self.names)

    def unmeasurable(self, name: str, npy: Path) -> bool:
        """``name`` has no row because the build could not measure its file ``npy``, which has
        not changed since (a row missing otherwise means the table is older than the file)."""
        return video_key(name) in self.failed and self.failed[video_key(name)] == fingerprint(npy)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: str) -> bool:
        return self._names.row(name) is not None

    def file_row(self, name: str) -> int | None:
        """Row of exactly this table name (no extension left off), or None."""
        return self._names.rows.get(name)

    def index(self, name: str) -> int:
        """Row of a video; ``name`` with or without its video extension (or ``.npy``)."""
        row = self._names.row(name)
        if row is not None:
            return row
        found = self._names.sharing_stem(name)
        where = f" {self.path}" if self.path else ""
        if found:
            raise KeyError(f"{name!r} is ambiguous in the D-Marker table{where}: {found}")
        close = self._names.closest(name)
        some = f", {'closest:' if close else 'e.g.'} {', '.join(close or self.names[:3])}"
        raise KeyError(
            f"{name!r} is not in the D-Marker table{where} ({len(self)} videos"
            f"{some if self.names else ''}); give one of its names (.npy and the video "
            "extension may be left off)"
        )

    def get(self, name: str, mirrored: bool = False) -> np.ndarray:
        """The 225 descriptors (225,) float32 of a video, or of its mirror image."""
        return (self.mirrored if mirrored else self.features)[self.index(name)]

    def result(self, name: str) -> DMarkerResult:
        """Everything stored for one video."""
        i = self.index(name)
        return DMarkerResult(
            features=self.features[i],
            signals=self.signals[i],
            raw_signals=self.raw_signals[i],
            phases=tuple(int(b) for b in self.phases[i]),
            cheek_available=bool(self.cheek_available[i]),
            status=self.status[i],
        )

    def status_counts(self) -> dict[str, int]:
        return dict(Counter(self.status))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the table atomically as an npz (no pickled objects)."""
        lengths = [len(s) for s in self.signals]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)

        def stacked(parts: list[np.ndarray]) -> np.ndarray:
            if not parts:
                return np.zeros((0, _N_SIG), dtype=np.float32)
            return np.concatenate(parts).astype(np.float32)

        self.path = atomic_save_npz(
            path,
            version=np.int64(CACHE_VERSION),
            eyelid=np.str_(self.eyelid),
            phase_rule=np.str_(self.phase_rule),
            names=np.array(self.names, dtype=str),
            features=np.asarray(self.features, dtype=np.float32).reshape(-1, N_DMARKERS),
            feature_names=np.array(self.feature_names, dtype=str),
            signals=stacked(self.signals),
            raw_signals=stacked(self.raw_signals),
            offsets=offsets,
            signal_names=np.array(SIGNAL_NAMES, dtype=str),
            phases=np.asarray(self.phases, dtype=np.int64).reshape(-1, 4),
            fps=np.asarray(self.fps, dtype=np.float64),
            frame_size=np.asarray(self.frame_size, dtype=np.float64).reshape(-1, 2),
            cheek_available=np.asarray(self.cheek_available, dtype=bool),
            status=np.array(self.status, dtype=str),
            fingerprints=np.asarray(self.fingerprints, dtype=np.int64).reshape(-1, 4),
            failed_names=np.array(list(self.failed), dtype=str),
            failed_fingerprints=np.array(list(self.failed.values()), dtype=np.int64).reshape(-1, 4),
            mirrored=np.asarray(self.mirrored, dtype=np.float32).reshape(-1, N_DMARKERS),
        )
        return self.path


def read_table(path: Path, rebuild: str | None = None) -> DMarkerTable:
    """The table at ``path``; ValueError naming ``rebuild`` (the dmarker.py command that rebuilds
    it) when the file is unreadable or written by another version of dmarker.py."""
    rebuild = rebuild or _rebuild(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            version = int(z["version"])
            table = _from_npz(z, path) if version == CACHE_VERSION else None
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise ValueError(
            f"{path}: not a readable D-Marker table ({e}); rebuild it with {rebuild}"
        ) from e
    if table is None or table.feature_names != FEATURE_NAMES:
        raise ValueError(
            f"{path}: written by another version of dmarker.py (table version {version}, this "
            f"code reads {CACHE_VERSION}); rebuild it with {rebuild}"
        )
    return table


def replaceable(path: Path) -> bool:
    """Whether a table may be written over ``path``: it is a D-Marker table of any version, or an
    .npz that cannot be read (a damaged table); never another file (a landmark file, labels.csv,
    an .npz of other data)."""
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return path.suffix == ".npz"
    if not isinstance(z, np.lib.npyio.NpzFile):
        return False
    with z:
        return {"version", "features", "names"} <= set(z.files)


def _from_npz(z, path: Path) -> DMarkerTable:
    offsets = z["offsets"]
    spans = list(zip(offsets[:-1], offsets[1:], strict=True))
    signals, raw = z["signals"], z["raw_signals"]
    return DMarkerTable(
        names=list(z["names"]),
        features=z["features"],
        mirrored=z["mirrored"],
        feature_names=tuple(str(n) for n in z["feature_names"]),
        signals=[signals[a:b] for a, b in spans],
        raw_signals=[raw[a:b] for a, b in spans],
        phases=z["phases"],
        fps=z["fps"],
        frame_size=z["frame_size"],
        cheek_available=z["cheek_available"],
        status=[str(s) for s in z["status"]],
        fingerprints=z["fingerprints"],
        failed={
            str(n): tuple(int(x) for x in f)
            for n, f in zip(z["failed_names"], z["failed_fingerprints"], strict=True)
        },
        eyelid=str(z["eyelid"]),
        phase_rule=str(z["phase_rule"]),
        path=path,
    )


def load_dmarker_table(path: str | os.PathLike, rebuild: str | None = None) -> DMarkerTable:
    """Read a table written by :func:`build_dmarker_table`; ``rebuild``: the dmarker.py command
    that rebuilds it, for the error of a missing, unreadable or outdated table."""
    path = Path(path)
    rebuild = rebuild or _rebuild(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no D-Marker table; create it with {rebuild}")
    return read_table(path, rebuild)


def _rebuild(path: Path) -> str:
    return f"python dmarker.py --landmarks <landmark folder> --output {path}"


def fingerprint(npy: Path) -> tuple[int, int, int, int]:
    """(size, mtime_ns) of a landmark file and of its sidecar ((-1, -1) when it has none)."""
    st = npy.stat()
    side = meta_path(npy)
    sst = side.stat() if side.exists() else None
    return st.st_size, st.st_mtime_ns, sst.st_size if sst else -1, sst.st_mtime_ns if sst else -1
