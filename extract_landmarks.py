"""Video -> per-frame face landmarks, one ``<output>/<name>.npy`` (T, V, 3) + ``.json`` per video.

    python extract_landmarks.py VIDEO_OR_FOLDER [--output DIR] [--backend mediapipe|dlib]
    python extract_landmarks.py ROOT --dataset uva|bbc|mmi|spos|folder [--workers N] [--plot]

Exit status: 0 when every output was written, 1 when a video failed or a contact sheet could not
be drawn (the summary says which and why), 2 for bad arguments or input, 130 when interrupted.
See README.md for the output format.
"""

from __future__ import annotations

import argparse
import math
import sys

from data.extract_batch import Settings, format_summary, run_batch, with_plot_default
from data.extract_jobs import check_plot, check_targets, make_jobs
from data.extraction import BACKENDS, check_backend
from data.files import print_names_as_given, run_cli
from data.io import MIN_FPS
from data.video_sources import DATASETS, missing_label_note


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if not (math.isfinite(value) and value > 0):  # nan and inf too
            raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
        return value

    return parse


def _frame_rate(text: str) -> float:
    value = _positive(float)(text)
    if value < MIN_FPS:
        raise argparse.ArgumentTypeError(
            f"must be a frame rate of at least {MIN_FPS:g}, got {text}"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Extract per-frame face landmarks from videos or frame-image folders.",
    )
    p.add_argument(
        "input",
        help="a video file, a folder of videos (searched recursively), a folder of frame images, "
        "or a dataset root with --dataset",
    )
    p.add_argument(
        "--dataset",
        choices=DATASETS,
        help="walk this dataset's published layout under INPUT and name outputs as the published "
        "landmark files (uva, bbc: <video>.mp4.npy; mmi: <session>.npy; spos: <clip>.npy)",
    )
    p.add_argument("--output", help="output folder (default: <dataset root or input folder>/npy)")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="mediapipe",
        help="mediapipe: 478 points with depth (default); dlib: 68 points, z = 0",
    )
    p.add_argument(
        "--workers",
        type=_positive(int),
        help="worker processes (default: all cores; 1 runs in this process)",
    )
    p.add_argument(
        "--stride",
        type=_positive(int),
        default=1,
        help="keep every K-th frame (the sidecar's fps is divided by K)",
    )
    p.add_argument(
        "--max-frames",
        type=_positive(int),
        help="stop after this many kept frames per video (quick runs)",
    )
    p.add_argument(
        "--frame-fps",
        type=_frame_rate,
        help="frame rate of frame-image folders, which carry none (default 25, SPOS); videos "
        "keep their own",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="redo videos whose outputs are complete (default: skip them)",
    )
    p.add_argument(
        "--plot",
        nargs="?",
        const="",
        metavar="PATH",
        help="also write a PNG contact sheet of the mesh on a few frames per video: "
        "next to the outputs (no PATH), into folder PATH, or to PATH.png (one video)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print_names_as_given()
    try:
        check_backend(args.backend)
        jobs, output = make_jobs(args.input, args.dataset, args.output)
        if args.frame_fps is not None and not any(j.source.is_dir() for j in jobs):
            raise ValueError(
                f"--frame-fps {args.frame_fps:g}: {args.input} holds no frame-image folder, and a "
                "video keeps the rate its file records; leave --frame-fps out"
            )
        rate = (args.frame_fps or Settings.frame_fps) / args.stride
        if rate < MIN_FPS and any(j.source.is_dir() for j in jobs):
            raise ValueError(
                f"--stride {args.stride}: frame folders at {rate * args.stride:g} fps would keep "
                f"{rate:g} rows per second, below {MIN_FPS:g}; use a smaller --stride"
            )
        settings = Settings(
            backend=args.backend,
            stride=args.stride,
            max_frames=args.max_frames,
            frame_fps=args.frame_fps or Settings.frame_fps,
            overwrite=args.overwrite,
        )
        settings = with_plot_default(settings, args.plot, output, len(jobs))
        check_targets(jobs, output, settings.plot)
        if args.dataset in (None, "folder", "spos"):  # walks that take image folders for clips
            check_plot(args.input, output, settings.plot)
    except (OSError, ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        results = run_batch(jobs, settings, workers=args.workers, progress=not args.quiet)
    except KeyboardInterrupt:
        print("interrupted: finished outputs are kept, rerun to resume", file=sys.stderr)
        return 130
    print(format_summary(results, output))
    if note := missing_label_note(args.dataset, args.input):
        print(f"note: {note}", file=sys.stderr)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    run_cli(main)
