"""How sure a cross-validated accuracy is, with the subject as the unit of resampling.

Videos of one subject share a face and a session, so they are not independent draws: resampling
or permuting single videos overstates the precision (UvA-NEMO has ~3 videos per subject, the demo
~6). Here whole subjects are drawn (bootstrap) or swapped between two runs (permutation).
Fixed seeds: the same run gives the same interval.
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 10_000
SEED = 0


def per_subject(
    values: dict[str, float], subjects: dict[str, str]
) -> tuple[np.ndarray, np.ndarray]:
    """Sum of ``values`` (video -> value) and video count per subject: two (S,) arrays.

    ``subjects``: video -> subject, for every video of ``values``.
    """
    ids = sorted({subjects[v] for v in values})
    row = {s: i for i, s in enumerate(ids)}
    sums, counts = np.zeros(len(ids)), np.zeros(len(ids))
    for v, x in values.items():
        sums[row[subjects[v]]] += x
        counts[row[subjects[v]]] += 1
    return sums, counts


def bootstrap_interval(
    sums: np.ndarray, counts: np.ndarray, level: float = 0.95, seed: int = SEED
) -> tuple[float, float]:
    """Percentile interval of sum(sums) / sum(counts) over subjects drawn with replacement.

    sums, counts: (S,) per subject (correct calls, or differences of two runs' correct calls, and
    videos).
    """
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(sums), (RESAMPLES, len(sums)))  # (r, S) subject indices
    ratio = sums[draw].sum(axis=1) / counts[draw].sum(axis=1)
    lo, hi = np.quantile(ratio, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def sign_flip_p(diffs: np.ndarray, seed: int = SEED) -> float:
    """Two-sided p-value of "no difference between two runs" from per-subject differences (S,)
    (run B's correct calls minus run A's): each subject's two sets of calls are swapped at
    random, i.e. its difference's sign flipped; p = share of flips at least as far from 0 as
    observed, counting the observed one (never 0)."""
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), (RESAMPLES, len(diffs)))  # (r, S)
    observed = abs(diffs.sum())
    extreme = np.abs(signs @ diffs) >= observed - 1e-9
    return float((1 + extreme.sum()) / (RESAMPLES + 1))
