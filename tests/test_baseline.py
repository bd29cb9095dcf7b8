"""The D-Marker logistic-regression baseline (smile_point.py --model dmarker-logreg): the same
folds as the networks, C chosen by subject-grouped inner cross-validation on the training part,
the test fold read once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import smile_point
from data.datasets import open_dataset
from data.demo import generate
from data.folds import GENERATED_META
from training.baseline import CS, fit_baseline, score_baseline
from training.config import load_config
from training.scorers import find_checkpoints


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    generate(root, subjects=6, folds=3, seed=2)
    return root


@pytest.fixture(scope="module")
def run(demo_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "logreg"
    args = ["--dataset", "demo", "--data-root", str(demo_root), "--model", "dmarker-logreg"]
    assert smile_point.main([*args, "--fold", "all", "--out", str(out)]) == 0
    return out


def test_run_writes_the_table_and_scores_each_test_video_once(run, demo_root):
    dataset = open_dataset("demo", demo_root)
    table = dataset.dmarkers()
    table_md = (run / "results.md").read_text()
    assert f"# dmarker-logreg on demo (3 folds of {demo_root / 'labels'})" in table_md
    assert "| fold | test videos | C | threshold |" in table_md
    assert "C chosen by subject-grouped inner cross-validation" in table_md
    for k in (1, 2, 3):
        fold = run / f"fold_{k:02d}"
        result = json.loads((fold / "test.json").read_text())
        selection = json.loads((fold / "selection.json").read_text())
        model = json.loads((fold / "model.json").read_text())
        assert sorted(result["videos"]) == sorted(dataset.fold(k).test)
        assert result["no_dmarkers"] == []
        # C: the lowest inner-CV log-loss of the grid; the threshold fixed by configs/demo.yaml
        losses = {float(c): v for c, v in selection["cv_log_loss"].items()}
        assert sorted(losses) == sorted(CS)
        assert selection["C"] == result["C"] == model["C"] == min(losses, key=losses.get)
        assert result["threshold"] == 0.5
        assert sorted(selection["train"]) == sorted(dataset.fold(k).train)
        assert not set(selection["train"]) & set(result["videos"])
        assert selection["no_dmarkers"] == []
        assert f"| {k} | {result['n']} | {result['C']:g} | 0.500 |" in table_md
        # the stored model reproduces every test probability
        for name, v in result["videos"].items():
            z = (table.get(name) - np.array(model["mean"])) / np.array(model["scale"])
            logit = z @ np.array(model["coef"]) + model["intercept"]
            assert v["probability"] == pytest.approx(1 / (1 + np.exp(-logit)), abs=1e-5)
    summary = json.loads((run / "results.json").read_text())
    assert summary["model"] == "dmarker-logreg"
    assert summary["summary"]["pooled"]["n"] == len(dataset.videos)


def test_fit_never_reads_a_test_videos_dmarkers(demo_root, tmp_path):
    dataset = open_dataset("demo", demo_root)
    fold = dataset.fold(1)
    table = dataset.dmarkers()
    read, real = set(), table.index

    def guarded(name):
        if name in fold.test:
            raise AssertionError(f"fit read the D-Markers of test video {name}")
        read.add(name)
        return real(name)

    table.index = guarded
    cfg = load_config(None, ["data.dataset=demo"])
    fit_baseline(cfg, dataset, list(fold.train), tmp_path)
    assert read == set(fold.train)


def test_a_test_video_without_dmarkers_scores_one_half(demo_root, tmp_path):
    dataset = open_dataset("demo", demo_root)
    fold = dataset.fold(1)
    cfg = load_config(None, ["data.dataset=demo"])
    fitted = fit_baseline(cfg, dataset, list(fold.train), tmp_path)
    table = dataset.dmarkers()
    faceless = fold.test[0]
    table.status[table.index(faceless)] = "no_face"
    result = score_baseline(dataset, list(fold.test), fitted)
    assert result["no_dmarkers"] == [faceless]
    assert result["videos"][faceless]["probability"] == 0.5
    assert result["n"] == len(fold.test)


def test_threshold_rule_val_uses_out_of_fold_probabilities(demo_root, tmp_path):
    """train.threshold=val: the accuracy-maximising threshold of the inner-CV probabilities of
    the chosen C, never of the test part (refitting with another test part changes nothing)."""
    dataset = open_dataset("demo", demo_root)
    fold = dataset.fold(1)
    cfg = load_config(None, ["data.dataset=demo", "train.threshold=val"])
    fitted = fit_baseline(cfg, dataset, list(fold.train), tmp_path)
    selection = json.loads((tmp_path / "selection.json").read_text())
    assert selection["threshold"] == fitted["threshold"]
    result = score_baseline(dataset, list(fold.test), fitted)
    assert result["threshold"] == fitted["threshold"]
    again = fit_baseline(cfg, dataset, list(fold.train), tmp_path / "again")
    assert again["threshold"] == fitted["threshold"] and again["C"] == fitted["C"]


def test_faceless_training_video_is_left_out_and_missing_one_is_refused(demo_root, tmp_path):
    dataset = open_dataset("demo", demo_root)
    fold = dataset.fold(1)
    cfg = load_config(None, ["data.dataset=demo"])
    table = dataset.dmarkers()
    faceless = fold.train[0]
    table.status[table.index(faceless)] = "no_face"
    fit_baseline(cfg, dataset, list(fold.train), tmp_path)
    assert json.loads((tmp_path / "selection.json").read_text())["no_dmarkers"] == [faceless]
    with pytest.raises(
        ValueError, match=r"dmarkers.npz: 1 video.s. not in it .e.g. ghost.*rebuild"
    ):
        fit_baseline(cfg, dataset, [*fold.train, "ghost"], tmp_path)


def test_network_flags_rerun_and_classify_are_refused(run, demo_root, capsys):
    args = ["--dataset", "demo", "--data-root", str(demo_root), "--model", "dmarker-logreg"]
    assert smile_point.main([*args, "--epochs", "5", "--out", str(run)]) == 2
    assert "--epochs: network training flags; dmarker-logreg takes none" in capsys.readouterr().err
    ignored = ["--set", "train.epochs=5", "--set", "dim=8", "--set", "threshold=fixed"]
    assert smile_point.main([*args, *ignored, "--out", str(run / "x")]) == 2
    err = capsys.readouterr().err
    assert "--set train.epochs, model.dim: dmarker-logreg does not read them" in err
    assert not (run / "x").exists()
    assert smile_point.main([*args, "--fold", "1", "--out", str(run)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    before = (run / "fold_01" / "test.json").read_bytes()
    assert smile_point.main([*args, "--fold", "1", "--out", str(run), "--resume"]) == 0
    assert (run / "fold_01" / "test.json").read_bytes() == before  # finished folds are kept
    with pytest.raises(ValueError, match="a dmarker-logreg run has no network to classify with"):
        find_checkpoints([run])


@pytest.mark.parametrize("model", ["dmarker-logreg", "deepmarkernet"])
def test_no_dmarker_table_is_one_clear_line(demo_root, tmp_path, capsys, model):
    """The baseline and DeepMarkerNet's D-Marker loss need the table: refused before anything is
    written (the folds generated for a dataset without fold files included), with the command
    that builds it."""
    root = tmp_path / "demo"
    root.mkdir()
    for item in demo_root.iterdir():
        if item.name not in ("dmarkers.npz", "labels"):
            (root / item.name).symlink_to(item)
    out = tmp_path / "run"
    assert smile_point.main(["--dataset", "demo", "--data-root", str(root),
                             "--model", model, "--out", str(out)]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert f"no dmarkers.npz under {root} or {root / 'npy'}: " in err
    assert len(err.strip().splitlines()) == 1
    assert f"python dmarker.py --landmarks {root / 'npy'} --output {root / 'dmarkers.npz'}" in err
    assert ("meshsmilenet trains without it" in err) == (model == "deepmarkernet")
    assert not out.exists()  # refused before anything is written
    assert not (root / "labels").exists()
    (root / "dmarkers.npz").symlink_to(demo_root / "dmarkers.npz")
    if not torch.cuda.is_available():  # refused later, by the device: still nothing written
        assert smile_point.main(["--dataset", "demo", "--data-root", str(root),
                                 "--device", "cuda", "--out", str(out)]) == 2  # fmt: skip
        assert "no CUDA device" in capsys.readouterr().err
        assert not out.exists() and not (root / "labels").exists()
    assert smile_point.main(["--dataset", "demo", "--data-root", str(root),
                             "--model", "dmarker-logreg", "--out", str(out)]) == 0  # fmt: skip
    assert (root / "labels" / GENERATED_META).exists()  # a run that starts writes them


def test_the_baseline_reports_no_validation_part(demo_root, tmp_path, capsys):
    """It fits the whole training part (the networks' training and validation videos)."""
    dataset = open_dataset("demo", demo_root)
    split = dataset.split(1, seed=0)
    args = ["--dataset", "demo", "--data-root", str(demo_root), "--model", "dmarker-logreg"]
    assert smile_point.main([*args, "--fold", "1", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert f"videos train {len(split.train) + len(split.val)}, test {len(split.test)}; " in out
    assert "val " not in out.split("videos train")[1].splitlines()[0]


def test_a_rare_class_gets_fewer_inner_folds(demo_root, tmp_path):
    """Two spontaneous videos among many posed ones: the inner cross-validation uses two folds
    rather than asking scikit-learn for five (a warning, or "n_splits=5 cannot be greater than
    the number of members in each class" when both classes are that rare)."""
    import warnings

    dataset = open_dataset("demo", demo_root)
    train = list(dataset.fold(1).train)
    spontaneous = [n for n in train if dataset.videos[n].label == 1]
    two = [next(n for n in spontaneous if dataset.subjects[n] == s) for s in
           sorted({dataset.subjects[n] for n in spontaneous})[:2]]  # fmt: skip
    train = [n for n in train if dataset.videos[n].label == 0] + two
    cfg = load_config(None, ["data.dataset=demo"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nor its "least populated class" warning
        fit_baseline(cfg, dataset, train, tmp_path)
    assert json.loads((tmp_path / "selection.json").read_text())["inner_folds"] == 2
    with pytest.raises(ValueError, match=r"\[\d+, 1\] videos per class \(posed, spontaneous\): "
                       r"use fewer folds \(data.n_folds where they are generated"):  # fmt: skip
        fit_baseline(cfg, dataset, train[:-1], tmp_path)


def test_a_fold_folder_of_another_name_is_named(demo_root, tmp_path, capsys):
    """Fold folders 0..2: --fold 1 is the first in numeric order, folder 0, and says so."""
    import shutil

    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    for k in (1, 2, 3):
        (root / "labels" / str(k)).rename(root / "labels" / str(k - 1))
    args = ["--dataset", "demo", "--data-root", str(root), "--model", "dmarker-logreg"]
    assert smile_point.main([*args, "--fold", "1", "--out", str(tmp_path / "r")]) == 0
    assert "fold 1/3 (0/): videos train" in capsys.readouterr().out


def test_a_results_table_that_cannot_be_written_is_one_line(run, demo_root, tmp_path, capsys):
    """Writing results.json / results.md is inside the error handling: a failure there (here
    results.md is a folder) is one line, not a traceback; the folds stay finished."""
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "results.md").unlink()
    (copy / "results.md").mkdir()
    args = ["--dataset", "demo", "--data-root", str(demo_root), "--model", "dmarker-logreg"]
    capsys.readouterr()
    assert smile_point.main([*args, "--fold", "all", "--out", str(copy), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "results.md" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert all((copy / f"fold_{k:02d}" / "test.json").exists() for k in (1, 2, 3))


@pytest.mark.parametrize("content", ["{}", "[]"])
def test_resume_refuses_a_kept_result_of_another_kind(run, demo_root, tmp_path, capsys, content):
    """A finished fold's test.json that is valid JSON but not a result (an edit) is one line
    naming it and the fix when --resume would keep it."""
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    (copy / "fold_02" / "test.json").write_text(content)
    args = ["--dataset", "demo", "--data-root", str(demo_root), "--model", "dmarker-logreg"]
    capsys.readouterr()
    assert smile_point.main([*args, "--fold", "all", "--out", str(copy), "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"{copy / 'fold_02' / 'test.json'}: not the expected file" in err
    assert "delete that fold folder and resume" in err and len(err.strip().splitlines()) == 1
