"""Resuming a fold: a killed run resumes to the uninterrupted result (also with weight averaging),
a kill between the two checkpoint writes is mended, changed D-Marker targets and another fold's
checkpoints are refused, and an unreadable checkpoint fails its fold only."""

from __future__ import annotations

import json
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
from tiny_run import Killed, dies_at_line, metric_rows, reference_fit, tiny_config

import smile_point
import training.loop as loop
from data.claim import held
from data.clips import TestWindows
from data.datasets import open_dataset
from data.dmarker_table import load_dmarker_table
from models import build_model
from training.checkpoint import mend_best, save_checkpoint
from training.config import load_config
from training.evaluate import clip_config, predict
from training.loop import fit, resolve_device

REPO = Path(__file__).resolve().parents[1]


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
    fit_args, cpu, ref = reference_fit(tmp_path, demo_root, ema_decay=0.8)
    cfg, dataset, _, val_names = fit_args
    with pytest.raises(Killed):  # after two epochs
        fit(*fit_args, tmp_path / "cut", cpu, log=dies_at_line(3))
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
    val = TestWindows(dataset, val_names, clip_config(cfg))
    labels = np.array([dataset.videos[n].label for n in val_names])
    logged = float(metric_rows(tmp_path / "ref")[-1]["val_bce"])
    for key, matches in (("model", True), ("train_model", False)):
        model = build_model(cfg.model, dataset.n_landmarks)
        model.load_state_dict(a[key])
        p = np.clip(predict(cfg, model, val, len(val_names), cpu), 1e-6, 1 - 1e-6)
        bce = -np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p))
        assert np.isclose(bce, logged, rtol=1e-5) == matches


def test_a_kill_between_last_and_best_checkpoint_is_mended(tmp_path, demo_root, monkeypatch):
    """Killed after last.pt recorded an improving epoch but before best.pt was written: resuming
    starts after that epoch, so best.pt must be mended from last.pt (else the fold tests the
    previous best while its records select this one)."""
    fit_args, cpu, ref = reference_fit(tmp_path, demo_root)
    assert ref["best_epoch"] > 1, "pick a seed whose best epoch is not the first"
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


def test_mend_best_cases(tmp_path):
    """best.pt against the records of last.pt: the same epoch is kept; one epoch ahead (written
    before last.pt by earlier versions) is kept for the rerun to rewrite; the last epoch's
    improvement lost to a kill is copied from last.pt; anything else is refused."""

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

    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    cfg = load_config(tiny_config(tmp_path, root, epochs=4))
    lines = []

    def fit_cut(resume):
        dataset = open_dataset("demo", root)
        split = dataset.split(1, seed=0)
        lines.clear()
        args = (cfg, dataset, list(split.train), list(split.val), tmp_path / "cut")
        fit(*args, resolve_device("cpu"), resume=resume, log=dies_at_line(3, lines))

    with pytest.raises(Killed):
        fit_cut(resume=False)
    with pytest.raises(Killed):
        fit_cut(resume=True)  # same table: resumes (and is cut again)
    assert lines[1].endswith("last.pt after epoch 2") and lines[2].startswith("\x1b[36mepoch   3")
    table = load_dmarker_table(root / "dmarkers.npz")
    table.mirrored = table.mirrored + 1.0
    table.save(root / "dmarkers.npz")
    with pytest.raises(ValueError, match=r"last.pt: the D-Marker targets changed since this fold"):
        fit_cut(resume=True)


