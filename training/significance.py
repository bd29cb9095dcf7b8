"""How sure a cross-validated accuracy is, with the subject as the unit of resampling.

Videos of one subject share a face and a session, so they are not independent draws: resampling
or permuting single videos overstates the precision (UvA-NEMO has ~3 videos per subject, the demo
~6). Here whole subjects are drawn (bootstrap) or swapped between two runs (permutation).
Fixed seeds: the same run gives the same figures. Those cover the sampling of test subjects;
:func:`corrected_t_p` takes folds as the unit, and with repeats covers retraining noise too.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

RESAMPLES = 10_000
SEED = 0
#: Fewer subjects than this get no bootstrap interval: a percentile interval over so few clusters
#: covers less than it claims (and one subject gives a zero-width one).
MIN_SUBJECTS = 10


def per_subject(values: dict[str, int], subjects: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Sum of ``values`` (video -> count: 1 right call, or a difference of two runs' calls) and
    video count per subject: two (S,) arrays.

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
) -> tuple[float, float] | None:
    """Percentile interval of sum(sums) / sum(counts) over subjects drawn with replacement;
    None with fewer than :data:`MIN_SUBJECTS` subjects.

    sums, counts: (S,) per subject (right calls, or differences of two runs' right calls, and
    videos).
    """
    if len(sums) < MIN_SUBJECTS:
        return None
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(sums), (RESAMPLES, len(sums)))  # (r, S) subject indices
    ratio = sums[draw].sum(axis=1) / counts[draw].sum(axis=1)
    lo, hi = np.quantile(ratio, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def sign_flip_p(diffs: np.ndarray, seed: int = SEED) -> float:
    """Two-sided p-value of "no difference between two runs" from per-subject differences (S,)
    (run B's right calls minus run A's): each subject's two sets of calls are swapped at random,
    i.e. its difference's sign flipped; p = share of sign patterns whose sum lies at least as far
    from 0 as the observed one, which counts itself (never 0). Exact over all 2^S patterns where
    they are at most :data:`RESAMPLES`, else from that many random ones."""
    s = len(diffs)
    if 2**s <= RESAMPLES:
        bits = (np.arange(2**s)[:, None] >> np.arange(s)) & 1  # (2^S, S): every pattern
        signs = 1.0 - 2.0 * bits
    else:
        signs = np.random.default_rng(seed).choice(np.array([-1.0, 1.0]), (RESAMPLES, s))
        signs = np.vstack([np.ones(s), signs])  # the observed pattern counts itself
    extreme = np.abs(signs @ diffs) >= abs(diffs.sum()) - 1e-9  # whole calls (or their means)
    return float(extreme.mean())


def corrected_t_p(
    diffs: np.ndarray, test_over_train: float, sizes: list[int] | None = None
) -> float:
    """Two-sided p-value of the corrected resampled t-test (Nadeau & Bengio 2003) of "no
    difference between two models" over k folds of one fixed partition.

    diffs: (r, k) per-fold differences of a metric (model B - model A), repeat i of B paired with
    repeat i of A (other training seeds, the same folds). The repeats are averaged within each
    fold first: they share the fold's test and training videos, so they are not the fresh random
    partitions Bouckaert & Frank's repeated test (k r - 1 degrees of freedom) assumes, and counting
    them apart would make p smaller with every rerun. Retraining noise enters through the spread
    of the fold means. The training parts of the folds overlap, so the fold results are correlated
    and the plain t-test's variance term 1/k is too small: the correction adds test_over_train
    (n_test / n_train). NaN with fewer than two folds or fold means all alike: for accuracies,
    given ``sizes`` (k,), the test videos per fold, alike in calls (one more right call in each
    fold is a difference of 1/46 in one and 1/45 in another, whose near-zero spread would make t
    huge), else alike up to rounding.
    """
    defined = ~np.isnan(diffs)  # an AUC undefined in a fold
    n = defined.sum(axis=0)
    kept = n > 0
    d = np.where(defined, diffs, 0.0).sum(axis=0)[kept] / n[kept]  # (k,) fold means
    calls = d if sizes is None else d * np.asarray(sizes)[kept]
    if d.size < 2 or np.ptp(calls) <= 1e-9:
        return math.nan
    t = d.mean() / math.sqrt((1 / d.size + test_over_train) * d.var(ddof=1))
    return float(2 * stats.t.sf(abs(t), d.size - 1))
