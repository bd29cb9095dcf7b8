"""The classic baseline on the same folds: L2 logistic regression on a video's 225 D-Markers.

Dibeklioglu et al. (ECCV 2012) classified D-Markers with an SVM after feature selection; this is
the simpler reference with one hyper-parameter: a regularised logistic regression on all
descriptors, so a results table says what the hand-made descriptors alone give under exactly the
folds, threshold rule and test protocol of the networks (``smile_point.py --model
dmarker-logreg``).

Per fold, on its training part only (the networks' inner training and validation videos
together): the strength C in :data:`CS` with the lowest log-loss over a subject-grouped inner
cross-validation (:data:`INNER_FOLDS` folds, no subject on both sides, descriptors standardised
with each inner training part); the threshold by ``train.threshold`` (``val``: chosen on those
out-of-fold probabilities); then one model fitted on the whole training part, and the test part
scored once. Cross-validating a regression costs milliseconds, so unlike the networks the
baseline need not hold videos out of its final fit.

A video missing from the D-Marker table is an error (the table is older than the dataset:
rebuild it). A video whose every frame lacked a face has all-zero descriptors, and one the build
could not measure has no row: both are left out of training; in the test part they get
probability 0.5 and are listed in ``test.json`` (``no_dmarkers``), so they still count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from data.datasets import SmileDataset
from data.files import atomic_write_json
from data.targets import measured
from models.config import BASELINE
from training.config import Config
from training.metrics import best_threshold, classification_metrics, log_loss

#: Inverse regularisation strengths tried by the inner cross-validation of each fold.
CS = tuple(10.0**k for k in range(-3, 3))
INNER_FOLDS = 5


def _design(dataset: SmileDataset, names: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The names with measured D-Markers, their raw descriptors (n, 225) and labels (n,)."""
    table = dataset.require_dmarkers(BASELINE, names)
    kept = [n for n in names if measured(table, n)]
    x = np.array([table.get(n) for n in kept], dtype=np.float64).reshape(len(kept), -1)
    return kept, x, np.array([dataset.videos[n].label for n in kept])


def _model(c: float) -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))


def fit_baseline(cfg: Config, dataset: SmileDataset, train: list[str], out_dir: Path) -> dict:
    """Choose C (and the threshold) by inner cross-validation on ``train``, the fold's whole
    training part, then fit on it; writes model.json and selection.json.
    Returns {"C", "threshold", "model"}."""
    kept, x, y = _design(dataset, train)
    groups = [dataset.subjects[n] for n in kept]
    smallest_class = int(min(np.bincount(y, minlength=2)))  # sklearn refuses more folds than that
    k = min(INNER_FOLDS, len(set(groups)), smallest_class)
    splits = list(StratifiedGroupKFold(k).split(x, y, groups)) if k >= 2 else []
    if not splits or any(len(set(y[inner])) < 2 for inner, _ in splits):
        raise ValueError(
            f"{dataset.root}: {BASELINE} needs both classes in every inner training part (at "
            f"least two subjects with D-Markers and both classes); this fold's training part "
            f"has {len(set(groups))} subjects and {np.bincount(y, minlength=2).tolist()} videos "
            "per class (posed, spontaneous): use fewer folds (data.n_folds where they are "
            "generated; else fold files with larger training parts) or more data"
        )
    oof = {c: np.zeros(len(y)) for c in CS}  # out-of-fold probabilities per C
    for inner_train, inner_val in splits:
        for c in CS:
            fitted = _model(c).fit(x[inner_train], y[inner_train])
            oof[c][inner_val] = fitted.predict_proba(x[inner_val])[:, 1]
    losses = {c: log_loss(y, p) for c, p in oof.items()}
    c = min(losses, key=losses.get)
    threshold = best_threshold(y, oof[c]) if cfg.train.threshold == "val" else 0.5
    model = _model(c).fit(x, y)
    scaler, regression = model[0], model[-1]
    atomic_write_json(
        out_dir / "model.json",
        {
            "C": c,
            "feature_names": list(dataset.require_dmarkers(BASELINE).feature_names),
            "coef": regression.coef_[0].tolist(),
            "intercept": float(regression.intercept_[0]),
            "mean": scaler.mean_.tolist(),
            "scale": scaler.scale_.tolist(),
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
            "no_dmarkers": [n for n in train if n not in set(kept)],  # left out of the fit
        },
    )
    return {"C": c, "threshold": threshold, "model": model}


def score_baseline(dataset: SmileDataset, names: list[str], fitted: dict) -> dict:
    """Score the test part ``names`` once with the fitted model -> test.json's content."""
    kept, x, _ = _design(dataset, names)
    scored = dict(zip(kept, fitted["model"].predict_proba(x)[:, 1], strict=True)) if kept else {}
    probs = np.array([scored.get(n, 0.5) for n in names])
    labels = np.array([dataset.videos[n].label for n in names])
    return {
        **classification_metrics(labels, probs, fitted["threshold"]),
        "best_epoch": None,
        "C": fitted["C"],
        "no_dmarkers": [n for n in names if n not in scored],
        "videos": {
            n: {"label": int(y), "probability": float(p)}
            for n, y, p in zip(names, labels, probs, strict=True)
        },
    }
