"""smile_point.py end to end on a small demo set with a tiny model: outputs, determinism,
test-fold isolation, selection, losses, results tables (errors: test_training_errors.py;
resuming: test_resume.py)."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_run import metric_rows, tiny_config

import smile_point
import training.loop
from data.clips import TestWindows
from data.datasets import open_dataset
from data.files import atomic_write_json
from models import build_model
from models.smile_net import SmileOutput
from training.checkpoint import load_checkpoint
from training.config import load_config
from training.cross_validation import table_notes
from training.evaluate import clip_config, predict
from training.loop import METRIC_COLUMNS, compute_loss, fit, resolve_device
from training.metrics import best_threshold
from training.report import read_fold_result, write_results
from training.significance import accuracy_interval

REPO = Path(__file__).resolve().parents[1]


def test_fold_all_writes_every_output(tmp_path, demo_root):
    out = tmp_path / "run"
    assert (
        smile_point.main(
            ["--config", str(tiny_config(tmp_path, demo_root)), "--fold", "all", "--out", str(out)]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    assert [r["fold"] for r in results["folds"]] == [1, 2, 3]
    assert 0 <= results["summary"]["mean_std"]["accuracy"]["mean"] <= 1
    dataset = open_dataset("demo", demo_root)
    assert results["summary"]["pooled"]["n"] == len(dataset.videos)
    # the subjects of the test videos, for training.compare's paired tests
    assert results["subjects"] == {n: v.subject for n, v in dataset.videos.items()}
    n_subjects = len(set(results["subjects"].values()))
    assert results["summary"]["pooled"]["subjects"] == n_subjects
    assert results["summary"]["pooled"]["accuracy_interval"] is None  # 6 subjects: too few
    table = (out / "results.md").read_text()
    assert "mean +- std" in table and "pooled" in table
    assert f"95% interval with the {n_subjects} subjects as clusters" in table
    assert f"{results['summary']['pooled']['accuracy']:.3f} [n/a] |" in table
    all_test = set()
    for k in (1, 2, 3):
        fold = out / f"fold_{k:02d}"
        for name in (
            "config.yaml",
            "metrics.csv",
            "last.pt",
            "best.pt",
            "test.json",
            "selection.json",
        ):
            assert (fold / name).exists(), name
        assert list((fold / "tb").glob("events.out.tfevents.*"))
        rows = metric_rows(fold)
        with open(fold / "metrics.csv") as f:
            assert tuple(next(csv.reader(f))) == METRIC_COLUMNS
        assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
        assert all(np.isfinite(float(r[k])) for r in rows for k in ("loss", "bce", "val_bce"))
        test = json.loads((fold / "test.json").read_text())
        improved = [int(r["epoch"]) for r in rows if r["best"] == "1"]
        selection = json.loads((fold / "selection.json").read_text())
        assert improved[-1] == selection["best_epoch"] == test["best_epoch"]
        assert {"accuracy", "auc", "f1", "confusion", "threshold", "videos"} <= set(test)
        assert sum(map(sum, test["confusion"])) == len(test["videos"])
        all_test |= set(test["videos"])
        ckpt = torch.load(fold / "best.pt", weights_only=False)
        assert {"model", "optimizer", "scheduler", "state", "rng", "config"} <= set(ckpt)
        assert load_config(fold / "config.yaml").model.dim == 8  # the resolved config
    assert len(all_test) == len(open_dataset("demo", demo_root).videos)  # test folds cover all


def test_cpu_runs_are_deterministic(tmp_path, demo_root):
    cfg = tiny_config(tmp_path, demo_root)
    for run in ("a", "b"):
        assert (
            smile_point.main(["--config", str(cfg), "--fold", "2", "--out", str(tmp_path / run)])
            == 0
        )
    a, b = (tmp_path / r / "fold_02" for r in ("a", "b"))
    assert metric_rows(a) == metric_rows(b)
    assert json.loads((a / "test.json").read_text()) == json.loads((b / "test.json").read_text())


def test_training_never_reads_the_test_fold(tmp_path, demo_root):
    """Neither landmarks (through the dataset or its store) nor D-Markers of a test video."""
    dataset = open_dataset("demo", demo_root)
    split = dataset.split(1, seed=0)
    by_file = {dataset.videos[n].file: n for n in dataset.videos}
    forbidden = set(split.test)
    read = {"landmarks": set(), "dmarkers": set()}

    def guard(kind, real, name_of):
        def guarded(key):
            name = name_of(key)
            if name in forbidden:
                raise AssertionError(f"training read the {kind} of test video {name}")
            read[kind].add(name)
            return real(key)

        return guarded

    dataset.store.get = guard("landmarks", dataset.store.get, by_file.__getitem__)
    table = dataset.dmarkers()
    table.index = guard("dmarkers", table.index, lambda name: name)
    cfg = load_config(tiny_config(tmp_path, demo_root, epochs=2))
    fit(cfg, dataset, list(split.train), list(split.val), tmp_path / "f", resolve_device("cpu"))
    assert read["landmarks"] == set(split.train) | set(split.val)
    assert read["dmarkers"] and read["dmarkers"] <= set(split.train) | set(split.val)


def test_a_fold_run_reads_the_test_fold_only_to_test_it(tmp_path, demo_root, monkeypatch):
    """The path --fold N takes (run_fold), not fit alone: no landmarks or D-Markers of a test
    video are read before the one test of the selected checkpoint, and that test runs."""
    import training.cross_validation as cv

    dataset = open_dataset("demo", demo_root)
    cfg = load_config(tiny_config(tmp_path, demo_root, epochs=2))
    cfg.out = str(tmp_path / "run")
    split = dataset.split(1, cfg.data.val_fraction, cfg.train.seed)
    by_file = {dataset.videos[n].file: n for n in dataset.videos}
    testing = []

    def guard(kind, real, name_of):
        def guarded(key):
            if name_of(key) in split.test and not testing:
                raise AssertionError(f"read the {kind} of test video {name_of(key)} before testing")
            return real(key)

        return guarded

    dataset.store.get = guard("landmarks", dataset.store.get, by_file.__getitem__)
    table = dataset.dmarkers()
    table.index = guard("D-Markers", table.index, lambda name: name)
    real_test = cv.test

    def test_once(*args, **kwargs):
        testing.append(args[2])  # the names it tests
        return real_test(*args, **kwargs)

    monkeypatch.setattr(cv, "test", test_once)
    result = cv.run_fold(cfg, 1, dataset)
    assert testing == [list(split.test)] and set(result["videos"]) == set(split.test)
    selection = json.loads((tmp_path / "run" / "fold_01" / "selection.json").read_text())
    assert selection["val"] == list(split.val)


def test_validation_threshold_is_chosen_on_the_tests_windows(tmp_path, demo_root, monkeypatch):
    """train.threshold=val with data.test_stride: the threshold is chosen on validation videos
    scored by the selected weights as the test scores its own (windows every test_stride), not
    on the every-W windows of the per-epoch validation."""
    dataset = open_dataset("demo", demo_root)
    split = dataset.split(1, seed=0)
    cfg = load_config(tiny_config(tmp_path, demo_root, epochs=2), ["data.test_stride=2"])
    val = list(split.val)
    strides = []  # of each scoring of the validation videos during fit
    spied = training.loop.predict

    def spy(cfg, model, windows, *args):
        strides.append(windows.cfg.test_stride)
        return spied(cfg, model, windows, *args)

    monkeypatch.setattr(training.loop, "predict", spy)
    chosen = fit(cfg, dataset, list(split.train), val, tmp_path / "f", resolve_device("cpu"))
    assert strides[-1] == 2 and set(strides[:-1]) <= {None}  # epochs: every W; the threshold: 2
    model = build_model(cfg.model, dataset.n_landmarks)
    model.load_state_dict(load_checkpoint(tmp_path / "f" / "best.pt")["model"])
    labels = np.array([dataset.videos[n].label for n in val])
    scored = {}
    for stride in (2, None):
        windows = TestWindows(dataset, val, replace(clip_config(cfg), test_stride=stride))
        probs = predict(cfg, model, windows, len(val), resolve_device("cpu"))
        scored[stride] = best_threshold(labels, probs)
        assert stride is None or len(windows) > 2 * len(val)  # denser than every W
    assert chosen["threshold"] == scored[2]
    saved = json.loads((tmp_path / "f" / "selection.json").read_text())
    assert saved["threshold"] == scored[2]


@pytest.mark.parametrize("metric", ["bce", "auc", "accuracy"])
def test_selection_metric_and_early_stopping(tmp_path, demo_root, metric):
    """The kept epoch is the first best validation score of the chosen metric, and training
    stops ``patience`` epochs after it."""
    dataset = open_dataset("demo", demo_root)
    split = dataset.split(1, seed=0)
    cfg = load_config(
        tiny_config(tmp_path, demo_root, epochs=15, lr=3e-3, select_metric=metric, patience=3)
    )
    out = tmp_path / metric
    chosen = fit(cfg, dataset, list(split.train), list(split.val), out, resolve_device("cpu"))
    rows = metric_rows(out)
    column = {"bce": "val_bce", "auc": "val_auc", "accuracy": "val_accuracy"}[metric]
    scores = [float(r[column]) * (-1 if metric == "bce" else 1) for r in rows]
    assert chosen["best_epoch"] == 1 + scores.index(max(scores))
    assert chosen["best_score"] == pytest.approx(max(scores))
    # stops 3 epochs after the best one (here after 4-5 of 15 epochs; the rule also holds if a
    # platform's arithmetic happened to keep improving to the end)
    after_best = len(rows) - chosen["best_epoch"]
    assert after_best == 3 or (len(rows) == 15 and after_best < 3)
    best = torch.load(out / "best.pt", weights_only=False)
    assert best["state"]["best_epoch"] == chosen["best_epoch"]


def test_loss_is_the_weighted_sum_without_a_sigmoid(tmp_path, demo_root):
    cfg = load_config(tiny_config(tmp_path, demo_root, bce_weight=0.2, dmarker_weight=0.8))
    logits = torch.tensor([2.0, -1.0, 0.5])
    targets = torch.zeros(3, 4)
    dmarkers = targets + torch.tensor([[10.0], [99.0], [10.0]])  # row 2 has no D-Markers
    batch = {
        "label": torch.tensor([1.0, 0.0, 0.0]),
        "dmarker": targets,
        "has_dmarker": torch.tensor([True, False, True]),
    }
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["label"])
    loss, parts = compute_loss(cfg, SmileOutput(logits, dmarkers), batch)
    assert parts["dmarker"] == pytest.approx(100.0)  # unbounded: no sigmoid, row 2 left out
    assert loss == pytest.approx(0.2 * bce + 0.8 * 100.0)
    cfg.train.dmarker_loss = "smooth_l1"
    loss, parts = compute_loss(cfg, SmileOutput(logits, dmarkers), batch)
    assert parts["dmarker"] == pytest.approx(9.5)
    cfg.train.dmarker_weight = 0.0  # MeshSmileNet training: the class term alone
    loss, parts = compute_loss(cfg, SmileOutput(logits, dmarkers), batch)
    assert "dmarker" not in parts and loss == pytest.approx(0.2 * bce)


def test_flags_override_the_config(tmp_path, demo_root):
    cfg = smile_point.build_config(
        smile_point.parse_args(
            [
                "--config", str(tiny_config(tmp_path, demo_root)),
                "--set", "train.lr=0.5",
                "--folds", "my_folds",
                "--epochs", "7",
                "--batch-size", "5",
                "--lr", "0.003",
                "--seed", "4",
                "--device", "cpu",
                "--model", "meshsmilenet",
            ]
        )
    )  # fmt: skip
    t = cfg.train
    assert (t.epochs, t.batch_size, t.lr, t.seed, t.device) == (7, 5, 0.003, 4, "cpu")
    assert cfg.data.folds == "my_folds" and cfg.model.name == "meshsmilenet"
    assert t.dmarker_weight == 0.0
    assert cfg.out == str(demo_root / "runs" / "demo-meshsmilenet-seed4")
    given = ["--config", str(tiny_config(tmp_path, demo_root)), "--model", "meshsmilenet"]
    with pytest.raises(ValueError, match=r"--set train.dmarker_weight=0.5: meshsmilenet has no "):
        smile_point.build_config(smile_point.parse_args([*given, "--set", "dmarker_weight=0.5"]))


@pytest.mark.parametrize(
    "named_by", [["--model", "meshsmilenet"], ["--set", "model.name=meshsmilenet"]]
)
def test_meshsmilenet_trains_without_dmarkers(tmp_path, demo_root, named_by):
    (demo_root / "dmarkers.npz").rename(tmp_path / "dmarkers.npz")
    try:
        cfg = str(tiny_config(tmp_path, demo_root, epochs=1))
        assert smile_point.main(["--config", cfg, "--fold", "1", "--out", str(tmp_path / "d")]) == 2
        args = ["--config", cfg, "--fold", "1", "--out", str(tmp_path / "m"), *named_by]
        assert smile_point.main(args) == 0
        assert load_config(tmp_path / "m" / "fold_01" / "config.yaml").train.dmarker_weight == 0
    finally:
        (tmp_path / "dmarkers.npz").rename(demo_root / "dmarkers.npz")


@pytest.mark.parametrize(
    ("rule", "footer"),
    [("val", "Epoch and threshold chosen"), ("fixed", "Threshold fixed at 0.5, epoch chosen")],
)
def test_results_table_names_the_threshold_rule(tmp_path, rule, footer):
    def fold(k):
        videos = {
            f"a{k}": {"label": 1, "probability": 0.7},
            f"b{k}": {"label": 0, "probability": 0.6},
            f"c{k}": {"label": 0, "probability": 0.2},
        }
        metrics = dict(n=3, best_epoch=4, threshold=0.5, accuracy=2 / 3, auc=1.0, f1=0.8)
        return {**metrics, "videos": videos}

    folds = {k: fold(k) for k in range(1, 6)}
    # fold k: subject s<k> with a<k> (right) and b<k> (wrong), subject t<k> with c<k> (right)
    subjects = {f"{x}{k}": f"{'t' if x == 'c' else 's'}{k}" for k in folds for x in "abc"}
    summary = write_results(tmp_path, "demo", "deepmarkernet", folds, rule, subjects=subjects)
    lo, hi = accuracy_interval(np.array([1.0] * 10), np.array([2.0] * 5 + [1.0] * 5))
    assert lo < 2 / 3 < hi
    assert summary["pooled"] == {
        "accuracy": pytest.approx(2 / 3),
        "accuracy_interval": (lo, hi),
        "subjects": 10,
        "auc": 1.0,
        "n": 15,
    }
    table = (tmp_path / "results.md").read_text()
    assert footer in table
    assert f"| **pooled** | 15 | | | 0.667 [{lo:.3f}, {hi:.3f}] | 1.000 | |" in table
    assert "| 1 | 3 | 4 | 0.500 | 0.667 | 1.000 | 0.800 |" in table
    with pytest.raises(ValueError, match="a1: tested in two folds \\(1 and 2\\)"):
        write_results(tmp_path, "demo", "x", {1: fold(1), 2: fold(1)}, rule, subjects=subjects)


def test_undefined_f1_is_left_out_of_the_mean(tmp_path):
    """A posed-only test fold with no spontaneous call has no F1: it must not pull the mean to 0."""
    both = {"a": {"label": 1, "probability": 0.7}, "b": {"label": 0, "probability": 0.2}}
    posed = {"c": {"label": 0, "probability": 0.1}, "d": {"label": 0, "probability": 0.2}}
    rows = {
        1: dict(n=2, best_epoch=3, threshold=0.5, accuracy=1.0, auc=1.0, f1=1.0, videos=both),
        2: dict(
            n=2, best_epoch=3, threshold=0.5, accuracy=1.0, auc=math.nan, f1=math.nan, videos=posed
        ),
    }
    subjects = {"a": "p", "b": "p", "c": "q", "d": "q"}
    summary = write_results(tmp_path, "demo", "deepmarkernet", rows, "fixed", subjects=subjects)
    assert summary["mean_std"]["f1"] == {"mean": 1.0, "std": 0.0, "folds": 1}
    table = (tmp_path / "results.md").read_text()
    assert "F1 mean over the 1 folds with a spontaneous video" in table
    assert "AUC mean over the 1 folds whose test part has both classes" in table
    assert "std: population standard deviation" in table
    assert "| 2 | 2 | 3 | 0.500 | 1.000 | n/a | n/a |" in table


def _refuse(constant: str):
    raise ValueError(f"not strict JSON: {constant}")


def test_undefined_metrics_are_strict_json_null_and_read_back_as_nan(tmp_path):
    """jq, R and JavaScript refuse a bare NaN: an undefined AUC or F1 is written as null, and
    the tables read it back as undefined (left out of the mean), not as an error."""
    posed = {"c": {"label": 0, "probability": 0.1}, "d": {"label": 0, "probability": 0.2}}
    result = dict(
        n=2, best_epoch=3, threshold=0.5, accuracy=1.0, auc=math.nan, f1=math.nan, videos=posed
    )
    atomic_write_json(tmp_path / "test.json", result)
    written = json.loads((tmp_path / "test.json").read_text(), parse_constant=_refuse)
    assert written["auc"] is None and written["f1"] is None and written["accuracy"] == 1.0
    back = read_fold_result(tmp_path / "test.json", "rerun it")
    assert math.isnan(back["auc"]) and math.isnan(back["f1"]) and back["videos"] == posed
    write_results(tmp_path, "demo", "x", {1: back}, "fixed", subjects={"c": "q", "d": "q"})
    table = json.loads((tmp_path / "results.json").read_text(), parse_constant=_refuse)
    assert table["folds"][0]["auc"] is None and table["summary"]["mean_std"]["auc"] is None


def test_a_run_shorter_than_its_warm_up_says_so(tmp_path, demo_root, capsys):
    """With train.epochs < train.warmup_epochs the learning rate never reaches train.lr (a quick
    reproduction run would train with less than it asked for, silently)."""
    cfg = str(tiny_config(tmp_path, demo_root, epochs=1, warmup_epochs=2))
    assert smile_point.main(["--config", cfg, "--fold", "1", "--out", str(tmp_path / "r")]) == 0
    note = "train.epochs 1 < train.warmup_epochs 2: the learning rate never reaches train.lr, "
    assert f"{note}only 1/2 of it" in capsys.readouterr().out
    args = ["--config", cfg, "--epochs", "2", "--fold", "1", "--out", str(tmp_path / "s")]
    assert smile_point.main(args) == 0
    assert "warmup_epochs" not in capsys.readouterr().out


def test_table_notes_name_the_settings_and_a_fold_subset(tmp_path):
    """results.md says what a run is beyond model and dataset: its settings other than its
    dataset's config file (an ablation looks like the full model otherwise), and fold files made
    by `data.folds subset` (not the published protocol)."""
    demo = REPO / "configs" / "demo.yaml"
    cfg = load_config(demo, ["model.attention=time", "train.seed=3", f"data.root={tmp_path}"])
    assert table_notes(cfg, demo) == [
        "Settings other than demo.yaml: model.attention 'alternate' -> 'time'."
    ]
    assert table_notes(load_config(demo, ["model.name=meshsmilenet"]), demo) == [
        "Settings: demo.yaml."
    ]
    own = load_config(None, ["data.dataset=folder", f"data.root={tmp_path}"])  # no folder.yaml
    assert table_notes(own, None) == ["Settings: the defaults."]
    folds = tmp_path / "labels_extracted"
    folds.mkdir()
    atomic_write_json(folds / "subset.json", {"source": "/data/uva/labels", "dropped": ["a", "b"]})
    cfg = load_config(demo, [f"data.folds={folds}"])
    assert table_notes(cfg, demo)[1] == (
        f"Folds: {folds} is /data/uva/labels without 2 video(s) that have no landmark file "
        "(subset.json): not the protocol of /data/uva/labels."
    )
