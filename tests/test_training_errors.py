"""smile_point.py's refusals and failures, each one clear line naming the fix: a missing or
stale dataset or D-Marker table, bad flags and run folders, folds that cannot train, a diverged
fold, Ctrl-C; and a video the D-Marker table could not measure."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from landmark_synth import build_table_without
from tiny_run import tiny_config

import smile_point
import training.evaluate as evaluate
import training.loop as loop
from data.datasets import open_dataset
from data.dmarker_table import load_dmarker_table

REPO = Path(__file__).resolve().parents[1]


def test_a_table_older_than_the_dataset_is_refused_up_front(tmp_path, demo_root, capsys):
    """A video added after the D-Marker table was built trained without a D-Marker target, and
    nothing said so: refused, like the baseline, before anything is written."""
    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    late = sorted((root / "npy").glob("*.npy"))[0]
    build_table_without(late, root / "dmarkers.npz")
    cfg = str(tiny_config(tmp_path, root, epochs=1))
    assert smile_point.main(["--config", cfg, "--fold", "2", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert f"dmarkers.npz: 1 video(s) not in it (e.g. {late.stem}): the table is older" in err
    assert "python dmarker.py --landmarks" in err and not (tmp_path / "r").exists()


def test_a_video_the_table_could_not_measure_trains_without_dmarkers(tmp_path, demo_root):
    """A video whose D-Markers failed (its lip corners coincide in the first frame) has no row,
    as a stale table's new video has none: it trains on the class loss only, until it changes."""
    from data.dmarker_cache import build_dmarker_table
    from data.dmarker_table import load_dmarker_table

    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    flat = sorted((root / "npy").glob("*.npy"))[1]
    landmarks = np.load(flat)
    landmarks[0, 291] = landmarks[0, 61]  # the lip corners of the first frame at one point
    np.save(flat, landmarks)
    table = build_dmarker_table(root / "npy", output=root / "dmarkers.npz")
    assert list(table.errors) == [flat.stem]
    assert load_dmarker_table(root / "dmarkers.npz").unmeasurable(flat.stem, flat)
    cfg = str(tiny_config(tmp_path, root, epochs=1))
    assert smile_point.main(["--config", cfg, "--fold", "2", "--out", str(tmp_path / "r")]) == 0
    os.utime(flat, ns=(flat.stat().st_atime_ns, flat.stat().st_mtime_ns + 10**9))
    assert smile_point.main(["--config", cfg, "--fold", "2", "--out", str(tmp_path / "s")]) == 2


def test_missing_dataset_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative root is named in full: from another folder it
    code = smile_point.main(["--dataset", "uva", "--data-root", "uva", "--fold", "1"])
    err = capsys.readouterr().err  # would look like one that exists
    assert code == 2
    assert f"no landmarks under {tmp_path / 'uva' / 'npy'}: " in err and "--dataset demo" in err
    assert len(err.strip().splitlines()) == 1
    assert smile_point.main(["--dataset", "folder", "--fold", "1"]) == 2  # no default root
    assert "--dataset folder: give --data-root DIR" in capsys.readouterr().err


@pytest.mark.parametrize("kind", [["--dataset", "uva"], ["--set", "data.dataset=mmi"]])
def test_another_datasets_config_needs_the_data_root(tmp_path, demo_root, capsys, kind):
    """configs/demo.yaml with --dataset uva would read the demo set under demo_data/ as UvA-NEMO
    (and label the run so): refused until --data-root names the dataset's folder."""
    demo = str(REPO / "configs" / "demo.yaml")
    args = ["--config", demo, *kind, "--fold", "1", "--out", str(tmp_path / "r")]
    assert smile_point.main(args) == 2
    err = capsys.readouterr().err
    want = "the data folder demo_data/ is demo's (" + demo + " names it); give "
    assert want in err and "--data-root DIR" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
    given = ["--data-root", str(tmp_path / "mine")]  # named: the dataset's own folder is read
    assert smile_point.main([*args, *given]) == 2
    assert f"no landmarks under {tmp_path / 'mine' / 'npy'}: " in capsys.readouterr().err


