"""Frame rate and size of a landmark file: its sidecar, then labels.csv columns, then the dataset's
defaults (published landmark files carry no metadata)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

from data.io import MIN_FPS, check_sidecar_rows, check_whole_video, load_meta
from data.subjects import LabelsTable


@dataclass(frozen=True)
class FrameDefaults:
    """Frame size (pixels) and rate (frames/s) assumed for landmark files without a sidecar."""

    width: int
    height: int
    fps: float


#: Published landmark files carry no metadata. UvA-NEMO: 1920x1080 @ 50 (documented by the
#: dataset). BBC 1280x720 @ 25, MMI 720x576 @ 25, SPOS 640x480 @ 25: assumptions; pass files
#: with sidecars (our extraction writes them) or fps/width/height columns in labels.csv to override.
DATASET_DEFAULTS = {
    "uva": FrameDefaults(1920, 1080, 50.0),
    "bbc": FrameDefaults(1280, 720, 25.0),
    "mmi": FrameDefaults(720, 576, 25.0),
    "spos": FrameDefaults(640, 480, 25.0),
}


def frame_info(file: Path, sources: list[dict | None], kind: str, why: str, fix: str) -> dict:
    """{"fps", "width", "height"}: per key the first source (sidecar, labels.csv row) that has it,
    else ``DATASET_DEFAULTS[kind]``; nowhere: ValueError "<file>: no <key> (<why>); <fix>"."""
    default = DATASET_DEFAULTS.get(kind)
    out = {}
    for key in ("fps", "width", "height"):
        value = next((s[key] for s in sources if s and s.get(key)), None) or (
            getattr(default, key) if default else None
        )
        if value is None:
            raise ValueError(f"{file}: no {key} ({why}); {fix}")
        least = MIN_FPS if key == "fps" else 1
        if isinstance(value, bool) or not isinstance(value, Real) or not least <= value < math.inf:
            raise ValueError(
                f"{file}: {key} is {value!r}, not a finite number of at least {least:g}; {fix}"
            )
        out[key] = value
    return out


def video_frame_info(
    kind: str, name: str, file: Path, rows: int, table: LabelsTable | None
) -> tuple[float, int, int, tuple[str, ...]]:
    """(fps, width, height, assumed): sidecar, then labels.csv columns, then DATASET_DEFAULTS
    (``assumed``: the keys whose value came from there). The sidecar must count the file's
    ``rows`` and hold a whole video."""
    meta = load_meta(file) or {}
    check_sidecar_rows(file, meta, rows)
    check_whole_video(file, meta)
    row = table.row(name) if table is not None else None
    csv_meta = table.meta.get(row, {}) if row is not None else {}
    info = frame_info(
        file,
        [meta, csv_meta],
        kind,
        "no sidecar .json and no such column in labels.csv",
        "re-extract with extract_landmarks.py or add fps,width,height to labels.csv",
    )
    assumed = tuple(k for k in info if not (meta.get(k) or csv_meta.get(k)))
    return float(info["fps"]), int(info["width"]), int(info["height"]), assumed