def test_resume_refuses_a_checkpoint_of_another_fold(tmp_path, demo_root):
    """A fold folder resumed on other training or validation videos (copied to another fold,
    or one checkpoint copied in) would go on from, or test, a model that may have learnt from
    this fold's test subjects: refused, also where no D-Marker targets tell the folds apart
    (MeshSmileNet)."""
    cfg = load_config(tiny_config(tmp_path, demo_root, epochs=4))
    cfg.model.name = "meshsmilenet"
    cfg.train.dmarker_weight = 0.0
    dataset = open_dataset("demo", demo_root)

    def fit_cut(fold, out, resume):
        split = dataset.split(fold, seed=0)
        with pytest.raises(Killed):
            fit(cfg, dataset, list(split.train), list(split.val), out, resolve_device("cpu"),
                resume=resume, log=dies_at_line(3))  # fmt: skip

    fit_cut(1, tmp_path / "one", resume=False)
    fit_cut(1, tmp_path / "one", resume=True)  # its own fold resumes
    shutil.copytree(tmp_path / "one", tmp_path / "copied")
    with pytest.raises(ValueError, match=r"copied/last.pt: a checkpoint of other training or "):
        fit_cut(2, tmp_path / "copied", resume=True)

    fit_cut(2, tmp_path / "two", resume=False)
    best = torch.load(tmp_path / "one" / "best.pt", weights_only=False)
    best["state"] = torch.load(tmp_path / "two" / "best.pt", weights_only=False)["state"]
    save_checkpoint(tmp_path / "two" / "best.pt", **best)  # fold 1's weights, fold 2's epoch
    with pytest.raises(ValueError, match=r"two/best.pt: a checkpoint of other training or "):
        fit_cut(2, tmp_path / "two", resume=True)


@pytest.mark.parametrize("model", ["deepmarkernet", "dmarker-logreg", "meshsmilenet"])
def test_finished_fold_is_kept_only_on_the_same_dmarkers(tmp_path, demo_root, model, capsys):
    """--resume keeps a finished fold's test.json, unless the D-Marker table it learned from was
    rebuilt since (its results would mix two tables); MeshSmileNet uses none and is kept."""
    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    args = ["--config", str(tiny_config(tmp_path, root, epochs=1)), "--model", model]
    args += ["--fold", "2", "--out", str(tmp_path / "run")]
    assert smile_point.main(args) == 0
    test_json = tmp_path / "run" / "fold_02" / "test.json"
    first = test_json.read_text()
    assert smile_point.main([*args, "--resume"]) == 0
    assert "finished earlier, kept" in capsys.readouterr().out
    table = load_dmarker_table(root / "dmarkers.npz")
    table.mirrored = table.mirrored + 1.0
    table.save(root / "dmarkers.npz")
    if model == "meshsmilenet":
        assert smile_point.main([*args, "--resume"]) == 0
        assert json.loads(first)["dmarker_digest"] is None
    else:
        assert smile_point.main([*args, "--resume"]) == 2
        err = capsys.readouterr().err
        assert "finished folds made on other data than the dataset holds now: fold_02 (its " in err
        assert "D-Marker rows differ from the table read now)" in err
        assert "delete" in err and len(err.strip().splitlines()) == 1
    assert test_json.read_text() == first


def test_finished_fold_is_kept_only_on_the_same_folds(tmp_path, demo_root, capsys):
    """--resume keeps a finished fold only while the dataset's fold still holds the videos and
    labels it was trained and tested on (here the fold folders 1 and 2 swap names)."""
    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    args = ["--config", str(tiny_config(tmp_path, root, epochs=1)), "--model", "meshsmilenet"]
    args += ["--fold", "2", "--out", str(tmp_path / "run"), "--resume"]
    assert smile_point.main(args) == 0
    labels = root / "labels"
    (labels / "1").rename(labels / "x")
    (labels / "2").rename(labels / "1")
    (labels / "x").rename(labels / "2")
    assert smile_point.main(args) == 2
    err = capsys.readouterr().err
    assert "fold_02 (its videos or labels changed since)" in err
    (labels / "1").rename(labels / "x")
    (labels / "2").rename(labels / "1")
    (labels / "x").rename(labels / "2")
    assert smile_point.main(args) == 0
    assert "finished earlier, kept" in capsys.readouterr().out


