"""Horizontal mirroring of landmark sequences, with the left-right index permutation of the mesh.

MediaPipe's permutation is derived from the mesh itself and stored in
``data/assets/mirror_mediapipe.json`` (the runtime needs no mediapipe; ``python -m
data.mirror_derive`` regenerates it, see there). dlib-68 uses the standard iBUG table.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

ASSET = Path(__file__).resolve().parent / "assets" / "mirror_mediapipe.json"

# iBUG 68: jaw, brows, nose, eyes, outer and inner lips; each pair (subject right, subject left).
_DLIB68_PAIRS = (
    [(i, 16 - i) for i in range(8)]
    + [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22), (31, 35), (32, 34)]
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]
)


def _from_pairs(n: int, pairs) -> np.ndarray:
    perm = np.arange(n)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


DLIB68_MIRROR = _from_pairs(68, _DLIB68_PAIRS)


@cache
def _mediapipe_perm() -> np.ndarray:
    try:
        data = json.loads(ASSET.read_text())
    except OSError as e:
        raise FileNotFoundError(
            f"{ASSET}: missing; regenerate with python -m data.mirror_derive"
        ) from e
    return np.asarray(data["permutation"], dtype=np.int64)


def mirror_permutation(n_landmarks: int) -> np.ndarray:
    """(V,) int: ``perm[i]`` = index of the point mirroring point i. V in {478, 468, 68}."""
    if n_landmarks == 68:
        perm = DLIB68_MIRROR.copy()
    elif n_landmarks in (468, 478):
        perm = _mediapipe_perm()[:n_landmarks].copy()
    else:
        raise ValueError(f"no mirror permutation for {n_landmarks} landmarks (478, 468 or 68)")
    return perm


def mirror_landmarks(x: np.ndarray, perm: np.ndarray, center: float | None = None) -> np.ndarray:
    """Mirror (..., V, 3) left-right: x -> 2 c - x about c (``center``; None: the mean x of all
    points), and swap left/right points with ``perm``. y and z unchanged."""
    out = np.array(x[..., perm, :], dtype=np.float32)
    c = out[..., 0].mean() if center is None else center
    out[..., 0] = 2 * c - out[..., 0]
    return out
