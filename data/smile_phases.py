"""Smile phases from the D_lip signal: onset (a rise), apex, offset (a fall), shared by all three
D-Marker regions (Dibeklioglu et al.; ``data.dmarker`` step 4)."""

from __future__ import annotations

import numpy as np

from data.smoothing import MIN_FRAMES

#: Which rising (falling) run is the onset (offset): "longest" = most frames (the paper);
#: "largest" = biggest amplitude change (robust to long shallow drifts, see README).
PHASE_RULES = ("longest", "largest")
DEFAULT_PHASE_RULE = "longest"
#: Smallest frame-to-frame change of a (dimensionless) signal counted as a rise or a fall.
RISE_TOL = 1e-9


def _best_run(
    delta: np.ndarray, sign: float, rule: str, measured: np.ndarray
) -> tuple[int, int] | None:
    """[start, end) of the run of steps with ``sign * delta > RISE_TOL`` that is longest (rule
    "longest": most steps) or largest (rule "largest": biggest total change), counting only the
    ``measured`` steps ((steps,) 0/1); earliest on ties; None when no run has a measured step."""
    mask = sign * delta > RISE_TOL
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    per_step = measured if rule == "longest" else measured * np.abs(delta)
    csum = np.concatenate([[0.0], np.cumsum(per_step)])
    score = csum[ends] - csum[starts]
    if not (score > 0).any():
        return None
    k = int(np.argmax(score))
    return int(starts[k]), int(ends[k])


def find_phases(
    lip: np.ndarray, rule: str = DEFAULT_PHASE_RULE, face_found=None
) -> tuple[tuple[int, int, int, int], str]:
    """Phase boundaries (b0, b1, b2, b3) from the (smoothed) D_lip signal (t,), and a status.

    Onset = the longest (``rule`` "longest", the paper) or largest-amplitude ("largest") run of
    rising frames, earliest on ties; offset = the same for falling frames among the runs that
    start at or after the onset's end; apex = the frames between them. With ``face_found`` (t,)
    0/1, a run is measured by its steps between two frames with a face only: a gap filled by
    interpolation is a straight, noise-free line that would outrun any tracked rise or fall, so
    a run inside a gap never wins (one that crosses a gap keeps its measured steps).
    """
    if rule not in PHASE_RULES:
        raise ValueError(f"phase rule must be one of {PHASE_RULES}, got {rule!r}")
    t = lip.shape[0]
    delta = np.diff(lip)
    found = np.ones(t, dtype=bool) if face_found is None else np.asarray(face_found, dtype=bool)
    measured = (found[1:] & found[:-1]).astype(np.float64)  # (t - 1,) steps
    rise = _best_run(delta, 1.0, rule, measured)
    b0, b1 = rise if rise else (0, 0)
    fall = _best_run(delta[b1:], -1.0, rule, measured[b1:])
    b2, b3 = (b1 + fall[0], b1 + fall[1]) if fall else (t - 1, t - 1)
    if t < MIN_FRAMES:
        status = "short"
    elif not rise:
        status = "no_rise" if fall else "flat"
    else:
        status = "ok" if fall else "no_fall"
    return (b0, b1, b2, b3), status
