"""Simple smile measurements on landmark tracks, to check the demo's classes from the landmarks.

Deliberately independent of the D-Marker code: every frame is similarity-aligned to the first on
rigid points, then a few signals are read off in inter-ocular units.
"""

from __future__ import annotations

import numpy as np

from data.demo_geometry import eye_centres
from data.mesh import MEDIAPIPE
from data.pose import align_to

#: Names of :func:`measure_smile`'s values.
MEASURES = (
    "lip_amplitude",
    "rise_time_s",
    "onset_speed",
    "asymmetry",
    "eye_narrowing",
    "eye_lag_s",
)


def _smooth(x: np.ndarray, n: int) -> np.ndarray:
    """Centred moving average of width ``n`` (>= 1) frames with edge padding. (T,) -> (T,)."""
    pad = np.pad(x, (n // 2, n - 1 - n // 2), mode="edge")
    return np.convolve(pad, np.ones(n) / n, mode="valid")


def _running_median(x: np.ndarray, n: int) -> np.ndarray:
    """Centred running median of width ``n`` frames (removes blinks). (T,) -> (T,)."""
    pad = np.pad(x, (n // 2, n - 1 - n // 2), mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(pad, n), axis=1)


def _crossing(x: np.ndarray, level: float) -> int:
    """First frame where ``x`` reaches ``level``."""
    return int(np.argmax(x >= level))


def _lag(a: np.ndarray, b: np.ndarray, max_lag: int) -> int:
    """Shift in frames (|shift| <= max_lag) that best correlates b(t + shift) with a(t)."""
    a, b = a - a.mean(), b - b.mean()
    n = len(a)
    shifts = np.arange(-min(max_lag, n - 2), min(max_lag, n - 2) + 1)
    score = [
        np.dot(a[max(0, -k) : n - max(0, k)], b[max(0, k) : n - max(0, -k)]) / (n - abs(k))
        for k in shifts
    ]
    return int(shifts[int(np.argmax(score))])


def measure_smile(landmarks: np.ndarray, fps: float, stable) -> dict[str, float]:
    """Smile measurements of one video.

    landmarks (T, V, 3) in isotropic pixels (MediaPipe layout); ``stable``: rigid point indices
    for the alignment. Returns, in IOD units and seconds:
    lip_amplitude (peak rise of the mean lip-corner distance from the neutral mouth centre),
    rise_time_s (10% -> 90% of that peak), onset_speed (its top speed, IOD/s), asymmetry
    (|sum(left - right)| / sum(left + right) over the smile), eye_narrowing (relative loss of
    eyelid opening at the lip apex), eye_lag_s (delay of the eyelid narrowing behind the lip signal
    by cross-correlation, within +-0.6 s; NaN when the eyes narrow by less than 3% at the apex).
    """
    p = MEDIAPIPE
    x = align_to(landmarks, np.asarray(landmarks[0], dtype=np.float64), stable)
    right_eye, left_eye = eye_centres(x[0])
    x = x / np.linalg.norm(left_eye - right_eye)
    base = max(2, int(0.2 * fps))
    mouth0 = (x[:base, p.right_lip_corner] + x[:base, p.left_lip_corner]).mean(0) / 2
    right = np.linalg.norm(x[:, p.right_lip_corner] - mouth0, axis=-1)
    left = np.linalg.norm(x[:, p.left_lip_corner] - mouth0, axis=-1)
    k = max(1, int(round(0.1 * fps)))
    lip = _smooth((right + left) / 2, k)
    lip = lip - np.median(lip[:base])
    peak = float(lip.max())
    rise_start, rise_end = _crossing(lip, 0.1 * peak), _crossing(lip, 0.9 * peak)
    speed = np.gradient(lip) * fps
    on = lip > 0.5 * peak
    asym = abs((left - right)[on].sum()) / (left + right)[on].sum()

    lid = (
        np.linalg.norm(x[:, 159] - x[:, 145], axis=-1)
        + np.linalg.norm(x[:, 386] - x[:, 374], axis=-1)
    ) / 2
    lid = _running_median(lid, max(3, int(0.35 * fps)) | 1)
    lid0 = np.median(lid[:base])
    narrowing = (lid0 - lid) / lid0
    at_apex = float(np.median(narrowing[lip > 0.8 * peak]))
    lag = _lag(lip, narrowing, int(0.6 * fps)) / fps if at_apex > 0.03 else np.nan
    return {
        "lip_amplitude": peak,
        "rise_time_s": (rise_end - rise_start) / fps,
        "onset_speed": float(speed[: rise_end + 1].max()),
        "asymmetry": float(asym),
        "eye_narrowing": at_apex,
        "eye_lag_s": float(lag),
    }
