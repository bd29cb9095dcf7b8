"""smile_point.py --classify: which checkpoints it takes (a fold's best.pt with its
selection.json, a whole run folder) and which it refuses, each with the fix."""

from __future__ import annotations

import json
import shutil

from tiny_run import classify

import smile_point


def test_checkpoints_must_exist_and_be_finished(tmp_path, trained_run, capsys):
    root, out = trained_run
    video = str(sorted((root / "npy").glob("*.npy"))[0])
    assert smile_point.main(["--classify", video]) == 2
    assert "--classify needs --checkpoint" in capsys.readouterr().err
    assert smile_point.main(["--classify", video, "--checkpoint", str(tmp_path)]) == 2
    assert "no best.pt" in capsys.readouterr().err
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    assert smile_point.main(["--classify", video, "--checkpoint", str(junk)]) == 2
    err = capsys.readouterr().err
    assert "junk.pt: not a readable smile_point.py checkpoint" in err and len(err.splitlines()) == 1
    assert err.rstrip().endswith("give a fold's best.pt")
    cut = tmp_path / "cut" / "fold_01" / "best.pt"  # a fold's own best.pt, damaged
    cut.parent.mkdir(parents=True)
    cut.write_bytes((out / "fold_01" / "best.pt").read_bytes()[:1000])
    assert smile_point.main(["--classify", video, "--checkpoint", str(cut)]) == 2
    assert (
        capsys.readouterr()
        .err.rstrip()
        .endswith(f"; delete {cut.parent} and resume its run (--resume runs that fold again)")
    )
    last = str(out / "fold_01" / "last.pt")
    assert smile_point.main(["--classify", video, "--checkpoint", last]) == 2
    assert "last epoch's weights, not the ones validation selected" in capsys.readouterr().err
    shutil.copytree(out, tmp_path / "running")
    (tmp_path / "running" / "fold_02" / "test.json").unlink()  # a fold still training
    assert smile_point.main(["--classify", video, "--checkpoint", str(tmp_path / "running")]) == 2
    assert "fold_02 not finished" in capsys.readouterr().err
    # the finished folds can still be named one by one
    folds = [str(tmp_path / "running" / f"fold_0{k}" / "best.pt") for k in (1, 3)]
    rc, report = classify([video, "--checkpoint", *folds], tmp_path)
    assert rc == 0 and list(report["videos"][0]["per_checkpoint"]) == folds
    # a fold of the run's results.json deleted, or its best.pt: not left out silently
    shutil.copytree(out, tmp_path / "partial")
    shutil.rmtree(tmp_path / "partial" / "fold_02")
    (tmp_path / "partial" / "fold_03" / "best.pt").unlink()
    assert smile_point.main(["--classify", video, "--checkpoint", str(tmp_path / "partial")]) == 2
    assert (
        "partial: no best.pt in fold_02, fold_03; delete those fold folders"
        in capsys.readouterr().err
    )
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "fold_01" / "selection.json").write_text("{")
    assert smile_point.main(["--classify", video, "--checkpoint", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "fold_01/selection.json: not valid JSON" in err and len(err.splitlines()) == 1
    (broken / "fold_01" / "selection.json").write_text('{"threshold": 0.4}')  # no epoch
    assert smile_point.main(["--classify", video, "--checkpoint", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "fold_01/selection.json: not a selection.json of smile_point.py" in err
    assert len(err.splitlines()) == 1


def test_a_checkpoint_without_its_validation_threshold_is_refused(tmp_path, trained_run, capsys):
    """The threshold chosen on validation lives in selection.json: a best.pt copied without it
    (or beside another epoch's) would be scored at another threshold, so it is refused."""
    root, out = trained_run
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(out / "fold_01" / "best.pt", alone / "best.pt")
    video = str(next((root / "npy").glob("*.npy")))
    args = ["--classify", video, "--checkpoint", str(alone / "best.pt")]
    assert smile_point.main(args) == 2
    assert "selection.json beside it, which is missing" in capsys.readouterr().err
    selection = json.loads((out / "fold_01" / "selection.json").read_text())
    (alone / "selection.json").write_text(json.dumps({**selection, "best_epoch": 99}))
    assert smile_point.main(args) == 2
    assert "chosen for epoch 99, but best.pt holds epoch" in capsys.readouterr().err
    shutil.copy(out / "fold_01" / "selection.json", alone / "selection.json")
    assert smile_point.main(args) == 0


def test_copies_of_fold_folders_are_refused(tmp_path, trained_run, capsys):
    """A run folder stands for the folds its results.json lists: a backup copy of a fold would
    count that fold twice in the average."""
    root, out = trained_run
    video = str(sorted((root / "npy").glob("*.npy"))[0])
    backup = tmp_path / "backup"
    shutil.copytree(out, backup)
    shutil.copytree(backup / "fold_01", backup / "fold_01.bak")
    assert smile_point.main(["--classify", video, "--checkpoint", str(backup)]) == 2
    err = capsys.readouterr().err
    assert "fold_01.bak: not fold folders of smile_point.py (fold_NN)" in err
    shutil.rmtree(backup / "fold_01.bak")
    shutil.copytree(backup / "fold_01", backup / "fold_04")
    assert smile_point.main(["--classify", video, "--checkpoint", str(backup)]) == 2
    assert "fold_04 not among the folds its results.json lists" in capsys.readouterr().err


def test_a_run_of_some_folds_is_refused_its_fold_folders_are_not(tmp_path, trained_run, capsys):
    """A run folder without results.json (a --fold N trained_run, or --fold all still going) is not
    whole: refused, naming the folds it has; a fold folder or its best.pt is taken as given."""
    root, out = trained_run
    video = str(sorted((root / "npy").glob("*.npy"))[0])
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copytree(out / "fold_02", partial / "fold_02")
    assert smile_point.main(["--classify", video, "--checkpoint", str(partial)]) == 2
    err = capsys.readouterr().err
    assert f"{partial}: no results.json, so not every fold has run (fold_02 so far)" in err
    assert smile_point.main(["--classify", video, "--checkpoint", str(partial / "fold_02")]) == 0
