"""Binary classification metrics on per-video probabilities (1 = spontaneous)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


class DivergedError(ValueError):
    """A fold's model stopped giving finite numbers: its training loss or outputs."""


def finite(probs: np.ndarray, names: list[str], part: str) -> np.ndarray:
    """``probs`` (n,) of the videos ``names`` (n,) as they are; DivergedError naming the videos
    whose probability is not finite (a model whose weights diverged between its validations)."""
    bad = [n for n, p in zip(names, probs, strict=True) if not np.isfinite(p)]
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise DivergedError(
            f"the selected checkpoint gives no finite probability for {part} videos {shown} "
            "(diverged); train with a lower --lr under a new --out (a run keeps one config)"
        )
    return probs


def auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """ROC AUC; NaN when only one class is present."""
    labels = np.asarray(labels)
    if labels.min() == labels.max():
        return float("nan")
    return float(roc_auc_score(labels, probs))


def log_loss(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean binary cross-entropy of probabilities (n,) clipped to [1e-6, 1 - 1e-6]."""
    p = np.clip(probs, 1e-6, 1 - 1e-6)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def classification_metrics(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict:
    """Accuracy, AUC, F1 (spontaneous = positive) and confusion matrix at ``threshold``; AUC
    and F1 are NaN where undefined (one class; no positive in truth or prediction).

    labels, probs: (n,). The confusion matrix is [[TN, FP], [FN, TP]] (rows = truth).
    """
    labels = np.asarray(labels).astype(int)
    pred = (np.asarray(probs) >= threshold).astype(int)
    tp = int(((pred == 1) & (labels == 1)).sum())
    tn = int(((pred == 0) & (labels == 0)).sum())
    fp = int(((pred == 1) & (labels == 0)).sum())
    fn = int(((pred == 0) & (labels == 1)).sum())
    # undefined (NaN) when there is no spontaneous video and none was called spontaneous
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {
        "accuracy": (tp + tn) / max(len(labels), 1),
        "auc": auc(labels, probs),
        "f1": f1,
        "confusion": [[tn, fp], [fn, tp]],
        "threshold": float(threshold),
        "n": len(labels),
    }


def best_threshold(labels: np.ndarray, probs: np.ndarray) -> float:
    """The threshold maximising accuracy on (validation) data: midpoint between sorted scores.

    Ties go to the candidate closest to 0.5, so a flat optimum keeps the conventional threshold.
    """
    s = np.unique(np.asarray(probs, dtype=float))
    cands = np.concatenate([[0.5], (s[:-1] + s[1:]) / 2, [s[0] - 1e-6, s[-1] + 1e-6]])
    labels = np.asarray(labels).astype(int)
    accs = np.array([((probs >= c).astype(int) == labels).mean() for c in cands])
    best = np.flatnonzero(accs >= accs.max() - 1e-12)
    return float(cands[best[np.argmin(np.abs(cands[best] - 0.5))]])
