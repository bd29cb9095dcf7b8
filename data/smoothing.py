"""Tukey's compound smoother 4253H, applied twice ("4253H,twice"), vectorised over leading axes.

One pass ``S`` is: running median of 4 (values at half-frame positions), running median of 2
(re-centres them on the frames), running median of 5, running median of 3, then Hanning weights
(1/4, 1/2, 1/4). "Twice" re-smooths the residual and adds it back: ``S(x) + S(x - S(x))``
(Velleman & Hoaglin, *Applications, Basics and Computing of Exploratory Data Analysis*, 1981).

End conventions (documented because every implementation picks its own):

- running medians shrink their window symmetrically near the ends, so the first and last values
  are copied (median of 4 -> median of 2, i.e. the mean, next to each end);
- after the median of 3 the end values follow Tukey's end-point rule
  ``y[0] = median(y[0], y[1], 3 y[1] - 2 y[2])`` (and mirrored at the other end);
- Hanning leaves the two end values unchanged;
- signals with fewer than 3 frames are returned unchanged.

A straight line is a fixed point of the smoother (interior and ends), and any monotone run is
left unchanged by the median steps.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MIN_FRAMES = 3


def _window_median(windows: np.ndarray) -> np.ndarray:
    """Median over the last axis of small windows (sorting is faster than np.median here)."""
    k = windows.shape[-1]
    s = np.sort(windows, axis=-1)
    if k % 2:
        return s[..., k // 2]
    return 0.5 * (s[..., k // 2 - 1] + s[..., k // 2])


def running_median(x: np.ndarray, span: int) -> np.ndarray:
    """Running median of odd ``span`` along the last axis; windows shrink at the ends. (..., t)."""
    t = x.shape[-1]
    h = span // 2
    out = x.copy()
    if t > 2 * h:
        out[..., h : t - h] = _window_median(sliding_window_view(x, span, axis=-1))
    for r in range(1, h):  # positions whose distance to the nearer end is r use span 2r + 1
        for i in sorted({r, t - 1 - r}):
            if 0 <= i < t and min(i, t - 1 - i) == r:
                out[..., i] = _window_median(x[..., i - r : i + r + 1])
    return out


def _median_42(x: np.ndarray) -> np.ndarray:
    """Median of 4 at half positions, then median of 2 back onto the frames. (..., t), t >= 3."""
    t = x.shape[-1]
    half = np.empty(x.shape[:-1] + (t - 1,), dtype=x.dtype)  # half[j - 1] sits between j-1 and j
    half[..., 0] = 0.5 * (x[..., 0] + x[..., 1])
    half[..., -1] = 0.5 * (x[..., -2] + x[..., -1])
    if t >= 4:
        half[..., 1:-1] = _window_median(sliding_window_view(x, 4, axis=-1))
    out = x.copy()
    out[..., 1:-1] = 0.5 * (half[..., :-1] + half[..., 1:])
    return out


def _end_point_rule(y: np.ndarray) -> np.ndarray:
    """Tukey's end-point rule on both ends of (..., t), t >= 3."""
    y = y.copy()
    first = np.stack([y[..., 0], y[..., 1], 3 * y[..., 1] - 2 * y[..., 2]], axis=-1)
    last = np.stack([y[..., -1], y[..., -2], 3 * y[..., -2] - 2 * y[..., -3]], axis=-1)
    y[..., 0] = _window_median(first)
    y[..., -1] = _window_median(last)
    return y


def _hanning(y: np.ndarray) -> np.ndarray:
    out = y.copy()
    out[..., 1:-1] = 0.25 * y[..., :-2] + 0.5 * y[..., 1:-1] + 0.25 * y[..., 2:]
    return out


def smooth_4253h(x: np.ndarray) -> np.ndarray:
    """One pass of 4253H along the last axis. (..., t) -> (..., t) float64."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[-1] < MIN_FRAMES:
        return x.copy()
    y = _median_42(x)
    y = running_median(y, 5)
    y = _end_point_rule(running_median(y, 3))
    return _hanning(y)


def smooth_4253h_twice(x: np.ndarray) -> np.ndarray:
    """4253H,twice along the last axis: ``S(x) + S(x - S(x))``. (..., t) -> (..., t) float64."""
    x = np.asarray(x, dtype=np.float64)
    s = smooth_4253h(x)
    return s + smooth_4253h(x - s)
