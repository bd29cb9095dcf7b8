"""Tukey's 4253H,twice (data/smoothing.py)."""

from __future__ import annotations

import numpy as np
import pytest

from data.smoothing import running_median, smooth_4253h, smooth_4253h_twice


def test_running_median_interior_and_shrinking_ends():
    x = np.array([5.0, 1.0, 9.0, 2.0, 8.0, 3.0, 7.0])
    # span 5: ends copied, second/penultimate use span 3, interior span 5
    expected = [5.0, 5.0, 5.0, 3.0, 7.0, 7.0, 7.0]
    expected[1] = np.median(x[0:3])
    expected[5] = np.median(x[4:7])
    expected[2], expected[3], expected[4] = np.median(x[0:5]), np.median(x[1:6]), np.median(x[2:7])
    np.testing.assert_array_equal(running_median(x, 5), expected)


@pytest.mark.parametrize("t", [3, 4, 5, 10, 57])
def test_straight_line_is_a_fixed_point(t):
    x = 0.3 + 0.02 * np.arange(t)
    np.testing.assert_allclose(smooth_4253h_twice(x), x, atol=1e-12)


def test_constant_and_monotone_runs():
    np.testing.assert_allclose(smooth_4253h_twice(np.full(30, 0.7)), 0.7, atol=1e-15)
    step = np.r_[np.zeros(15), np.ones(15)]
    assert np.all(np.diff(smooth_4253h(step)) >= 0)  # one pass keeps a monotone input monotone
    out = smooth_4253h_twice(step)  # "twice" re-adds a little of the residual: small overshoot
    assert out.min() > -0.02 and out.max() < 1.02
    np.testing.assert_allclose(out[:10], 0, atol=1e-12)
    np.testing.assert_allclose(out[-10:], 1, atol=1e-12)


def test_spikes_are_removed():
    clean = np.sin(np.linspace(0, 3, 80))
    noisy = clean.copy()
    noisy[[10, 22, 34, 46, 58, 70]] += 2.0  # isolated outliers (one per window of 4)
    out = smooth_4253h_twice(noisy)
    assert np.abs(out - clean).max() < 0.02
    assert np.abs(noisy - clean).max() > 1.9


def test_twice_is_smooth_plus_smoothed_residual():
    x = np.random.default_rng(1).normal(size=40).cumsum()
    s = smooth_4253h(x)
    np.testing.assert_allclose(smooth_4253h_twice(x), s + smooth_4253h(x - s), atol=1e-12)


def test_vectorised_over_leading_axes_and_short_inputs():
    x = np.random.default_rng(2).normal(size=(2, 3, 25))
    out = smooth_4253h_twice(x)
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(out[i, j], smooth_4253h_twice(x[i, j]), atol=1e-14)
    for t in (1, 2):
        y = np.arange(t, dtype=float) * 3
        np.testing.assert_array_equal(smooth_4253h_twice(y), y)  # < 3 frames: unchanged
