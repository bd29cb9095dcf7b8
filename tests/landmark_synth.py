"""Small synthetic landmark files for the data tests (written with data.io like real ones)."""

from __future__ import annotations

import tempfile
import zlib
from pathlib import Path

import numpy as np

from data.files import atomic_save_npy
from data.io import save_landmarks
from data.mesh import points_for

# Face-frame positions (inter-ocular units, x right, y down) of the points normalisation uses.
_KEY = {
    "right_eye_outer": (-0.75, 0.0),
    "right_eye_inner": (-0.25, 0.0),
    "left_eye_inner": (0.25, 0.0),
    "left_eye_outer": (0.75, 0.0),
    "right_lip_corner": (-0.45, 1.2),
    "left_lip_corner": (0.45, 1.2),
}


def name_seed(name: str) -> int:
    """A seed of its own for each file name: datasets refuse two files holding one array."""
    return zlib.crc32(name.encode())


def synth_video(
    n_frames: int = 30, n_landmarks: int = 478, seed: int = 0, width: int = 640, height: int = 480
) -> np.ndarray:
    """(T, V, 3) float32 in landmark-file units (x/W, y/H, z/W): a face-like cloud, eye corners
    and lip corners where a face has them, a little head motion and a smile over time."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(-1.0, 1.0, (n_landmarks, 3)) * np.array([1.0, 1.4, 0.3])
    pts = points_for(n_landmarks)
    for key, (x, y) in _KEY.items():
        base[getattr(pts, key)] = (x, y, 0.0)
    t = np.linspace(0, 1, n_frames)[:, None, None]
    frames = np.repeat(base[None], n_frames, axis=0)
    smile = np.sin(np.pi * t[..., 0]) * 0.1
    frames[:, pts.right_lip_corner, 0] -= smile[:, 0]
    frames[:, pts.left_lip_corner, 0] += smile[:, 0]
    iod = 60.0
    center = (
        np.array([width / 2, height / 2, 0.0])
        + np.concatenate([rng.normal(0, 3, (n_frames, 2)), np.zeros((n_frames, 1))], axis=1)[
            :, None, :
        ]
    )
    pix = frames * iod + center + rng.normal(0, 0.2, frames.shape)
    return (pix / np.array([width, height, width])).astype(np.float32)


def write_video(
    npy_dir: Path,
    file_name: str,
    arr: np.ndarray,
    *,
    fps: float | None = 25.0,
    width: int = 640,
    height: int = 480,
) -> Path:
    """``<npy_dir>/<file_name>.npy`` (+ sidecar unless fps is None, like a published file)."""
    path = Path(npy_dir) / f"{file_name}.npy"
    if fps is None:
        atomic_save_npy(path, arr)
        return path
    meta = {
        "video": file_name,
        "fps": fps,
        "source_fps": fps,
        "n_frames": len(arr),
        "width": width,
        "height": height,
        "backend": "synthetic",
        "n_landmarks": arr.shape[1],
        "face_found": [1] * len(arr),
    }
    save_landmarks(path, arr, meta)
    return path


def write_csv(path: Path, rows) -> Path:
    """labels.csv from (video, label, subject[, fps, width, height]) rows."""
    extra = len(rows[0]) > 3
    head = "video,label,subject" + (",fps,width,height" if extra else "")
    Path(path).write_text(head + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return Path(path)


def make_folder_dataset(
    root: Path,
    n_subjects: int = 6,
    per_subject: int = 4,
    n_frames: int = 24,
    n_landmarks: int = 478,
    fps: float = 25.0,
) -> Path:
    """A ``folder`` dataset: subjects s0.. with alternating labels, names with spaces."""
    rows = []
    for s in range(n_subjects):
        for j in range(per_subject):
            name = f"subj {s} clip {j}.mp4"
            arr = synth_video(n_frames + 3 * j, n_landmarks, seed=100 * s + j)
            write_video(root / "npy", name, arr, fps=fps)
            rows.append((name, (s + j) % 2, f"s{s}"))
    write_csv(root / "labels.csv", rows)
    return root


def build_table_without(late: Path, output: Path) -> None:
    """Build the D-Marker table of ``late``'s folder as it was before ``late`` (a landmark file
    with its sidecar) was added: the table lacks its row."""
    from data.dmarker_cache import build_dmarker_table

    with tempfile.TemporaryDirectory(dir=output.parent) as held:
        for f in (late, late.with_suffix(".json")):
            f.rename(Path(held) / f.name)
        build_dmarker_table(late.parent, output=output)
        for f in Path(held).iterdir():
            f.rename(late.parent / f.name)


def uva_subjects(npy_dir, n=3, fps=25.0):
    """UvA-NEMO-named landmark files of subjects 001..n, one posed and one spontaneous each."""
    for s in range(1, n + 1):
        for kind in ("deliberate", "spontaneous"):
            name = f"{s:03d}_{kind}_smile_1.mp4"
            write_video(npy_dir, name, synth_video(5, 68, seed=name_seed(name)), fps=fps)


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, except D-Marker tables (they store file
    mtimes by design), packed stores and lock files (their holder's record)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and p.name != "dmarkers.npz"
        and p.suffix != ".lock"
        and ".packed" not in p.parts
    }
