"""smile_point.py end to end on a small demo set with a tiny model: outputs, determinism,
kill-and-resume equivalence, test-fold isolation, clear errors."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_run import tiny_config

import smile_point
import training.loop as loop
from data.clips import TestWindows
from data.datasets import open_dataset
from data.demo import generate
from models import build_model
from models.smile_net import SmileOutput
from training.config import load_config
from training.loop import (
    METRIC_COLUMNS,
    clip_config,
    compute_loss,
    fit,
    predict,
    resolve_device,
)
from training.report import write_results

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    generate(root, subjects=6, folds=3, seed=1)
    return root


def metric_rows(fold_dir: Path) -> list[dict]:
    """metrics.csv without the wall-clock column."""
    with open(fold_dir / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


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
    assert results["summary"]["pooled"]["n"] == len(open_dataset("demo", demo_root).videos)
    table = (out / "results.md").read_text()
    assert "mean +- std" in table and "pooled" in table
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


def test_killed_run_resumes_to_the_same_result(tmp_path, demo_root):
    cfg = tiny_config(tmp_path, demo_root, epochs=6)
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    assert smile_point.main(["--config", str(cfg), "--fold", "1", "--out", str(ref)]) == 0

    cmd = [
        sys.executable,
        "smile_point.py",
        "--config",
        str(cfg),
        "--fold",
        "1",
        "--out",
        str(killed),
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = killed / "fold_01" / "metrics.csv"
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:  # header + 2 epochs
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "fold_01" / "test.json").exists()
    args = ["--config", str(cfg), "--fold", "1", "--out", str(killed)]
    assert smile_point.main(args) == 2  # needs --resume
    assert smile_point.main([*args, "--resume", "--epochs", "9"]) == 2  # another schedule
    assert load_config(killed / "config.yaml").train.epochs == 6  # the refusal wrote nothing
    assert smile_point.main([*args, "--resume"]) == 0

    assert metric_rows(killed / "fold_01") == metric_rows(ref / "fold_01")
    assert json.loads((killed / "fold_01" / "test.json").read_text()) == json.loads(
        (ref / "fold_01" / "test.json").read_text()
    )


def test_weight_average_is_tested_and_resumes_exactly(tmp_path, demo_root):
    """With train.ema_decay the checkpoints hold the average ("model", tested) beside the trained
    weights, and a fit stopped after a checkpoint resumes to the same average."""
    dataset = open_dataset("demo", demo_root)
    split = dataset.split(1, seed=0)
    cfg = load_config(tiny_config(tmp_path, demo_root, epochs=4, ema_decay=0.8))
    fit_args = (cfg, dataset, list(split.train), list(split.val))
    cpu = resolve_device("cpu")
    ref = fit(*fit_args, tmp_path / "ref", cpu, log=lambda line: None)

    class Killed(Exception):
        pass

    lines = []

    def dies_after_two_epochs(line):  # line 1: parameter count, then one per epoch
        lines.append(line)
        if len(lines) == 3:
            raise Killed

    with pytest.raises(Killed):
        fit(*fit_args, tmp_path / "cut", cpu, log=dies_after_two_epochs)
    assert fit(*fit_args, tmp_path / "cut", cpu, resume=True, log=lambda line: None) == ref
    assert metric_rows(tmp_path / "cut") == metric_rows(tmp_path / "ref")
    a, b = (torch.load(tmp_path / r / "last.pt", weights_only=False) for r in ("ref", "cut"))
    assert a["ema_updates"] == b["ema_updates"] > 0
    for key in ("model", "train_model"):
        for name, value in a[key].items():
            torch.testing.assert_close(value, b[key][name], rtol=0, atol=0)
    averaged = {n for n, v in a["model"].items() if v.is_floating_point()}
    assert any(not torch.equal(a["model"][n], a["train_model"][n]) for n in averaged)
    # the last epoch's validation log-loss is that of the average, not of the trained weights
    val = TestWindows(dataset, list(split.val), clip_config(cfg))
    labels = np.array([dataset.videos[n].label for n in split.val])
    logged = float(metric_rows(tmp_path / "ref")[-1]["val_bce"])
    for key, matches in (("model", True), ("train_model", False)):
        model = build_model(cfg.model, dataset.n_landmarks)
        model.load_state_dict(a[key])
        p = np.clip(predict(cfg, model, val, len(split.val), cpu), 1e-6, 1 - 1e-6)
        bce = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
        assert np.isclose(bce, logged, rtol=1e-5) == matches


def test_a_kill_between_last_and_best_checkpoint_is_mended(tmp_path, demo_root, monkeypatch):
    """Killed after last.pt recorded an improving epoch but before best.pt was written: resuming
    starts after that epoch, so best.pt must be mended from last.pt (else the fold tests the
    previous best while its records select this one)."""
    dataset = open_dataset("demo", demo_root)
    split = dataset.split(1, seed=0)
    cfg = load_config(tiny_config(tmp_path, demo_root, epochs=4))
    fit_args = (cfg, dataset, list(split.train), list(split.val))
    cpu = resolve_device("cpu")
    ref = fit(*fit_args, tmp_path / "ref", cpu, log=lambda line: None)
    assert ref["best_epoch"] > 1, "pick a seed whose best epoch is not the first"

    class Killed(Exception):
        pass

    real = loop.save_checkpoint

    def dies_writing_the_best(path, **payload):
        if Path(path).name == "best.pt" and payload["state"]["epoch"] + 1 == ref["best_epoch"]:
            raise Killed
        real(path, **payload)

    monkeypatch.setattr(loop, "save_checkpoint", dies_writing_the_best)
    with pytest.raises(Killed):
        fit(*fit_args, tmp_path / "cut", cpu, log=lambda line: None)
    monkeypatch.setattr(loop, "save_checkpoint", real)
    stale = torch.load(tmp_path / "cut" / "best.pt", weights_only=False)["state"]["best_epoch"]
    assert stale < ref["best_epoch"]
    assert fit(*fit_args, tmp_path / "cut", cpu, resume=True, log=lambda line: None) == ref
    a, b = (torch.load(tmp_path / r / "best.pt", weights_only=False) for r in ("ref", "cut"))
    assert a["state"] == b["state"]
    for name, value in a["model"].items():
        torch.testing.assert_close(value, b["model"][name], rtol=0, atol=0)


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


def test_meshsmilenet_trains_without_dmarkers(tmp_path, demo_root):
    (demo_root / "dmarkers.npz").rename(tmp_path / "dmarkers.npz")
    try:
        cfg = str(tiny_config(tmp_path, demo_root, epochs=1))
        assert smile_point.main(["--config", cfg, "--fold", "1", "--out", str(tmp_path / "d")]) == 2
        assert (
            smile_point.main(
                [
                    "--config",
                    cfg,
                    "--fold",
                    "1",
                    "--model",
                    "meshsmilenet",
                    "--out",
                    str(tmp_path / "m"),
                ]
            )
            == 0
        )
        assert load_config(tmp_path / "m" / "fold_01" / "config.yaml").train.dmarker_weight == 0
    finally:
        (tmp_path / "dmarkers.npz").rename(demo_root / "dmarkers.npz")


def test_missing_dataset_is_one_clear_line(tmp_path, capsys):
    code = smile_point.main(
        ["--dataset", "uva", "--data-root", str(tmp_path / "uva"), "--fold", "1"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "no landmarks under" in err and "--dataset demo" in err
    assert len(err.strip().splitlines()) == 1


def test_bad_fold_and_override_are_errors(tmp_path, demo_root, capsys):
    cfg = str(tiny_config(tmp_path, demo_root))
    assert smile_point.main(["--config", cfg, "--fold", "9", "--out", str(tmp_path / "x")]) == 2
    assert smile_point.main(["--config", cfg, "--set", "train.nope=1"]) == 2
    assert "unknown key" in capsys.readouterr().err


def test_a_diverged_fold_is_named_and_the_others_still_run(tmp_path, demo_root, capsys):
    cfg = str(tiny_config(tmp_path, demo_root, epochs=3, warmup_epochs=0, grad_clip=0.0))
    out = tmp_path / "run"
    args = ["--config", cfg, "--lr", "1e9", "--out", str(out)]
    assert smile_point.main([*args, "--fold", "all"]) == 1
    err = capsys.readouterr().err
    summary = err[err.index("fold 1 failed", err.index("fold 3 failed")) :]  # the end list
    assert all(f"fold {k} failed:" in summary for k in (1, 2, 3))  # every fold was tried
    assert "the training loss is not finite (diverged)" in err and "lower --lr" in err
    assert "3 of 3 folds diverged; no results table" in err and not (out / "results.md").exists()


def test_run_path_errors_are_one_line(tmp_path, demo_root, capsys):
    cfg = str(tiny_config(tmp_path, demo_root, epochs=1))
    (tmp_path / "afile").write_text("")
    assert smile_point.main(["--config", cfg, "--out", str(tmp_path / "afile" / "sub")]) == 2
    assert smile_point.main(["--config", cfg, "--folds", str(demo_root / "labels.csv")]) == 2
    assert smile_point.main(["--config", cfg, "--fold", "\u00b2"]) == 2  # "2" superscript
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and "afile" in err[0]
    assert "labels.csv: a file; --folds takes a folder" in err[1]
    assert "give a fold number 1..3" in err[2]
    out = tmp_path / "run"
    assert smile_point.main(["--config", cfg, "--fold", "1", "--out", str(out)]) == 0
    (out / "fold_01" / "test.json").unlink()
    (out / "fold_01" / "last.pt").write_text("garbage")
    assert smile_point.main(["--config", cfg, "--fold", "1", "--out", str(out), "--resume"]) == 2
    assert "last.pt: not a readable checkpoint" in capsys.readouterr().err


def test_stale_dmarker_table_is_refused(tmp_path, demo_root):
    import shutil

    import numpy as np

    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    first = sorted((root / "npy").glob("*.npy"))[0]
    arr = np.load(first)
    time.sleep(0.01)
    np.save(first, arr + 0.001)  # re-extracted landmarks: the table no longer describes them
    with pytest.raises(ValueError, match="changed since the table was built.*dmarker.py"):
        open_dataset("demo", root).dmarkers()
    # in a run it stops at once, on the first fold: an error of every fold is not a fold's failure
    cfg = str(tiny_config(tmp_path, root, epochs=1))
    assert smile_point.main(["--config", cfg, "--fold", "all", "--out", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r" / "fold_02").exists()


@pytest.mark.parametrize(
    ("rule", "footer"),
    [("val", "Epoch and threshold chosen"), ("fixed", "Threshold fixed at 0.5, epoch chosen")],
)
def test_results_table_names_the_threshold_rule(tmp_path, rule, footer):
    videos = {
        "a": {"label": 1, "probability": 0.7},
        "b": {"label": 0, "probability": 0.6},
        "c": {"label": 0, "probability": 0.2},
    }
    fold = dict(n=3, best_epoch=4, threshold=0.5, accuracy=2 / 3, auc=1.0, f1=0.8, videos=videos)
    summary = write_results(tmp_path, "demo", "deepmarkernet", {1: fold, 2: fold}, rule)
    assert summary["pooled"] == {"accuracy": pytest.approx(2 / 3), "auc": 1.0, "n": 6}
    table = (tmp_path / "results.md").read_text()
    assert footer in table
    assert "| 1 | 3 | 4 | 0.500 | 0.667 | 1.000 | 0.800 |" in table


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
    summary = write_results(tmp_path, "demo", "deepmarkernet", rows, "fixed")
    assert summary["mean_std"]["f1"] == {"mean": 1.0, "std": 0.0, "folds": 1}
    table = (tmp_path / "results.md").read_text()
    assert "F1 mean over the 1 folds with a spontaneous video" in table
    assert "AUC mean over the 1 folds whose test part has both classes" in table
    assert "std: population standard deviation" in table


def test_mend_best_cases(tmp_path):
    """best.pt against the records of last.pt: the same epoch is kept; one epoch ahead (written
    before last.pt by earlier versions) is kept for the rerun to rewrite; the last epoch's
    improvement lost to a kill is copied from last.pt; anything else is refused."""
    from training.checkpoint import mend_best, save_checkpoint

    def write(name, epoch, best_epoch):
        save_checkpoint(tmp_path / name, state={"epoch": epoch, "best_epoch": best_epoch})

    def best_epoch():
        return torch.load(tmp_path / "best.pt", weights_only=False)["state"]["best_epoch"]

    write("last.pt", 4, 3)
    write("best.pt", 2, 3)
    mend_best(tmp_path, {"epoch": 4, "best_epoch": 3})
    assert best_epoch() == 3
    write("best.pt", 5, 6)  # epoch 6 (index 5) improved, killed before last.pt
    mend_best(tmp_path, {"epoch": 4, "best_epoch": 3})
    assert best_epoch() == 6
    write("last.pt", 4, 5)  # epoch 5 improved, killed before best.pt
    write("best.pt", 2, 3)
    mend_best(tmp_path, {"epoch": 4, "best_epoch": 5})
    assert best_epoch() == 5
    write("best.pt", 1, 2)
    with pytest.raises(ValueError, match="holds epoch 2 but the fold.s records select epoch 3"):
        mend_best(tmp_path, {"epoch": 4, "best_epoch": 3})


def test_resume_refuses_changed_dmarker_targets(tmp_path, demo_root):
    """A fold started on one D-Marker table and resumed on a rebuilt one would train on two
    target sets: refused. The same table resumes."""
    from data.dmarker_cache import load_dmarker_table

    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    cfg = load_config(tiny_config(tmp_path, root, epochs=4))

    class Killed(Exception):
        pass

    def fit_cut(resume):
        dataset = open_dataset("demo", root)
        split = dataset.split(1, seed=0)
        lines = []

        def dies_after_two_epochs(line):
            lines.append(line)
            if len(lines) == 3:
                raise Killed

        args = (cfg, dataset, list(split.train), list(split.val), tmp_path / "cut")
        fit(*args, resolve_device("cpu"), resume=resume, log=dies_after_two_epochs)

    with pytest.raises(Killed):
        fit_cut(resume=False)
    with pytest.raises(Killed):
        fit_cut(resume=True)  # same table: resumes (and is cut again)
    table = load_dmarker_table(root / "dmarkers.npz")
    table.mirrored = table.mirrored + 1.0
    table.save(root / "dmarkers.npz")
    with pytest.raises(ValueError, match=r"last.pt: the D-Marker targets changed since this fold"):
        fit_cut(resume=True)