@pytest.mark.parametrize(
    ("config", "args"),
    [
        ("data:\n  root: mysmiles\n", ["--dataset", "folder"]),  # the config names no dataset
        (None, ["--dataset", "folder", "--data-root", "demo_data"]),  # the folder given, as is
        (None, ["--set", "data.dataset=folder", "--set", "data.root=demo_data"]),
    ],
)
def test_a_dataset_folder_given_or_unclaimed_is_taken(tmp_path, config, args):
    """The refusal above only where the config names another dataset and its folder was not
    given: a config of one's own that names no dataset, or --data-root equal to the config's."""
    path = REPO / "configs" / "demo.yaml"
    if config:
        path = tmp_path / "my.yaml"
        path.write_text(config)
    cfg = smile_point.build_config(smile_point.parse_args(["--config", str(path), *args]))
    assert cfg.data.dataset == "folder" and cfg.data.root in ("mysmiles", "demo_data")


@pytest.mark.parametrize(
    ("config", "args"),
    [("train:\n  epochs: 2\n", ["--dataset", "mmi"]), ("data:\n  dataset: mmi\n", [])],
)
def test_a_config_that_names_no_folder_leaves_the_default_to_its_dataset(tmp_path, config, args):
    """A config of one's own that names no folder (a dataset or not): its folder is the default
    uva/, which must not be read as MMI."""
    path = tmp_path / "mine.yaml"
    path.write_text(config)
    with pytest.raises(ValueError, match=r"the data folder uva/ is uva's \(the default\); give "):
        smile_point.build_config(smile_point.parse_args(["--config", str(path), *args]))


def test_a_missing_table_is_named_as_missing_when_a_run_goes_on(tmp_path, demo_root, capsys):
    """The table fold 1 learned from was moved away: the next fold is told to build it (not
    that fold 1's rows differ and it should be deleted)."""
    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    cfg = str(tiny_config(tmp_path, root, epochs=1))
    args = ["--config", cfg, "--model", "dmarker-logreg", "--out", str(tmp_path / "run")]
    assert smile_point.main([*args, "--fold", "1"]) == 0
    (root / "dmarkers.npz").rename(tmp_path / "elsewhere.npz")
    assert smile_point.main([*args, "--fold", "2"]) == 2
    err = capsys.readouterr().err
    assert "no dmarkers.npz under" in err and "build it with python dmarker.py" in err


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
    assert "3 of 3 folds failed; no results table" in err and not (out / "results.md").exists()