def test_finished_folds_of_earlier_versions(tmp_path, demo_root, capsys):
    """A test.json without the digests (written before they existed) is kept while its test and
    validation videos match and its D-Marker table is older than it; a table rebuilt since is
    refused. All changed folds are named at once, before anything is written."""
    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    args = ["--config", str(tiny_config(tmp_path, root, epochs=1)), "--model", "dmarker-logreg"]
    args += ["--out", str(tmp_path / "run"), "--resume"]
    assert smile_point.main([*args, "--fold", "all"]) == 0
    for test_json in (tmp_path / "run").glob("fold_*/test.json"):
        old = json.loads(test_json.read_text())
        del old["fold_digest"], old["dmarker_digest"]
        test_json.write_text(json.dumps(old))
    assert smile_point.main([*args, "--fold", "all"]) == 0
    assert capsys.readouterr().out.count("finished earlier, kept") == 3
    later = time.time() + 10
    os.utime(root / "dmarkers.npz", (later, later))
    assert smile_point.main([*args, "--fold", "all"]) == 2
    err = capsys.readouterr().err
    rows = "its D-Marker rows differ from the table read now"
    assert f"fold_01 ({rows}), fold_02 ({rows}), fold_03 ({rows})" in err


def test_an_unreadable_checkpoint_fails_its_fold_and_the_others_still_run(
    tmp_path, demo_root, capsys
):
    cfg = str(tiny_config(tmp_path, demo_root, epochs=1))
    out = tmp_path / "run"
    args = ["--config", cfg, "--out", str(out), "--fold", "all"]
    assert smile_point.main(args) == 0
    for k in (2, 3):  # as if killed in fold 2: fold 3 not started
        (out / f"fold_0{k}" / "test.json").unlink()
    (out / "fold_02" / "last.pt").write_bytes(b"cut")
    (out / "results.md").unlink()
    assert smile_point.main([*args, "--resume"]) == 1
    err = capsys.readouterr().err
    assert "fold 2 failed:" in err and "fold_02/last.pt: not a readable checkpoint" in err
    assert f"delete {out / 'fold_02'} and resume" in err and "1 of 3 folds failed" in err
    assert (out / "fold_03" / "test.json").exists() and not (out / "fold_02" / "test.json").exists()
    (out / "fold_03" / "test.json").unlink()  # and a damaged best.pt (read first on resume)
    (out / "fold_03" / "best.pt").write_bytes(b"cut")
    assert smile_point.main([*args, "--resume"]) == 1
    err = capsys.readouterr().err
    assert "fold_03/best.pt: not a readable checkpoint" in err and "2 of 3 folds failed" in err
    for k in (2, 3):  # the fix the messages name
        shutil.rmtree(out / f"fold_0{k}")
    assert smile_point.main([*args, "--resume"]) == 0 and (out / "results.md").exists()


def test_meshsmilenet_runs_compare_without_the_dmarker_weight(tmp_path):
    """MeshSmileNet has no D-Marker head: runs saved with another weight (earlier versions kept
    the one --set model.name left) are the same run; paths compare as the folders they name."""
    from training.cross_validation import check_same_run

    saved = load_config(None, ["model.name=meshsmilenet", "train.dmarker_weight=0.8"])
    now = load_config(None, ["model.name=meshsmilenet", "train.dmarker_weight=0.0"])
    now.data.folds = str(Path(now.data.root) / "labels")
    check_same_run(saved, now, tmp_path)
    now.train.lr = 1.0
    with pytest.raises(ValueError, match=r"another config \(train.lr 0.0005 -> 1.0\)"):
        check_same_run(saved, now, tmp_path)


def test_sigterm_to_the_process_group_stops_training_as_ctrl_c_does(tmp_path, demo_root):
    """timeout, scancel and preemption signal the whole group, DataLoader workers too: their
    death by the signal made the run fail ("DataLoader worker is killed", exit 2) or print a
    traceback, where Ctrl-C ends it with one line and --resume continues."""
    cfg = tiny_config(tmp_path, demo_root, epochs=200)
    out = tmp_path / "run"
    cmd = [sys.executable, "smile_point.py", "--config", str(cfg), "--fold", "1", "--out",
           str(out), "--set", "data.num_workers=2"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip
    metrics = out / "fold_01" / "metrics.csv"
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            time.sleep(0.5)  # mid-epoch, workers running
            os.killpg(proc.pid, signal.SIGTERM)
            break
        time.sleep(0.05)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted: finished epochs and folds are kept" in err
    assert "Traceback" not in err and "DataLoader worker" not in err
    assert not any(held(f) for f in out.glob(".*.lock"))
