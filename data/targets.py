"""D-Marker regression targets: per-feature standardisation fitted on the training part only.

The cache (``dmarker.py``) holds 225 raw descriptors per video on very different scales (seconds,
amplitude ratios, per-second speeds). :class:`DMarkerScaler` subtracts the mean and divides by the
standard deviation of each descriptor over the training videos of a fold; features that are
constant there (e.g. the cheek block of dlib-68 landmarks) get std 1, so they stay 0 - mean.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class DMarkerScaler:
    """Standardises D-Marker vectors (225,) with training-part statistics."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)

    @classmethod
    def fit(cls, table, train_names: Iterable[str]) -> DMarkerScaler:
        """Mean and std (ddof 0) over the training names found in ``table`` (a DMarkerTable)."""
        names = [n for n in train_names if n in table]
        if not names:
            raise ValueError(
                "no training video is in the D-Marker table; rebuild it with dmarker.py"
            )
        feats = np.stack([table.get(n) for n in names]).astype(np.float64)  # (n, d)
        std = feats.std(0)
        return cls(feats.mean(0), np.where(std > 1e-8, std, 1.0))

    def transform(self, features: np.ndarray) -> np.ndarray:
        """(..., d) raw -> (..., d) standardised float32."""
        return ((np.asarray(features, dtype=np.float64) - self.mean) / self.std).astype(np.float32)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Standardised (..., d) -> raw descriptor units."""
        return (np.asarray(z, dtype=np.float64) * self.std + self.mean).astype(np.float32)

    def targets(self, table, names: Iterable[str]) -> dict[str, np.ndarray]:
        """Standardised (d,) float32 per name; names missing from the table are left out."""
        return {n: self.transform(table.get(n)) for n in names if n in table}

    def state_dict(self) -> dict[str, list[float]]:
        """For checkpoints: plain lists."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_state_dict(cls, state: dict) -> DMarkerScaler:
        return cls(np.asarray(state["mean"]), np.asarray(state["std"]))