def test_a_model_diverged_with_a_finite_training_loss_is_a_diverged_fold(
    tmp_path, demo_root, capsys, monkeypatch
):
    """Weights that overflow while the training loss stays finite give NaN validation
    probabilities: a diverged fold (named, the others run), not an sklearn error ending the run."""
    nan = lambda cfg, model, windows, n, device: np.full(n, np.nan)  # noqa: E731
    monkeypatch.setattr(loop, "predict", nan)
    cfg = str(tiny_config(tmp_path, demo_root, epochs=2))
    assert smile_point.main(["--config", cfg, "--fold", "all", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "fold 3 failed: epoch 1: the validation output is not finite (diverged)" in err
    assert "3 of 3 folds failed; no results table" in err


@pytest.mark.parametrize("threshold", ["fixed", "val"])
def test_a_checkpoint_giving_nan_after_its_validations_is_a_diverged_fold(
    tmp_path, demo_root, capsys, monkeypatch, threshold
):
    """Finite at every validation, NaN where the selected checkpoint scores validation again
    for the threshold, or the test fold: the fold is named as diverged with its videos (not an
    sklearn error, nor a NaN threshold)."""
    nan = lambda cfg, model, windows, n, device: np.full(n, np.nan)  # noqa: E731
    calls = []

    def nan_after_the_epoch(cfg, model, windows, n, device):  # 1 epoch: validated, then NaN
        calls.append(n)
        return (real if len(calls) % 2 else nan)(cfg, model, windows, n, device)

    real = loop.predict
    if threshold == "val":
        monkeypatch.setattr(loop, "predict", nan_after_the_epoch)
    else:
        monkeypatch.setattr(evaluate, "predict", nan)
    cfg = str(tiny_config(tmp_path, demo_root, epochs=1, threshold=threshold))
    assert smile_point.main(["--config", cfg, "--fold", "all", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    part = "validation" if threshold == "val" else "test"
    shown = f"fold 2 failed: the selected checkpoint gives no finite probability for {part} videos"
    assert shown in err and "(diverged); train with a lower --lr" in err
    assert "3 of 3 folds failed; no results table" in err


def test_run_path_errors_are_one_line(tmp_path, demo_root, capsys):
    cfg = str(tiny_config(tmp_path, demo_root, epochs=1))
    (tmp_path / "afile").write_text("")
    assert smile_point.main(["--config", cfg, "--out", str(tmp_path / "afile" / "sub")]) == 2
    assert smile_point.main(["--config", cfg, "--folds", str(demo_root / "labels.csv")]) == 2
    assert smile_point.main(["--config", cfg, "--fold", "\u00b2"]) == 2  # "2" superscript
    assert smile_point.main(["--config", cfg, "--out", str(tmp_path / "afile")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4 and "afile" in err[0]
    assert f"--out {tmp_path / 'afile'}: is a file; it must be a folder" in err[3]
    assert "labels.csv: a file; --folds takes a folder" in err[1]
    assert "give a fold number 1..3" in err[2]
    out = tmp_path / "run"
    assert smile_point.main(["--config", cfg, "--fold", "1", "--out", str(out)]) == 0
    (out / "fold_01" / "test.json").unlink()
    (out / "fold_01" / "last.pt").write_text("garbage")
    assert smile_point.main(["--config", cfg, "--fold", "1", "--out", str(out), "--resume"]) == 2
    assert "last.pt: not a readable checkpoint" in capsys.readouterr().err
    assert smile_point.main(["--config", cfg, "--out", ""]) == 2  # an unset shell variable
    assert "--out '': empty; give a folder" in capsys.readouterr().err
    (out / "config.yaml").unlink()  # a run folder that lost its config: each fold keeps a copy
    assert smile_point.main(["--config", cfg, "--fold", "2", "--out", str(out)]) == 2
    assert (
        f"{out}: a started run without its config.yaml; copy {out / 'fold_01' / 'config.yaml'} "
        f"back to {out / 'config.yaml'}, or use --out for a new run" in capsys.readouterr().err
    )


def test_a_fold_that_cannot_train_is_refused_before_any_fold_trains(tmp_path, demo_root, capsys):
    """A training part of one class, or of one subject (no inner validation split by subject),
    was found only when its fold's turn came, after the folds before it had trained."""
    from data.fold_check import main as check

    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    fold3 = root / "labels" / "3" / "train.json"
    train = json.loads(fold3.read_text())
    cfg = str(tiny_config(tmp_path, root, epochs=1))
    out = tmp_path / "run"
    fold3.write_text(json.dumps({n: y for n, y in train.items() if y == 1}))  # spontaneous only
    assert smile_point.main(["--config", cfg, "--fold", "all", "--out", str(out)]) == 2
    assert "fold 3 ('3'): its training part holds spontaneous videos only" in (
        capsys.readouterr().err
    )
    assert not out.exists()  # nothing trained, nothing written
    assert check(["check", str(root / "labels")]) == 1
    assert "PROBLEM: fold 3 ('3'): its training part holds spontaneous" in capsys.readouterr().out
    one = next(iter(train)).split("_")[0]  # the videos of one subject (demo names: s001_...)
    fold3.write_text(json.dumps({n: y for n, y in train.items() if n.startswith(one)}))
    assert smile_point.main(["--config", cfg, "--fold", "all", "--out", str(out)]) == 2
    assert "fold 3 ('3'): cannot split" in capsys.readouterr().err and not out.exists()
    assert check(["check", str(root / "labels")]) == 1
    assert "PROBLEM: fold 3 ('3'): cannot split" in capsys.readouterr().out


def test_stale_dmarker_table_is_refused(tmp_path, demo_root):
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


def test_a_run_folder_holds_one_config(tmp_path, demo_root, capsys):
    """Another fold of a run with another config is refused (it would overwrite the run's
    config.yaml and mix two models in one table); the same root spelled another way, and the
    loader's worker count, are the same run."""
    cfg = str(tiny_config(tmp_path, demo_root, epochs=1))
    out = ["--out", str(tmp_path / "run")]
    assert smile_point.main(["--config", cfg, "--fold", "1", *out]) == 0
    other = ["--config", cfg, "--fold", "2", *out, "--set", "model.dim=12"]
    assert smile_point.main(other) == 2
    assert "was started with another config (model.dim 8 -> 12)" in capsys.readouterr().err
    assert not (tmp_path / "run" / "fold_02").exists()
    same = ["--data-root", f"{demo_root}/", "--folds", str(demo_root / "labels")]
    assert (
        smile_point.main(["--config", cfg, "--fold", "2", *out, *same, "--set=data.num_workers=1"])
        == 0
    )
    # a run stopped before any fold saved a checkpoint is not a run yet: other settings start it
    (tmp_path / "stopped").mkdir()
    shutil.copy(tmp_path / "run" / "config.yaml", tmp_path / "stopped" / "config.yaml")
    assert smile_point.main([*other[:4], "--out", str(tmp_path / "stopped"), *other[-2:]]) == 0


def test_ctrl_c_is_one_line_naming_resume(tmp_path, demo_root, monkeypatch, capsys):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(smile_point, "run_folds", interrupted)
    cfg = str(tiny_config(tmp_path, demo_root, epochs=1))
    assert smile_point.main(["--config", cfg, "--fold", "1", "--out", str(tmp_path / "r")]) == 130
    err = capsys.readouterr().err.strip()
    assert "interrupted" in err and "--resume continues" in err and len(err.splitlines()) == 1


def test_the_dmarker_table_is_named_and_chosen(tmp_path, demo_root, capsys):
    """A second table beside the landmarks (dmarker.py's default output) is not silently
    shadowed by the root's: refused until data.dmarkers names one; the fold says which it read."""
    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    other = load_dmarker_table(root / "dmarkers.npz")
    other.features = other.features + 1.0  # another table beside the landmarks
    other.save(root / "npy" / "dmarkers.npz")
    args = ["--dataset", "demo", "--data-root", str(root), "--model", "dmarker-logreg"]
    args += ["--fold", "1", "--out", str(tmp_path / "run")]
    assert smile_point.main(args) == 2
    err = capsys.readouterr().err
    assert (
        f"two D-Marker tables, {root / 'dmarkers.npz'} and {root / 'npy' / 'dmarkers.npz'}: " in err
    )
    chosen = root / "npy" / "dmarkers.npz"
    assert smile_point.main([*args, "--set", f"data.dmarkers={chosen}"]) == 0
    assert f"; D-Markers from {chosen}" in capsys.readouterr().out


def test_a_second_table_stops_no_run_that_does_not_need_it(tmp_path, demo_root, capsys):
    """MeshSmileNet reads no table: a second one appearing does not stop its resume; a run
    that reads one resumes once data.dmarkers names it (the setting may change between resumes:
    the rows each fold learned from are checked by digest, also when a single fold is run)."""
    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    cfg = str(tiny_config(tmp_path, root, epochs=1))
    msn = ["--config", cfg, "--model", "meshsmilenet", "--out", str(tmp_path / "m")]
    base = ["--config", cfg, "--model", "dmarker-logreg", "--out", str(tmp_path / "b")]
    assert smile_point.main([*msn, "--fold", "1"]) == 0
    assert smile_point.main([*base, "--fold", "1"]) == 0
    other = load_dmarker_table(root / "dmarkers.npz")
    other.features = other.features + 1.0
    other.save(root / "npy" / "dmarkers.npz")
    assert smile_point.main([*msn, "--fold", "all", "--resume"]) == 0
    assert smile_point.main([*base, "--fold", "all", "--resume"]) == 2
    assert "two D-Marker tables" in capsys.readouterr().err
    named = ["--set", f"data.dmarkers={root / 'dmarkers.npz'}"]
    assert smile_point.main([*base, *named, "--fold", "all", "--resume"]) == 0
    assert "fold 1: finished earlier, kept" in capsys.readouterr().out
    fresh = [*base[:-1], str(tmp_path / "b2")]  # a run's next fold, not a resume: its
    assert smile_point.main([*fresh, *named, "--fold", "1"]) == 0  # finished folds stay as made
    other = ["--set", f"data.dmarkers={root / 'npy' / 'dmarkers.npz'}"]
    assert smile_point.main([*fresh, *other, "--fold", "2"]) == 2
    rows = "its D-Marker rows differ from the table read now"
    assert f"fold_01 ({rows}); delete it and run it again (--resume)" in capsys.readouterr().err
