"""Compute the D-Markers (Duchenne-marker descriptors) of every landmark file in a folder.

    python dmarker.py --landmarks DIR [--output FILE] [--fps F] [--frame-size WxH]
                      [--labels CSV] [--eyelid paper|vertical] [--phases longest|largest] [--force]
                      [--plot VIDEO_NAME]

Writes one table per dataset (default ``DIR/dmarkers.npz``, see ``data/dmarker_table.py``) with
225 descriptors per video (``data.dmarker.FEATURE_NAMES``), the per-frame signals and the phase
boundaries. A rerun reuses every video whose landmark file and sidecar are unchanged. Files that
fail are listed at the end; the others are still computed; the exit status is 1 if any failed,
2 when no table was written (arguments refused, or the table could not be saved).
``--plot NAME`` also draws that video's three signals with the phases shaded into
``<table folder>/<NAME>.dmarkers.png``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import numpy as np

from data.dmarker import (
    DEFAULT_EYELID,
    EYELID_MODES,
    PHASES,
    REGIONS,
)
from data.dmarker_cache import build_dmarker_table
from data.dmarker_table import CACHE_NAME, DMarkerTable, VideoNames, video_key
from data.files import atomic_write, print_names_as_given, run_cli, temp_prefix
from data.io import MIN_FPS, landmark_files
from data.smile_phases import DEFAULT_PHASE_RULE, PHASE_RULES
from data.subjects import read_labels_csv

PHASE_COLOURS = {"onset": "tab:green", "apex": "tab:orange", "offset": "tab:purple"}


def plot_video(table: DMarkerTable, name: str, path: str | Path) -> Path:
    """PNG of one video's lip, eyelid and cheek signals over time, phases shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    i = table.index(name)
    res = table.result(name)
    fps = float(table.fps[i])
    t = np.arange(len(res.signals)) / fps
    bounds = np.asarray(res.phases) / fps
    fig, axes = plt.subplots(len(REGIONS), 1, sharex=True, figsize=(9, 7.5))
    for k, (ax, region) in enumerate(zip(axes, REGIONS, strict=True)):
        c = 3 * k
        for p, phase in enumerate(PHASES):
            if bounds[p + 1] > bounds[p]:
                ax.axvspan(bounds[p], bounds[p + 1], color=PHASE_COLOURS[phase], alpha=0.18,
                           label=phase)  # fmt: skip
        if region == "cheek" and not res.cheek_available:
            ax.text(0.5, 0.5, "no cheek points in this landmark set (dlib-68)",
                    transform=ax.transAxes, ha="center", va="center")  # fmt: skip
        else:
            ax.plot(t, res.raw_signals[:, c], color="0.6", lw=0.8, label="raw")
            ax.plot(t, res.signals[:, c + 1], color="tab:blue", lw=1, label="right half")
            ax.plot(t, res.signals[:, c + 2], color="tab:red", lw=1, label="left half")
            ax.plot(t, res.signals[:, c], color="black", lw=2, label="smoothed")
        ax.set_ylabel(f"D_{region}")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=8, ncol=4)
    axes[-1].set_xlabel("time (s)")
    name = os.fsencode(table.names[i]).decode("utf-8", "replace")  # a name not UTF-8 shows as such
    fig.suptitle(f"{name}: {res.status}, {fps:g} fps, {len(t)} frames")
    fig.tight_layout()
    path = atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return path


def _frame_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if not m or int(m[1]) == 0 or int(m[2]) == 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 1920x1080")
    return int(m[1]), int(m[2])


def _fps(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value >= MIN_FPS):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a frame rate of at least {MIN_FPS:g}, e.g. 50"
        )
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python dmarker.py", description=__doc__.split("\n")[0])
    ap.add_argument(
        "--landmarks",
        type=Path,
        required=True,
        help="folder of <video>.npy landmark files (+ <video>.json sidecars)",
    )
    ap.add_argument("--output", type=Path, help=f"table file (default: LANDMARKS/{CACHE_NAME})")
    ap.add_argument(
        "--fps", type=_fps, help="frame rate for files without a sidecar (a sidecar's value wins)"
    )
    ap.add_argument(
        "--frame-size",
        type=_frame_size,
        metavar="WxH",
        help="frame size in pixels for files without a sidecar, e.g. 1920x1080",
    )
    ap.add_argument(
        "--labels",
        type=Path,
        metavar="CSV",
        help="a dataset's labels.csv: its fps,width,height columns give each file without a "
        "sidecar its rate and size (before --fps and --frame-size), as training reads them",
    )
    ap.add_argument(
        "--eyelid",
        choices=EYELID_MODES,
        default=DEFAULT_EYELID,
        help="eyelid distance: the paper's signed 3-D distance or the signed "
        "height (default: %(default)s)",
    )
    ap.add_argument(
        "--phases",
        choices=PHASE_RULES,
        default=DEFAULT_PHASE_RULE,
        help="onset/offset = the longest (paper) or largest-amplitude rise/fall "
        "(default: %(default)s)",
    )
    ap.add_argument("--force", action="store_true", help="recompute every video")
    ap.add_argument(
        "--plot",
        metavar="VIDEO_NAME",
        help="also draw this video's signals and phases into a PNG beside the table",
    )
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap.parse_args(argv)


