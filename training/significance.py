"""How sure a cross-validated accuracy is, with the subject as the unit of resampling.

Videos of one subject share a face and a session, so they are not independent draws: resampling
or permuting single videos overstates the precision (UvA-NEMO has ~3 videos per subject, the demo
~6). Here the subjects are the clusters of the intervals' standard errors, and whole subjects are
swapped between two runs (permutation, with a fixed seed: the same runs give the same p). Those
cover the sampling of test subjects;
:func:`corrected_t_p` takes folds as the unit, and with repeats covers retraining noise too.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

RESAMPLES = 10_000
SEED = 0
#: Fewer subjects than this get no interval: a variance estimated from so few clusters is itself
#: too uncertain (one subject gives none).
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


def _ratio_se(sums: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """sum(sums) / sum(counts) and its standard error with subjects as clusters (the ratio
    estimator linearised, with the small-sample factor S / (S - 1)): two floats."""
    ratio = sums.sum() / counts.sum()
    s = len(sums)
    spread = ((sums - ratio * counts) ** 2).sum()
    return float(ratio), math.sqrt(s / (s - 1) * spread) / counts.sum()


def accuracy_interval(
    sums: np.ndarray, counts: np.ndarray, level: float = 0.95
) -> tuple[float, float] | None:
    """Interval of an accuracy over subjects' videos: Wilson's score interval with the number of
    videos divided by the subjects' design effect (the cluster variance over the binomial one,
    at least 1) and t's quantile with S - 1 degrees of freedom in place of the normal's. None
    with fewer than :data:`MIN_SUBJECTS` subjects.

    sums, counts: (S,) right calls and videos per subject. In simulations of 10-40 subjects of
    2-8 videos (accuracies 0.8-0.97, subjects alike or not: benchmarks/interval_coverage.py) it
    covered 94-98 %, a percentile bootstrap over subjects 77-94 % (too narrow with few subjects
    or an accuracy near 1). Within [0, 1], and not of zero width where every call is right.
    """
    if len(sums) < MIN_SUBJECTS:
        return None
    acc, se = _ratio_se(sums, counts)
    n = counts.sum()
    z = stats.t.ppf((1 + level) / 2, len(sums) - 1)
    binomial = acc * (1 - acc) / n
    if binomial == 0:  # every call right (or wrong): Wilson's bound on the other side, exactly
        edge = float(n / (n + z**2))
        return (edge, 1.0) if acc == 1 else (0.0, 1 - edge)
    videos = n / max(1.0, se**2 / binomial)  # effective number
    shrink = 1 + z**2 / videos
    centre = (acc + z**2 / (2 * videos)) / shrink
    half = z / shrink * math.sqrt(binomial * n / videos + z**2 / (4 * videos**2))
    return float(max(0.0, min(centre - half, acc))), float(min(1.0, max(centre + half, acc)))


def difference_interval(
    sums: np.ndarray, counts: np.ndarray, level: float = 0.95
) -> tuple[float, float] | None:
    """Interval of a difference of two runs' accuracies on the same videos: the difference
    +- t's quantile (S - 1 degrees of freedom) times its standard error with subjects as
    clusters. None with fewer than :data:`MIN_SUBJECTS` subjects.

    sums, counts: (S,) per subject the second run's right calls minus the first's, and videos.
    In simulations of 10-40 subjects it covered 94-99 % (a percentile bootstrap: 91-98 %).
    Within [-1, 1]; of zero width where every subject's difference per video is the same (no
    call differs, or every one does alike): no spread to estimate it from.
    """
    if len(sums) < MIN_SUBJECTS:
        return None
    diff, se = _ratio_se(sums, counts)
    half = stats.t.ppf((1 + level) / 2, len(sums) - 1) * se
    return float(max(-1.0, diff - half)), float(min(1.0, diff + half))


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
