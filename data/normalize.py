"""Per-video landmark normalisation, face-centred, replacing the published global min-max constants.

Methods (input: (T, V, 3) isotropic pixels from ``SmileDataset.landmarks``):

- ``face``: subtract the video's mean eye midpoint (eye centre = mean of its two corners) and
  divide by the video's median inter-ocular distance (3-D). Head motion within the video is kept;
  the result is invariant to translating or scaling the whole video. Units: inter-ocular distances.
- ``face_frontal``: ``face`` plus one rotation per video that makes the mean face frontal: the eye
  axis becomes +x, the eyes-to-mouth direction (orthogonalised) +y (down, as in images) and +z
  points away from the camera. Invariant to any rigid motion and scale of the whole video.
- ``face_frame``: the same centring, scaling and rotation computed for every frame on its own
  (head motion removed entirely).
- ``face_motion``: ``face_frame`` minus the video's mean normalised face: each landmark's motion
  around its own average position. Face shape (identity) and head pose are gone; what is left is
  the expression (the lips' and eyes' displacement over time).
- ``rigid_motion``: ``face_motion`` with a better alignment. ``face_frame`` builds each frame's
  frame from six points, two of them the lip corners, so an expression moves the frame itself: a
  smile tilts every point of the face with the lips, and the six points' jitter shakes it. Here
  each ``face_frame`` frame is then similarity-aligned (least squares) to the video's mean face on
  points that an expression hardly moves (``data.mesh.rigid_points_for``: nose ridge, forehead and
  upper face oval; dlib: upper nose ridge and inner eye corners), and the mean aligned face is
  subtracted. What is left of the eyes' motion is theirs, not the lips'.
- ``minmax``: the published scaling, for comparison: back to the landmark files' units (x/W, y/H,
  z/W), then ``(p - PUBLISHED_MIN) / (PUBLISHED_MAX - PUBLISHED_MIN)`` per axis with the constants
  hard-coded in the published MeshSmileNet loader (global per-axis extremes of the UvA-NEMO files;
  anisotropic, identical for every video and dataset).
- ``none``: pixels as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.mesh import eye_pairs_for, points_for, rigid_points_for
from data.pose import align_to

NORMALIZATIONS = (
    "face",
    "face_frontal",
    "face_frame",
    "face_motion",
    "rigid_motion",
    "minmax",
    "none",
)
#: Per-axis constants of the published loader (x/W, y/H, z/W units).
PUBLISHED_MIN = np.array([0.06372425, 0.05751023, -0.08976112], dtype=np.float32)
PUBLISHED_MAX = np.array([0.63246971, 1.01475966, 0.14436169], dtype=np.float32)


@dataclass(frozen=True)
class NormParams:
    """What :func:`apply_normalization` needs for one video."""

    method: str
    center: np.ndarray | None = None  # (3,) pixels
    scale: float = 1.0  # pixels per output unit
    rotation: np.ndarray | None = None  # (3, 3), rows = face x, y, z axes
    frame_size: tuple[float, float] | None = None  # (W, H) for minmax
    mean_face: np.ndarray | None = None  # (V, 3) face_frame units, for face/rigid_motion


def face_points(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right eye centre, left eye centre and mouth centre (lip corners): each (..., 3) float64."""
    n = x.shape[-2]
    (r1, r2), (l1, l2) = eye_pairs_for(n)
    pts = points_for(n)
    idx = [r1, r2, l1, l2, pts.right_lip_corner, pts.left_lip_corner]
    k = np.asarray(x[..., idx, :], dtype=np.float64)  # (..., 6, 3): only the points needed
    return (
        (k[..., 0, :] + k[..., 1, :]) / 2,
        (k[..., 2, :] + k[..., 3, :]) / 2,
        (k[..., 4, :] + k[..., 5, :]) / 2,
    )


def face_axes(right: np.ndarray, left: np.ndarray, mouth: np.ndarray) -> np.ndarray:
    """Rotation (..., 3, 3) whose rows are the face's x (eye axis), y (to the mouth) and z axes."""
    ex = left - right
    ex = ex / np.linalg.norm(ex, axis=-1, keepdims=True)
    down = mouth - (left + right) / 2
    ey = down - np.sum(down * ex, axis=-1, keepdims=True) * ex
    ey = ey / np.linalg.norm(ey, axis=-1, keepdims=True)
    ez = np.cross(ex, ey)
    return np.stack([ex, ey, ez], axis=-2)


def _check_scale(scale, what: str, measure: str = "inter-ocular distance") -> None:
    """ValueError when a size (a video's, or each frame's) is zero or not finite; per frame it
    names the first such frame."""
    bad = ~np.isfinite(scale) | (np.asarray(scale) <= 1e-9)
    if np.any(bad):
        if np.ndim(bad):
            first, n = int(np.flatnonzero(bad)[0]), int(bad.sum())
            what = f"frame {first}" + (f" and {n - 1} more" if n > 1 else "")
        raise ValueError(f"degenerate face in {what}: {measure} is zero or not finite")


