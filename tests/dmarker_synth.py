"""Synthetic faces for the D-Marker tests: a fixed face whose D-Marker points move on known ramps.

Coordinates are isotropic pixels (x right, y down, z away from the camera); the subject's right
side is on the image left. Landmarks that are not D-Marker points sit at fixed random positions.
"""

from __future__ import annotations

import numpy as np

from data.files import atomic_save_npy
from data.io import save_landmarks
from data.mesh import DLIB68, DLIB68_UPPER_LID_PAIRS, points_for

#: Neutral positions of the D-Marker points (pixels, around the eye midpoint).
NEUTRAL = {
    "right_eye_outer": (-45.0, 0.0, 5.0),
    "right_upper_lid": (-30.0, -8.0, -3.0),
    "right_eye_inner": (-15.0, 0.0, 0.0),
    "left_eye_inner": (15.0, 0.0, 0.0),
    "left_upper_lid": (30.0, -8.0, -3.0),
    "left_eye_outer": (45.0, 0.0, 5.0),
    "right_cheek": (-42.0, 40.0, 0.0),
    "left_cheek": (42.0, 40.0, 0.0),
    "nose_tip": (0.0, 45.0, -30.0),
    "right_lip_corner": (-25.0, 75.0, -5.0),
    "left_lip_corner": (25.0, 75.0, -5.0),
    "face_top": (0.0, -60.0, 0.0),
    "chin": (0.0, 120.0, 0.0),
}
CENTRE = np.array([320.0, 200.0, 0.0])
LIP_WIDTH = 50.0  # |l10 - l11| in the neutral face
MIRROR_PAIRS = (
    ("right_eye_outer", "left_eye_outer"),
    ("right_upper_lid", "left_upper_lid"),
    ("right_eye_inner", "left_eye_inner"),
    ("right_cheek", "left_cheek"),
    ("right_lip_corner", "left_lip_corner"),
)


def ramp(t: int, start: int, n_up: int, hold: int, n_down: int, amplitude: float) -> np.ndarray:
    """(t,) 0 until frame ``start``, linear up to ``amplitude`` at ``start + n_up``, held for
    ``hold`` frames, linear down to 0 over ``n_down`` frames, then 0."""
    f = np.arange(t, dtype=np.float64)
    up = np.clip((f - start) / n_up, 0, 1)
    down = np.clip((f - start - n_up - hold) / n_down, 0, 1) if n_down else np.zeros(t)
    return amplitude * (up - down)


def _indices(n_landmarks: int) -> dict[str, list[int]]:
    """D-Marker point name -> landmark indices that carry it (two for dlib upper lids)."""
    p = points_for(n_landmarks)
    out = {name: [getattr(p, name)] for name in NEUTRAL if getattr(p, name) is not None}
    if p is DLIB68:
        right, left = DLIB68_UPPER_LID_PAIRS
        out["right_upper_lid"], out["left_upper_lid"] = list(right), list(left)
    return out


def synthetic_video(
    n_landmarks: int = 478,
    t: int = 100,
    *,
    lip_right: np.ndarray | None = None,
    lip_left: np.ndarray | None = None,
    lid: np.ndarray | None = None,
    cheek: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """A face video (t, v, 3) float64 in pixels.

    lip_right / lip_left: outward horizontal shift of each lip corner (pixels, (t,));
    lid: downward shift of both upper lids; cheek: upward shift of both cheeks.
    """
    rng = np.random.default_rng(seed)
    base = CENTRE + rng.normal(0, 40, (n_landmarks, 3))
    idx = _indices(n_landmarks)
    for name, where in idx.items():
        base[where] = CENTRE + np.array(NEUTRAL[name])
    video = np.repeat(base[None], t, axis=0)
    zero = np.zeros(t)
    moves = {
        "right_lip_corner": np.stack([-(zero if lip_right is None else lip_right), zero, zero], -1),
        "left_lip_corner": np.stack([zero if lip_left is None else lip_left, zero, zero], -1),
        "right_upper_lid": np.stack([zero, zero if lid is None else lid, zero], -1),
        "left_upper_lid": np.stack([zero, zero if lid is None else lid, zero], -1),
        "right_cheek": np.stack([zero, -(zero if cheek is None else cheek), zero], -1),
        "left_cheek": np.stack([zero, -(zero if cheek is None else cheek), zero], -1),
    }
    for name, move in moves.items():
        for i in idx.get(name, []):
            video[:, i] += move
    return video


def mirror(video: np.ndarray) -> np.ndarray:
    """The mirror image (x -> -x about the face centre) with left/right D-Marker points swapped."""
    out = video.copy()
    out[..., 0] = 2 * CENTRE[0] - out[..., 0]
    idx = _indices(video.shape[1])
    for right, left in MIRROR_PAIRS:
        if right in idx:
            r, lft = idx[right], idx[left]
            out[:, r + lft] = out[:, lft + r]
    return out


def random_rotation(rng: np.random.Generator, max_angle: float) -> np.ndarray:
    """A rotation (3, 3) about a random axis by a random angle in [-max_angle, max_angle] rad."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = rng.uniform(-max_angle, max_angle)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def transform(video: np.ndarray, rotation, translation, scale) -> np.ndarray:
    """Apply p -> scale * R (p - centre) + centre + translation per frame. rotation (3, 3) or
    (t, 3, 3); translation (3,) or (t, 3); scale scalar or (t,)."""
    t = video.shape[0]
    rotation = np.broadcast_to(rotation, (t, 3, 3))
    translation = np.broadcast_to(translation, (t, 3))
    scale = np.broadcast_to(scale, (t,))
    centred = video - CENTRE
    rotated = np.einsum("tij,tvj->tvi", rotation, centred)
    return scale[:, None, None] * rotated + CENTRE + translation[:, None, :]


#: Frame size of the landmark files written by :func:`write_video`.
W, H = 640, 400


def write_video(folder, name, video, *, fps=25.0, sidecar=True, face_found=None):
    """Save a pixel video (t, v, 3) as a landmark file (x/W, y/H, z/W) with or without sidecar."""
    arr = (video / np.array([W, H, W])).astype(np.float32)
    path = folder / f"{name}.npy"
    if not sidecar:
        atomic_save_npy(path, arr)
        return path
    found = [1] * len(arr) if face_found is None else list(face_found)
    meta = {"video": name, "fps": fps, "width": W, "height": H, "n_frames": len(arr),
            "n_landmarks": arr.shape[1], "face_found": found}  # fmt: skip
    save_landmarks(path, arr, meta)
    return path


def smile_video(amplitude=8.0, t=80, n_landmarks=478, seed=0):
    s = ramp(t, 10, 12, 25, 15, amplitude)
    return synthetic_video(n_landmarks, t, lip_right=s, lip_left=s, lid=0.3 * s, seed=seed)


def three_videos(folder):
    """a.mp4, b.mp4 and c.avi: smiles of three amplitudes at 25, 30 and 50 fps, with sidecars."""
    for i, name in enumerate(("a.mp4", "b.mp4", "c.avi")):
        write_video(folder, name, smile_video(6.0 + i, seed=i), fps=(25.0, 30.0, 50.0)[i])
    return folder
