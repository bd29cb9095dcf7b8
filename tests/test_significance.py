"""Intervals and sign-flip p-values with subjects as the unit, the corrected resampled t-test
(training/significance.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from training.significance import (
    MIN_SUBJECTS,
    accuracy_interval,
    corrected_t_p,
    difference_interval,
    per_subject,
    sign_flip_p,
)


def test_per_subject_sums_and_counts():
    values = {"a": 1, "b": 0, "c": 1, "d": -1}
    sums, counts = per_subject(values, {"a": "s2", "b": "s2", "c": "s1", "d": "s3"})
    assert sums.tolist() == [1, 1, -1] and counts.tolist() == [1, 2, 1]  # s1, s2, s3


def test_a_subject_counts_whole():
    """The same 80% accuracy is far less certain from 20 subjects of 10 videos each, all right or
    all wrong, than from 200 subjects of one video: counting videos would not see it."""
    clustered = accuracy_interval(np.array([10.0] * 16 + [0.0] * 4), np.full(20, 10.0))
    spread = accuracy_interval(np.array([1.0] * 160 + [0.0] * 40), np.ones(200))
    for lo, hi in (clustered, spread):
        assert lo < 0.8 < hi
    assert clustered[1] - clustered[0] > 3 * (spread[1] - spread[0])
    # independent videos: Wilson's 95% interval of 160 in 200, [0.739, 0.849] (z = 1.96; here
    # t's quantile with 199 degrees of freedom, 1.972)
    assert spread == pytest.approx((0.739, 0.849), abs=0.002)


def test_intervals_hold_their_estimate_within_their_range():
    """Wilson's bound where every call is right (or wrong), exactly: n / (n + z^2), not a hair
    above 1 or below the estimate; over random sets, lo <= estimate <= hi within [0, 1]; a
    difference stays within [-1, 1]."""
    z = stats.t.ppf(0.975, 11)
    assert accuracy_interval(np.full(12, 3.0), np.full(12, 3.0)) == (36 / (36 + z**2), 1.0)
    assert accuracy_interval(np.zeros(12), np.full(12, 3.0)) == (0.0, 1 - 36 / (36 + z**2))
    rng = np.random.default_rng(0)
    for _ in range(2000):
        counts = rng.integers(1, 6, rng.integers(10, 30)).astype(float)
        right = rng.binomial(counts.astype(int), rng.choice([0.0, 0.5, 0.9, 1.0])).astype(float)
        lo, hi = accuracy_interval(right, counts)
        assert 0 <= lo <= right.sum() / counts.sum() <= hi <= 1
    lo, hi = difference_interval(np.array([1.0] * 9 + [0.0]), np.ones(10))
    assert 0 < lo < 0.9 and hi == 1.0  # +- t * SE would reach 1.126


def simulated_subjects(rng, n_subjects: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per subject: its own accuracy (Beta(18, 2), mean 0.9: subjects unlike, near the top),
    2-8 videos, right calls of a first run and of a second that calls half its videos anew."""
    acc = rng.beta(18, 2, n_subjects)
    counts = rng.integers(2, 9, n_subjects)
    first = [rng.random(c) < a for a, c in zip(acc, counts, strict=True)]
    again = [
        np.where(rng.random(c) < 0.5, rng.random(c) < a, f)
        for a, c, f in zip(acc, counts, first, strict=True)
    ]
    right = np.array([f.sum() for f in first], float)
    diff = np.array([g.sum() - f.sum() for f, g in zip(first, again, strict=True)], float)
    return right, diff, counts.astype(float)


@pytest.mark.parametrize("n_subjects", [10, 20])
def test_intervals_cover_about_as_often_as_they_claim(n_subjects):
    """Over 600 simulated test sets of few, unlike subjects the 95% intervals hold the true
    accuracy (0.9) and difference (0) in at least 93% of them (a percentile bootstrap over
    subjects: 86-92% for the accuracy here)."""
    rng = np.random.default_rng(n_subjects)
    held = np.zeros(2)
    for _ in range(600):
        right, diff, counts = simulated_subjects(rng, n_subjects)
        lo, hi = accuracy_interval(right, counts)
        held[0] += lo <= 0.9 <= hi
        lo, hi = difference_interval(diff, counts)
        held[1] += lo <= 0 <= hi
    assert (held / 600 >= 0.93).all(), held / 600


def test_too_few_subjects_get_no_interval():
    for interval in (accuracy_interval, difference_interval):
        assert interval(np.array([3.0]), np.array([4.0])) is None  # one subject
        assert interval(np.ones(MIN_SUBJECTS - 1), np.full(MIN_SUBJECTS - 1, 2.0)) is None
        assert interval(np.ones(MIN_SUBJECTS), np.full(MIN_SUBJECTS, 2.0)) is not None
    # no discordant call in any subject: no difference, and no spread
    assert difference_interval(np.zeros(MIN_SUBJECTS), np.full(MIN_SUBJECTS, 2.0)) == (0.0, 0.0)


