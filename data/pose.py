"""Per-frame head-pose normalisation of face landmarks, vectorised over frames.

Every frame is mapped into a face-centred frame (Dibeklioglu et al., ECCV 2012):

- origin: the midpoint of the two eye centres (eye centre = mean of its two corners);
- x axis: from the subject's right eye centre to the left one;
- y axis: in the plane through both eye centres and the nose tip, perpendicular to x, pointing
  towards the nose ("down" on the face);
- z axis: x cross y, so the eye-nose plane faces the camera (it is the z = 0 plane) and the frame
  is right-handed (a proper rotation, never a reflection);
- scale: the inter-ocular distance (between the eye centres) becomes :data:`IOD`.

The y axis is not the face's vertical on 3-D points: the nose tip stands out, so the eye-nose
plane leans ~45 degrees from the face's own plane on MediaPipe meshes (the D-Markers measure the
eyelid on a face top -> chin axis instead, ``data.dmarker``).

The rotation is built directly from these axes (no Euler angles), so there is no degree/radian
conversion to get wrong; :func:`rotation_matrix` (radians) serves tests, augmentation and the
demo generator.
Input coordinates must be isotropic (pixels on all three axes, see ``data.io.to_isotropic``).
"""

from __future__ import annotations

import numpy as np

from data.mesh import eye_pairs_for, points_for

#: Inter-ocular distance after normalisation (landmark units become "inter-ocular distances").
IOD = 1.0
#: Smallest eye distance / nose offset (input units, pixels) accepted as a real face.
MIN_EXTENT = 1e-6


def face_frames(
    right_eye: np.ndarray, left_eye: np.ndarray, nose: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face-centred frame of every frame from its eye centres and nose tip.

    Args: each (t, 3). Returns origin (t, 3), rotation (t, 3, 3) whose rows are the x, y, z axes
    (so ``rotation @ (p - origin)`` gives face coordinates), scale (t,) = IOD / inter-ocular
    distance. Raises ValueError when a frame is degenerate (eyes coincide, nose on the eye line).
    """
    right_eye, left_eye, nose = (
        np.asarray(a, dtype=np.float64) for a in (right_eye, left_eye, nose)
    )
    origin = 0.5 * (right_eye + left_eye)
    x = left_eye - right_eye
    iod = np.linalg.norm(x, axis=-1)
    v = nose - origin
    ok = iod > MIN_EXTENT
    x = x / np.where(ok, iod, 1.0)[:, None]
    y = v - np.sum(v * x, axis=-1, keepdims=True) * x
    ny = np.linalg.norm(y, axis=-1)
    ok &= ny > MIN_EXTENT
    if not ok.all():
        bad = np.flatnonzero(~ok)
        raise ValueError(
            f"degenerate face geometry in {bad.size} frame(s) (first: {bad[0]}): the eye centres "
            "coincide or the nose tip lies on the eye line"
        )
    y = y / ny[:, None]
    z = np.cross(x, y)
    rotation = np.stack([x, y, z], axis=-2)  # (t, 3, 3)
    return origin, rotation, IOD / iod


def apply_frames(
    points: np.ndarray, origin: np.ndarray, rotation: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """Map points (t, v, 3) into the per-frame face frames of :func:`face_frames`. -> (t, v, 3)."""
    centred = np.asarray(points, dtype=np.float64) - origin[:, None, :]
    return scale[:, None, None] * np.einsum("tij,tvj->tvi", rotation, centred)


def normalize_pose(landmarks: np.ndarray) -> np.ndarray:
    """Pose-normalise a landmark sequence (t, v, 3), v in {478, 468, 68}. -> (t, v, 3) float64.

    Eye corners and nose tip come from ``data.mesh`` for the landmark count.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    (r1, r2), (l1, l2) = eye_pairs_for(landmarks.shape[1])
    nose = points_for(landmarks.shape[1]).nose_tip
    right = 0.5 * (landmarks[:, r1] + landmarks[:, r2])
    left = 0.5 * (landmarks[:, l1] + landmarks[:, l2])
    return apply_frames(landmarks, *face_frames(right, left, landmarks[:, nose]))


def similarity_fit(
    src: np.ndarray, dst: np.ndarray, scaled: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares 3-D similarity (Umeyama), batched: ``dst ~ s * src @ R.T + t``; with
    ``scaled=False`` a rigid motion (Kabsch: s = 1).

    src, dst (..., N, 3) -> scale (...,), rotation (..., 3, 3), translation (..., 3).
    """
    mu_s, mu_d = src.mean(-2, keepdims=True), dst.mean(-2, keepdims=True)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(np.swapaxes(b, -1, -2) @ a)
    fix = np.ones_like(sig)
    fix[..., 2] = np.sign(np.linalg.det(u @ vt))
    rot = (u * fix[..., None, :]) @ vt
    scale = (sig * fix).sum(-1) / (a**2).sum((-1, -2)) if scaled else np.ones(sig.shape[:-1])
    shift = mu_d[..., 0, :] - scale[..., None] * (mu_s @ np.swapaxes(rot, -1, -2))[..., 0, :]
    return scale, rot, shift


def align_to(mesh: np.ndarray, target: np.ndarray, idx) -> np.ndarray:
    """Similarity-align each mesh in ``mesh`` (..., V, 3) to ``target`` (V, 3) on points ``idx``."""
    mesh = np.asarray(mesh, dtype=np.float64)
    idx = list(idx)
    scale, rot, shift = similarity_fit(mesh[..., idx, :], np.asarray(target, dtype=np.float64)[idx])
    return scale[..., None, None] * mesh @ np.swapaxes(rot, -1, -2) + shift[..., None, :]


def rotation_matrix(yaw, pitch, roll) -> np.ndarray:
    """Rotations (..., 3, 3) from radians (broadcast arrays or floats): yaw about y, pitch about
    x, roll about z; R = Rz Rx Ry."""
    yaw, pitch, roll = np.broadcast_arrays(*(np.asarray(a, float) for a in (yaw, pitch, roll)))
    one, zero = np.ones_like(yaw), np.zeros_like(yaw)

    def matrix(rows):  # 3 rows of 3 arrays (...) -> (..., 3, 3)
        return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)

    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    ry = matrix([[cy, zero, sy], [zero, one, zero], [-sy, zero, cy]])
    rx = matrix([[one, zero, zero], [zero, cp, -sp], [zero, sp, cp]])
    rz = matrix([[cr, -sr, zero], [sr, cr, zero], [zero, zero, one]])
    return rz @ rx @ ry
