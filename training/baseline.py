"""The classic baseline on the same folds: L2 logistic regression on a video's 225 D-Markers.

Dibeklioglu et al. (ECCV 2012) classified D-Markers with an SVM after feature selection; this is
the simpler reference: a regularised logistic regression on all descriptors, so a results table
says what the hand-made descriptors alone give under exactly the folds, inner split, threshold
rule and test protocol of the networks (``smile_point.py --model dmarker-logreg``).

Per fold: descriptors standardised with training-part statistics; one model per strength in
:data:`CS` fitted on the training part; the one with the lowest validation log-loss is kept (the
threshold by ``train.threshold``); the test part is scored once. A test video without D-Markers
(no face in any frame, or missing from the table) gets probability 0.5 and is listed in
``test.json`` (it still counts); training and validation videos without them are left out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from data.datasets import SmileDataset
from data.io import atomic_write_json
from data.targets import DMarkerScaler, measured
from training.config import Config
from training.metrics import best_threshold, classification_metrics

NAME = "dmarker-logreg"
#: Inverse regularisation strengths tried on each fold's validation part.
CS = tuple(10.0**k for k in range(-3, 3))


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


def fit_baseline(
    cfg: Config, dataset: SmileDataset, train: list[str], val: list[str], out_dir: Path
) -> dict:
    """Fit on ``train``, choose C (and the threshold) on ``val``; writes model.json and
    selection.json. Returns {"C", "threshold", "scaler", "model"}."""
    table = dataset.dmarkers()
    if table is None:
        raise FileNotFoundError(
            f"no dmarkers.npz under {dataset.root}: {NAME} needs the D-Marker table; build it "
            f"with python dmarker.py --landmarks {dataset.landmarks_dir} --output "
            f"{dataset.root / 'dmarkers.npz'}"
        )
    scaler = DMarkerScaler.fit(table, train)
    _, x_train, y_train = _design(dataset, scaler, train)
    val_kept, x_val, y_val = _design(dataset, scaler, val)
    if len(set(y_train)) < 2 or not val_kept:
        raise ValueError(
            f"{NAME}: the training part needs both classes and the validation part D-Markers; "
            "check the D-Marker table (dmarker.py reports the videos it could not measure)"
        )
    models = {c: LogisticRegression(C=c, max_iter=5000).fit(x_train, y_train) for c in CS}
    losses = {c: _log_loss(y_val, m.predict_proba(x_val)[:, 1]) for c, m in models.items()}
    c = min(losses, key=losses.get)
    val_probs = models[c].predict_proba(x_val)[:, 1]
    threshold = best_threshold(y_val, val_probs) if cfg.train.threshold == "val" else 0.5
    atomic_write_json(
        out_dir / "model.json",
        {
            "C": c,
            "feature_names": list(table.feature_names),
            "coef": models[c].coef_[0].tolist(),
            "intercept": float(models[c].intercept_[0]),
            "mean": scaler.mean.tolist(),
            "std": scaler.std.tolist(),
        },
    )
    atomic_write_json(
        out_dir / "selection.json",
        {
            "C": c,
            "val_log_loss": {str(k): v for k, v in losses.items()},
            "threshold": threshold,
            "val": val,
        },
    )
    return {"C": c, "threshold": threshold, "scaler": scaler, "model": models[c]}


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
