"""Time the D-Markers of a UvA-NEMO-sized dataset: 1240 synthetic videos of 250 frames.

    python benchmarks/dmarker_bench.py [--videos 1240] [--frames 250] [--landmarks 478] [--files]

Prints the compute time of ``video_descriptors`` on in-memory arrays (split into signals,
smoothing and phases + descriptors) and, with ``--files``, the end-to-end time of
``build_dmarker_table`` on landmark files in a temporary folder: a cold build, then a rerun that
reuses the cache. The videos are smiles with random timing, amplitude, head-pose drift and
tracking jitter; a pool of distinct videos is cycled to keep memory small.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.dmarker import amplitude_signals, phase_descriptors, video_descriptors
from data.dmarker_cache import build_dmarker_table
from data.io import save_landmarks
from data.mesh import points_for
from data.pose import rotation_matrix
from data.smile_phases import find_phases
from data.smoothing import smooth_4253h_twice

W, H, FPS = 1920, 1080, 50.0
# D-Marker points of a frontal face, pixels around the eye midpoint (x right, y down, z away)
FACE = {
    "right_eye_outer": (-90, 0, 10), "right_upper_lid": (-60, -16, -6),
    "right_eye_inner": (-30, 0, 0), "left_eye_inner": (30, 0, 0),
    "left_upper_lid": (60, -16, -6), "left_eye_outer": (90, 0, 10),
    "right_cheek": (-84, 80, 0), "left_cheek": (84, 80, 0), "nose_tip": (0, 90, -60),
    "right_lip_corner": (-50, 150, -10), "left_lip_corner": (50, 150, -10),
}  # fmt: skip


def synthetic_smile(rng: np.random.Generator, t: int, n_landmarks: int) -> np.ndarray:
    """One smile video (t, v, 3) in pixels with random timing, amplitude, pose drift, jitter."""
    p = points_for(n_landmarks)
    face = rng.normal(0, 80, (n_landmarks, 3))
    for name, xyz in FACE.items():
        if getattr(p, name) is not None:
            face[getattr(p, name)] = xyz
    start, up, hold, down = (rng.uniform(0.05, 0.3) * t for _ in range(4))
    f = np.arange(t)
    smile = np.clip((f - start) / up, 0, 1) - np.clip((f - start - up - hold) / down, 0, 1)
    video = np.repeat(face[None], t, axis=0)
    amp = rng.uniform(8, 30)
    video[:, p.right_lip_corner, 0] -= amp * smile
    video[:, p.left_lip_corner, 0] += amp * rng.uniform(0.7, 1.3) * smile
    video[:, [p.right_lip_corner, p.left_lip_corner], 1] -= 0.5 * amp * smile[:, None]
    video[:, [p.right_upper_lid, p.left_upper_lid], 1] += rng.uniform(0, 5) * smile[:, None]
    angles = np.cumsum(rng.normal(0, 0.004, (t, 3)), axis=0) + rng.uniform(-0.3, 0.3, 3)
    rots = np.stack([rotation_matrix(*a) for a in angles])
    video = np.einsum("tij,tvj->tvi", rots, video) + [W / 2, H / 2, 0]
    return video + rng.normal(0, 0.5, video.shape)


def bench_compute(pool: list[np.ndarray], n_videos: int) -> None:
    t0 = time.perf_counter()
    for i in range(n_videos):
        video_descriptors(pool[i % len(pool)], FPS)
    total = time.perf_counter() - t0
    print(f"compute: {n_videos} videos in {total:.2f} s ({1e3 * total / n_videos:.2f} ms/video)")
    parts = {"signals": 0.0, "smoothing": 0.0, "phases+descriptors": 0.0}
    for video in pool:
        t0 = time.perf_counter()
        raw, _ = amplitude_signals(video)
        t1 = time.perf_counter()
        sig = smooth_4253h_twice(raw.T).T
        t2 = time.perf_counter()
        phase_descriptors(sig, find_phases(sig[:, 0])[0], FPS)
        t3 = time.perf_counter()
        parts["signals"] += t1 - t0
        parts["smoothing"] += t2 - t1
        parts["phases+descriptors"] += t3 - t2
    split = ", ".join(f"{k} {1e3 * v / len(pool):.2f}" for k, v in parts.items())
    print(f"  per video (ms): {split}")


def bench_files(pool: list[np.ndarray], n_videos: int) -> None:
    with tempfile.TemporaryDirectory(prefix="dmarker_bench_") as tmp:
        folder = Path(tmp)
        for i in range(n_videos):
            arr = (pool[i % len(pool)] / [W, H, W]).astype(np.float32)
            meta = {"video": f"{i:04d}.mp4", "fps": FPS, "width": W, "height": H,
                    "n_frames": len(arr), "face_found": [1] * len(arr)}  # fmt: skip
            save_landmarks(folder / f"{i:04d}.mp4.npy", arr, meta)
        t0 = time.perf_counter()
        table = build_dmarker_table(folder)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = build_dmarker_table(folder)
        warm = time.perf_counter() - t0
        assert len(table) == n_videos and again.reused == n_videos and not table.errors
        size = table.path.stat().st_size / 2**20
        print(f"files: cold build {cold:.2f} s (read + compute + write {size:.0f} MiB table), "
              f"rerun {warm:.2f} s (all {n_videos} reused)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=int, default=1240)
    ap.add_argument("--frames", type=int, default=250)
    ap.add_argument("--landmarks", type=int, default=478, choices=(478, 468, 68))
    ap.add_argument("--pool", type=int, default=31, help="distinct videos, cycled")
    ap.add_argument("--files", action="store_true", help="also time the table build from files")
    args = ap.parse_args(argv)
    for flag in ("videos", "frames", "pool"):
        if getattr(args, flag) < 1:
            ap.error(f"--{flag}: at least 1")
    rng = np.random.default_rng(0)
    pool = [synthetic_smile(rng, args.frames, args.landmarks) for _ in range(args.pool)]
    print(f"{args.videos} videos x {args.frames} frames x {args.landmarks} landmarks")
    bench_compute(pool, args.videos)
    if args.files:
        bench_files(pool, args.videos)
    return 0


if __name__ == "__main__":
    sys.exit(main())