def check_plot_name(landmarks: Path, name: str) -> None:
    """``--plot NAME`` must name a landmark file of the folder (matched as the table matches
    names): a KeyError before the table is built, not after."""
    names = VideoNames([video_key(p.name) for p in landmark_files(landmarks)])
    if names.names and names.row(name) is None:
        close = names.closest(name)
        some = ", ".join(names.names[:3]) + (", ..." if len(names.names) > 3 else "")
        raise KeyError(
            f"{name!r} names no single landmark file in {landmarks}"
            + (f"; closest: {', '.join(close)}" if close else f"; it holds {some}")
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print_names_as_given()
    if args.plot:
        try:
            check_plot_name(args.landmarks, args.plot)
        except KeyError as e:
            print(f"error: --plot: {e.args[0]}", file=sys.stderr)
            return 2
    try:
        if args.labels and not args.labels.is_file():
            raise ValueError(f"{args.labels}: no such file; --labels takes a dataset's labels.csv")
        labels = read_labels_csv(args.labels) if args.labels else None
        if labels is not None and not labels.meta:
            raise ValueError(
                f"{args.labels}: no fps, width or height in it; --labels takes a labels.csv "
                "with those columns (video,label,subject,fps,width,height)"
            )
        table = build_dmarker_table(
            args.landmarks, args.output, fps=args.fps, frame_size=args.frame_size, labels=labels,
            eyelid=args.eyelid, phase_rule=args.phases, force=args.force, progress=not args.quiet,
        )  # fmt: skip
    except (OSError, ValueError) as e:  # OSError: an unwritable --output, for one
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the table is written once, whole, at the end
        print("\ninterrupted: nothing written (a previous table is kept)", file=sys.stderr)
        return 130
    computed = len(table) - table.reused
    if table.path is None:
        print("no video's D-Markers computed: nothing written", file=sys.stderr)
    else:
        print(f"D-Markers of {len(table)} videos -> {table.path} "
              f"(computed {computed}, reused {table.reused})")  # fmt: skip
    own = temp_prefix(table.path) if table.path else None  # a killed dmarker.py's are its own
    writing = [
        t for t in Path(args.landmarks).glob(".*.tmp") if not own or not t.name.startswith(own)
    ]
    if writing:
        print(
            f"note: {args.landmarks} holds {len(writing)} temp file(s) of landmark files being "
            "written (extract_landmarks.py running there, or stopped): the table has the files "
            "finished so far; run dmarker.py again once the extraction has finished"
        )
    counts = ", ".join(f"{k} {v}" for k, v in sorted(table.status_counts().items()))
    if counts:
        print(f"status: {counts}")
    no_cheeks = int((~table.cheek_available).sum())
    if no_cheeks:
        print(f"{no_cheeks} videos have no cheek points (dlib-68): cheek block filled with 0")
    rc = 0
    if args.plot:
        try:
            name = table.names[table.index(args.plot)]
            png = plot_video(table, name, Path(table.path).parent / f"{name}.dmarkers.png")
            print(f"plot: {png}")
        except KeyError as e:
            print(f"error: --plot: {e.args[0]}", file=sys.stderr)
            rc = 1
        except KeyboardInterrupt:
            print(f"\ninterrupted: no plot; the table is written ({table.path})", file=sys.stderr)
            return 130
    if table.errors:
        print(f"failed ({len(table.errors)}):", file=sys.stderr)
        for name, reason in table.errors.items():
            print(f"  {name}: {reason}", file=sys.stderr)
        rc = 1
    return rc


if __name__ == "__main__":
    run_cli(main)
