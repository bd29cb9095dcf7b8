"""D-Marker regression targets: per-feature standardisation fitted on the training part only.

The D-Marker table (``dmarker.py``) holds 225 raw descriptors per video on very different scales
(seconds, amplitude ratios, per-second speeds). :class:`DMarkerScaler` subtracts the mean and
divides by the standard deviation of each descriptor over the training videos of a fold;
features that are constant there (e.g. the cheek block of dlib-68 landmarks) get std 1, so they
stay 0 - mean. Videos whose every frame was filled by interpolation (status ``no_face``: all-zero
descriptors) are neither fitted nor used as targets.

Augmentation changes what the descriptors of a clip's video would be. A mirrored clip takes the
D-Markers of the video's mirror image, which the table stores (computed, not derived: both
eyelids are measured in the right eye's width, so a mirror rescales the eyelid signal and moves
its rises and falls, beyond the sign of the left/right differences). A playback speed s leaves 1/s
of the frames at the same frame rate, so it divides durations and the amplitude totals (sums over
frames) by s, multiplies speeds by s and accelerations by s^2, and leaves means, ratios and the net
amplitude-duration ratio (a sum times fps over a frame count) as they are:
:meth:`DMarkerScaler.at_speed` applies that to a standardised target.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

from data.dmarker import FEATURE_NAMES


class DMarkerScaler:
    """Standardises D-Marker vectors (225,) with training-part statistics."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, feature_names=FEATURE_NAMES):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        kind = np.array([_kind(n) for n in feature_names])
        self._speed_power = np.select(
            [kind == "per_frame_sum", kind == "speed", kind == "accel"], [-1.0, 1.0, 2.0], 0.0
        )  # (d,): raw value scales by speed ** power

    @classmethod
    def fit(cls, table, train_names: Iterable[str]) -> DMarkerScaler:
        """Mean and std (ddof 0) over the training names found in ``table`` (a DMarkerTable)."""
        names = [n for n in train_names if measured(table, n)]
        if not names:
            raise ValueError(
                "no training video is in the D-Marker table; rebuild it with dmarker.py"
            )
        feats = np.stack([table.get(n) for n in names]).astype(np.float64)  # (n, d)
        std = feats.std(0)
        return cls(feats.mean(0), np.where(std > 1e-8, std, 1.0), table.feature_names)

    def transform(self, features: np.ndarray) -> np.ndarray:
        """(..., d) raw -> (..., d) standardised float32."""
        return ((np.asarray(features, dtype=np.float64) - self.mean) / self.std).astype(np.float32)

    def targets(self, table, names: Iterable[str]) -> dict[str, np.ndarray]:
        """Standardised (2, d) float32 per name: the video's and its mirror image's D-Markers.
        Names missing from the table, or with no face in any frame, are left out (their clips
        get ``has_dmarker`` False)."""
        return {
            n: self.transform(np.stack([table.get(n), table.get(n, mirrored=True)]))
            for n in names
            if measured(table, n)
        }

    def at_speed(self, z: np.ndarray, speed: float) -> np.ndarray:
        """The standardised target (d,) of the video played ``speed`` x faster."""
        raw = np.asarray(z, dtype=np.float64) * self.std + self.mean
        return self.transform(raw * speed**self._speed_power)


def targets_digest(targets: dict[str, np.ndarray] | None) -> str | None:
    """SHA-256 of standardised targets (names and values; None without targets): a resumed fit
    must train on the targets it started with."""
    if targets is None:
        return None
    h = hashlib.sha256()
    for name in sorted(targets):
        h.update(name.encode())
        h.update(np.ascontiguousarray(targets[name], dtype=np.float32).tobytes())
    return h.hexdigest()


def table_digest(table, names: Iterable[str]) -> str:
    """SHA-256 of a D-Marker table's rows (descriptors and mirror image) for ``names`` in it: a
    finished fold that ``--resume`` keeps must have been trained and tested on these rows."""
    return targets_digest(
        {n: np.stack([table.get(n), table.get(n, mirrored=True)]) for n in names if n in table}
    )


#: Descriptors that add up frames: durations (frame counts / fps) and amplitude totals.
PER_FRAME_SUMS = (
    "duration_inc",
    "duration_dec",
    "duration",
    "amplitude_total_inc",
    "amplitude_total_dec",
    "amplitude_net",
)


def _kind(name: str) -> str:
    """How a descriptor responds to a playback speed: per_frame_sum | speed | accel | other."""
    desc = name.split("_", 2)[2]  # <region>_<phase>_<descriptor>
    if desc in PER_FRAME_SUMS:
        return "per_frame_sum"
    if desc.startswith("speed_"):
        return "speed"
    return "accel" if desc.startswith("accel_") else "other"


def measured(table, name: str) -> bool:
    """``name`` is in the D-Marker table and had a face in some frame."""
    if name not in table:
        return False
    return not table.status or table.status[table.index(name)] != "no_face"
