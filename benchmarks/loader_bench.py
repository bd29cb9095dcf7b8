"""Data-loading speed: open a UvA-NEMO-sized dataset and stream training clips through a DataLoader.

Writes a synthetic dataset (default 1240 videos x 250 frames x 478 points, UvA-like names and
sidecars at 50 fps, ~1.8 GB) to a temporary folder, then prints: the time to open it reading files
one by one, to build the packed memory-mapped store, to open it packed, a full read pass, and
training clips/s (window, normalisation, augmentation, collation) through a DataLoader for each
worker count, plus test windows/s. Figures are warm page cache.

    python benchmarks/loader_bench.py                       # full size
    python benchmarks/loader_bench.py --videos 200 --workers 0 2 --batches 30
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.clips import ClipConfig, TestWindows, TrainClips  # noqa: E402
from data.datasets import open_dataset  # noqa: E402
from data.io import save_landmarks  # noqa: E402
from data.transforms import AugmentConfig, build_augment  # noqa: E402


def write_dataset(root: Path, n_videos: int, n_frames: int, n_landmarks: int) -> None:
    """UvA-like landmark files with sidecars (1920x1080 @ 50 fps), 4 videos per subject."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.7, (n_landmarks, 3)).astype(np.float32)
    drift = rng.normal(0, 1e-3, (n_frames, 1, 3)).cumsum(0).astype(np.float32)
    for i in range(n_videos):
        kind = "deliberate" if i % 2 == 0 else "spontaneous"
        name = f"{i // 4 + 1:03d}_{kind}_smile_{i % 4 + 1}.mp4"
        arr = base + drift + np.float32(i * 1e-4)
        meta = {"video": name, "fps": 50.0, "n_frames": n_frames, "width": 1920, "height": 1080}
        save_landmarks(root / "npy" / f"{name}.npy", arr, meta)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def clips_per_second(dataset, names, cfg, workers: int, batch_size: int, n_batches: int) -> float:
    clips = TrainClips(
        dataset,
        names,
        cfg,
        augment=build_augment(AugmentConfig(), dataset.n_landmarks, cfg.normalize),
    )
    if len(clips) < batch_size:  # drop_last would leave no batch
        raise SystemExit(f"--batch-size {batch_size}: more than the {len(clips)} training clips")
    loader = torch.utils.data.DataLoader(
        clips,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        drop_last=True,
        persistent_workers=workers > 0,
    )
    it = iter(loader)
    next(it)  # start-up (workers forking) not counted
    t0, seen = time.perf_counter(), 0
    for _ in range(n_batches):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        seen += len(batch["label"])
    return seen / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=1240)
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--landmarks", type=int, default=478)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=40, help="timed batches per worker count")
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--root", type=Path, help="keep the synthetic dataset here (default: temp)")
    args = parser.parse_args(argv)
    if args.videos < 8:  # subject-independent folds need two subjects (4 videos each)
        parser.error("--videos: at least 8 (two subjects of 4 videos)")
    for flag in ("frames", "landmarks", "batch_size", "batches", "window"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')}: at least 1")
    if min(args.workers) < 0:
        parser.error("--workers: 0 (in this process) or more")

    root = args.root or Path(tempfile.mkdtemp(prefix="loader_bench_"))
    try:
        if not (root / "npy").is_dir():
            _, t = timed(lambda: write_dataset(root, args.videos, args.frames, args.landmarks))
            print(
                f"wrote {args.videos} videos x {args.frames} frames x {args.landmarks} points "
                f"in {t:.1f} s (not part of loading)"
            )
        size = sum(f.stat().st_size for f in (root / "npy").glob("*.npy")) / 1e9
        ds, t = timed(lambda: open_dataset("uva", root, pack=False))
        print(f"open, files one by one (headers + sidecars, folds made): {t:6.2f} s  {ds}")
        shutil.rmtree(root / "npy" / ".packed", ignore_errors=True)
        _, t = timed(lambda: open_dataset("uva", root))
        print(f"open + build packed store ({size:.2f} GB, once):          {t:6.2f} s")
        ds, t = timed(lambda: open_dataset("uva", root))
        print(f"open, packed memory-mapped store:                        {t:6.2f} s")
        _, t = timed(lambda: [np.array(ds.landmarks(n)) for n in ds.videos])
        print(
            f"copy every video once (isotropic float32):               {t:6.2f} s "
            f"({size / t:.1f} GB/s)"
        )
        cfg = ClipConfig(window=args.window, target_fps=25.0, normalize="face")
        names = list(ds.fold(1).train)
        for w in args.workers:
            rate = clips_per_second(ds, names, cfg, w, args.batch_size, args.batches)
            print(
                f"training clips/s, batch {args.batch_size}, W {args.window}, augmented, "
                f"{w} workers: {rate:8.0f}"
            )
        tw = TestWindows(ds, list(ds.fold(1).test), cfg)
        loader = torch.utils.data.DataLoader(tw, batch_size=64, num_workers=0)
        _, t = timed(lambda: sum(len(b["index"]) for b in loader))
        print(
            f"test windows/s ({len(tw)} windows of {len(ds.fold(1).test)} videos, 0 workers): "
            f"{len(tw) / t:8.0f}"
        )
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