def exact_p(diffs: np.ndarray) -> float:
    """The sign-flip p-value over all 2^S patterns, written out."""
    sums = [abs(np.dot(signs, diffs)) for signs in itertools.product((-1, 1), repeat=len(diffs))]
    return float(np.mean(np.array(sums) >= abs(diffs.sum()) - 1e-9))


def test_sign_flip_p_is_exact_for_few_subjects_and_close_for_many():
    d = np.array([2.0, -1.0, 1.0, 1.0, 0.0, 3.0, -1.0])
    assert sign_flip_p(d) == exact_p(d)  # 2^7 patterns: enumerated
    d = np.random.default_rng(5).integers(-2, 4, 15).astype(float)  # 2^15 > 10,000: sampled
    assert sign_flip_p(d) == pytest.approx(exact_p(d), abs=0.01)
    assert sign_flip_p(d) == sign_flip_p(d)  # a fixed seed


def test_sign_flip_p_counts_subjects_not_videos():
    # five videos better, all of one subject: either sign is as extreme, no evidence
    assert sign_flip_p(np.array([5.0, 0.0, 0.0, 0.0])) == 1.0
    # five videos better, one per subject: both all-equal signs of 2^5 are as extreme
    assert sign_flip_p(np.ones(5)) == 2 / 32
    # twenty subjects better: far beyond chance (never 0: the observed pattern counts)
    assert sign_flip_p(np.ones(20)) == 1 / 10_001
    assert sign_flip_p(np.zeros(6)) == 1.0  # no difference at all


def test_corrected_t_test_is_the_t_test_of_the_fold_means_with_a_wider_variance():
    """Repeats are averaged within each fold; without the correction (n_test / n_train = 0) it is
    then scipy's one-sample t-test over the k fold means; with it, t shrinks by
    sqrt((1/k) / (1/k + n_test/n_train)) (Nadeau & Bengio): 3 repeats of 5 folds, 1/4."""
    diffs = np.array([[0.04, 0.02, 0.06, -0.01, 0.03], [0.05, 0.0, 0.02, 0.01, 0.04],
                      [0.03, 0.02, -0.02, 0.05, 0.02]])  # fmt: skip
    plain = stats.ttest_1samp(diffs.mean(axis=0), 0.0)
    assert corrected_t_p(diffs, 0.0) == pytest.approx(plain.pvalue)
    shrunk = abs(plain.statistic) * np.sqrt((1 / 5) / (1 / 5 + 0.25))
    assert corrected_t_p(diffs, 0.25) == pytest.approx(2 * stats.t.sf(shrunk, 4))
    assert plain.pvalue < 0.01 < corrected_t_p(diffs, 0.25)  # 0.008 against 0.030
    assert corrected_t_p(-diffs, 0.25) == corrected_t_p(diffs, 0.25)  # two-sided


def test_the_same_runs_given_again_change_nothing():
    """The repeats share the folds' videos: giving one run's differences five times is no
    evidence, and the p-value stays (counting them apart would shrink it with every copy)."""
    once = np.array([[0.02, -0.04, 0.06, 0.03, 0.05]])
    assert corrected_t_p(np.repeat(once, 5, axis=0), 0.25) == pytest.approx(
        corrected_t_p(once, 0.25)
    )


def test_corrected_t_test_needs_two_fold_means_apart():
    assert np.isnan(corrected_t_p(np.array([[0.1]]), 0.25))
    assert np.isnan(corrected_t_p(np.full((2, 5), 0.1), 0.25))  # no spread: t undefined
    # one more right call of 46 in every fold: alike up to rounding, not "p < 1e-50"
    one_more = np.array([[(c + 1) / 46 - c / 46 for c in range(38, 43)]])
    assert np.ptp(one_more) > 0 and np.isnan(corrected_t_p(one_more, 0.25))
    # folds of 46 and 45 videos (229 in 5 folds): one more right call in each is alike in calls
    sizes = np.array([46, 46, 46, 45, 46])
    assert np.isnan(corrected_t_p(1 / sizes[None], 0.25, sizes))
    assert corrected_t_p(1 / sizes[None], 0.25) < 1e-6  # what the spread of 1/46 - 1/45 gave
    two = np.array([2, 1, 1, 1, 1])  # one fold gained two calls: a spread in calls, a test
    assert corrected_t_p(two / sizes[None], 0.25, sizes) == corrected_t_p(two / sizes[None], 0.25)
    # a fold whose metric is undefined in every repeat (NaN AUC) is left out, in some only those
    with_nan = np.array([[0.1, np.nan, 0.3, 0.2], [0.3, np.nan, np.nan, 0.2]])
    assert corrected_t_p(with_nan, 0.5) == corrected_t_p(np.array([[0.2, 0.3, 0.2]]), 0.5)
