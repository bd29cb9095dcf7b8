"""The classic baseline on the same folds: L2 logistic regression on a video's 225 D-Markers.

Dibeklioglu et al. (ECCV 2012) classified D-Markers with an SVM after feature selection; this is
the simpler reference: a regularised logistic regression on all descriptors, so a results table
says what the hand-made descriptors alone give under exactly the folds, threshold rule and test
protocol of the networks (``smile_point.py --model dmarker-logreg``).

Per fold, on its training part only (the networks' inner training and validation videos
together): descriptors standardised; the strength C in :data:`CS` with the lowest log-loss over a
subject-grouped inner cross-validation (:data:`INNER_FOLDS` folds, no subject on both sides); the
threshold by ``train.threshold`` (``val``: chosen on those out-of-fold probabilities); then one
model fitted on the whole training part, and the test part scored once. Cross-validating a
regression costs milliseconds, so unlike the networks the baseline need not leave a fifth of the
training videos out of its final fit. A test video without D-Markers (no face in any frame, or
missing from the table) gets probability 0.5 and is listed in ``test.json`` (it still counts);
training videos without them are left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

from data.datasets import SmileDataset
from data.io import atomic_write_json
from data.targets import DMarkerScaler, measured
from training.config import Config
from training.metrics import best_threshold, classification_metrics

NAME = "dmarker-logreg"
#: Inverse regularisation strengths tried by the inner cross-validation of each fold.
CS = tuple(10.0**k for k in range(-3, 3))
INNER_FOLDS = 5


def _log_loss(labels: np.ndarray, probs: np.ndarray) -> float:
    p = np.clip(probs, 1e-6, 1 - 1e-6)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def _design(
    dataset: SmileDataset, scaler: DMarkerScaler, names: list[str]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The names with D-Markers, their standardised descriptors (n, 225) and labels (n,)."""
    table = dataset.dmarkers()
    kept = [n for n in names if measured(table, n)]
    rows = [table.get(n) for n in kept] or [np.zeros(len(table.feature_names))]
    x = scaler.transform(np.stack(rows))[: len(kept)]
    return kept, x, np.array([dataset.videos[n].label for n in kept])


def fit_baseline(cfg: Config, dataset: SmileDataset, train: list[str], out_dir: Path) -> dict:
    """Choose C (and the threshold) by inner cross-validation on ``train``, the fold's whole
    training part, then fit on it; writes model.json and selection.json.
    Returns {"C", "threshold", "scaler", "model"}."""
    table = dataset.dmarkers()
    if table is None:
        raise FileNotFoundError(
            f"no dmarkers.npz under {dataset.root}: {NAME} needs the D-Marker table; build it "
            f"with python dmarker.py --landmarks {dataset.landmarks_dir} --output "
            f"{dataset.root / 'dmarkers.npz'}"
        )
    scaler = DMarkerScaler.fit(table, train)
    kept, x, y = _design(dataset, scaler, train)
    groups = [dataset.subjects[n] for n in kept]
    k = min(INNER_FOLDS, len(set(groups)))
    if len(set(y)) < 2 or k < 2:
        raise ValueError(
            f"{NAME}: the training part needs both classes and two subjects with D-Markers; "
            "check the D-Marker table (dmarker.py reports the videos it could not measure)"
        )
    oof = {c: np.zeros(len(y)) for c in CS}  # out-of-fold probabilities per C
    for inner_train, inner_val in GroupKFold(k).split(x, y, groups):
        for c in CS:
            fitted = LogisticRegression(C=c, max_iter=5000).fit(x[inner_train], y[inner_train])
            oof[c][inner_val] = fitted.predict_proba(x[inner_val])[:, 1]
    losses = {c: _log_loss(y, p) for c, p in oof.items()}
    c = min(losses, key=losses.get)
    threshold = best_threshold(y, oof[c]) if cfg.train.threshold == "val" else 0.5
    model = LogisticRegression(C=c, max_iter=5000).fit(x, y)
    atomic_write_json(
        out_dir / "model.json",
        {
            "C": c,
            "feature_names": list(table.feature_names),
            "coef": model.coef_[0].tolist(),
            "intercept": float(model.intercept_[0]),
            "mean": scaler.mean.tolist(),
            "std": scaler.std.tolist(),
        },
    )
    atomic_write_json(
        out_dir / "selection.json",
        {
            "C": c,
            "inner_folds": k,
            "cv_log_loss": {str(key): v for key, v in losses.items()},
            "threshold": threshold,
            "train": train,
        },
    )
    return {"C": c, "threshold": threshold, "scaler": scaler, "model": model}


def score_baseline(dataset: SmileDataset, names: list[str], fitted: dict, out_dir: Path) -> dict:
    """Score the test part ``names`` once with the fitted model; writes and returns test.json."""
    kept, x, _ = _design(dataset, fitted["scaler"], names)
    scored = dict(zip(kept, fitted["model"].predict_proba(x)[:, 1], strict=True)) if kept else {}
    probs = np.array([scored.get(n, 0.5) for n in names])
    labels = np.array([dataset.videos[n].label for n in names])
    result = {
        **classification_metrics(labels, probs, fitted["threshold"]),
        "best_epoch": None,
        "C": fitted["C"],
        "no_dmarkers": [n for n in names if n not in scored],
        "videos": {
            n: {"label": int(y), "probability": float(p)}
            for n, y, p in zip(names, labels, probs, strict=True)
        },
    }
    atomic_write_json(out_dir / "test.json", result)
    return result