def fit_normalization(
    video: np.ndarray, method: str, frame_size: tuple[float, float] | None = None
) -> NormParams:
    """Parameters of ``method`` for a whole video (T, V, 3) in isotropic pixels."""
    if method not in NORMALIZATIONS:
        raise ValueError(
            f"unknown normalisation {method!r}: use one of {', '.join(NORMALIZATIONS)}"
        )
    if method == "minmax":
        if frame_size is None:
            raise ValueError("minmax normalisation needs the frame size (W, H) of the video")
        return NormParams(method, frame_size=(float(frame_size[0]), float(frame_size[1])))
    if method in ("none", "face_frame"):
        return NormParams(method)
    if method == "face_motion":
        return NormParams(method, mean_face=_per_frame(video).mean(0))
    if method == "rigid_motion":
        return NormParams(method, mean_face=_rigid(video).mean(0))
    right, left, mouth = face_points(video)
    scale = float(np.median(np.linalg.norm(left - right, axis=-1)))
    _check_scale(scale, "video")
    center = ((right + left) / 2).mean(0)
    rotation = None
    if method == "face_frontal":
        rotation = face_axes(right.mean(0), left.mean(0), mouth.mean(0))
    return NormParams(method, center=center, scale=scale, rotation=rotation)


def mirror_center(method: str) -> float | None:
    """The x, in ``method``'s units, about which a normalised clip must be mirrored to equal the
    normalised mirror image of its video: 0 for the face-centred methods (their origin is the eye
    midpoint, their x axis the image's or the eye axis), the frame's centre line for ``minmax``;
    None for ``none`` (pixels of an unknown frame width: the clip's mean x stands in)."""
    if method == "none":
        return None
    if method == "minmax":
        return float((0.5 - PUBLISHED_MIN[0]) / (PUBLISHED_MAX[0] - PUBLISHED_MIN[0]))
    return 0.0


def _per_frame(x: np.ndarray) -> np.ndarray:
    """``face_frame``: every frame centred, scaled and rotated on its own. (t, V, 3) float32."""
    right, left, mouth = face_points(x)
    scale = np.linalg.norm(left - right, axis=-1)  # (t,)
    _check_scale(scale, "frame")
    center = (right + left) / 2  # (t, 3)
    rot = face_axes(right, left, mouth)  # (t, 3, 3)
    out = np.einsum("tij,tvj->tvi", rot, x - center[:, None, :]) / scale[:, None, None]
    return out.astype(np.float32)


def _rigid(x: np.ndarray, target: np.ndarray | None = None) -> np.ndarray:
    """``face_frame`` frames (t, V, 3) similarity-aligned on the rigid points to ``target`` (V, 3);
    without one, to the frames' own mean face, then once more to the mean of that. float32."""
    frames = _per_frame(x).astype(np.float64)
    idx = list(rigid_points_for(x.shape[-2]))
    rigid = frames[:, idx]
    spread = np.sqrt(((rigid - rigid.mean(1, keepdims=True)) ** 2).sum((1, 2)))
    _check_scale(spread, "frame", "the spread of its rigid points")
    out = align_to(frames, frames.mean(0) if target is None else target, idx)
    if target is None:
        out = align_to(frames, out.mean(0), idx)
    return out.astype(np.float32)


def apply_normalization(x: np.ndarray, params: NormParams) -> np.ndarray:
    """Normalise frames (t, V, 3) of a video with its parameters; float32 (t, V, 3)."""
    x = np.asarray(x, dtype=np.float32)
    if params.method == "none":
        return x.copy()
    if params.method == "minmax":
        w, h = params.frame_size
        raw = x / np.array([w, h, w], dtype=np.float32)
        return (raw - PUBLISHED_MIN) / (PUBLISHED_MAX - PUBLISHED_MIN)
    if params.method == "face_frame":
        return _per_frame(x)
    if params.method == "face_motion":
        return _per_frame(x) - params.mean_face.astype(np.float32)
    if params.method == "rigid_motion":
        return _rigid(x, params.mean_face) - params.mean_face.astype(np.float32)
    out = (x - params.center.astype(np.float32)) / np.float32(params.scale)
    if params.rotation is not None:
        out = out @ params.rotation.T.astype(np.float32)
    return out.astype(np.float32, copy=False)


def normalize_video(
    video: np.ndarray, method: str, frame_size: tuple[float, float] | None = None
) -> np.ndarray:
    """Fit and apply ``method`` on a whole video: (T, V, 3) pixels -> (T, V, 3) float32."""
    return apply_normalization(video, fit_normalization(video, method, frame_size))
