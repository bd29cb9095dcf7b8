"""Classification metrics and the validation threshold."""

import math

import numpy as np
import pytest

from training.metrics import best_threshold, classification_metrics


def test_metrics_by_hand():
    labels = np.array([1, 1, 1, 0, 0, 0])
    probs = np.array([0.9, 0.6, 0.4, 0.3, 0.7, 0.1])
    m = classification_metrics(labels, probs, 0.5)
    assert m["confusion"] == [[2, 1], [1, 2]]
    assert m["accuracy"] == 4 / 6
    assert m["f1"] == 2 * 2 / (2 * 2 + 1 + 1)
    assert m["auc"] == pytest.approx(
        7 / 9
    )  # 7 of the 9 (positive, negative) pairs ordered correctly


def test_auc_is_nan_with_one_class():
    assert math.isnan(classification_metrics(np.ones(3), np.array([0.1, 0.5, 0.9]))["auc"])


def test_best_threshold_separates_and_prefers_half():
    labels = np.array([0, 0, 1, 1])
    t = best_threshold(labels, np.array([0.1, 0.2, 0.3, 0.4]))
    assert 0.2 < t < 0.3
    assert best_threshold(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 0.5


def test_f1_is_nan_without_any_positive_and_zero_when_all_are_missed():
    posed_only = classification_metrics(np.zeros(2), np.array([0.1, 0.2]))
    assert posed_only["accuracy"] == 1.0 and math.isnan(posed_only["f1"])
    assert classification_metrics(np.zeros(2), np.array([0.1, 0.9]))["f1"] == 0.0
    assert classification_metrics(np.ones(2), np.array([0.1, 0.2]))["f1"] == 0.0
