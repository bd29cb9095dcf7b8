"""Fold files, fold generation, the inner validation split and ``python -m data.folds check``."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections import Counter

import numpy as np
import pytest

from data.files import run_cli
from data.fold_check import check_folds
from data.folds import (
    Fold,
    generate_folds,
    make_folds,
    read_fold_files,
    read_folds,
    resolve_fold,
    split_train_val,
    write_folds,
)
from data.subjects import subjects_for


def _toy(n_subjects=40, seed=0):
    """Names, labels, subjects: 1-5 videos per subject, about 1/3 spontaneous."""
    rng = np.random.default_rng(seed)
    names, labels, subjects = [], {}, {}
    for s in range(n_subjects):
        for j in range(int(rng.integers(1, 6))):
            n = f"p{s:03d}_v{j}"
            names.append(n)
            labels[n] = int(rng.random() < 0.33)
            subjects[n] = f"p{s:03d}"
    return names, labels, subjects


def test_uva_reference_folds(repo_root):
    folds, labels = read_fold_files(repo_root / "uva" / "labels")
    assert [f.name for f in folds] == [str(i) for i in range(1, 11)]  # numeric, not 1, 10, 2
    assert [f.index for f in folds] == list(range(1, 11))
    assert len(labels) == 1240
    assert Counter(labels.values()) == {0: 643, 1: 597}
    subjects, _ = subjects_for("uva", labels)
    assert len(set(subjects.values())) == 400
    assert check_folds(folds, subjects, labels) == []
    for f in folds:
        assert not {subjects[n] for n in f.train} & {subjects[n] for n in f.test}
        assert len(f.train) + len(f.test) == 1240
    assert sorted(n for f in folds for n in f.test) == sorted(labels)
    assert resolve_fold(folds, 10)[0].name == "10"
    assert resolve_fold(folds, "2")[0].name == "2"
    assert len(resolve_fold(folds, "all")) == 10
    with pytest.raises(ValueError, match="out of range"):
        resolve_fold(folds, 11)


def test_mmi_reference_folds(shared_dir):
    folds, labels = read_fold_files(shared_dir / "reference-folds" / "mmi")
    assert len(folds) == 9 and len(labels) == 184
    assert Counter(labels.values()) == {0: 46, 1: 138}
    subjects, rule = subjects_for("mmi", labels, folds=folds)
    assert "fold membership" in rule and len(set(subjects.values())) == 9
    assert check_folds(folds, subjects, labels) == []


def test_cli_check_says_when_subjects_come_from_the_folds(tmp_path, capsys):
    """MMI sessions without session metadata: the subjects are the test folds themselves, so no
    leak can be seen; "ok" says that it could not be checked."""
    from data.fold_check import main

    labels = {str(i): i % 2 for i in range(100, 106)}
    groups = [["100", "101"], ["102", "103"], ["104", "105"]]
    folds = [Fold(i + 1, str(i + 1), tuple(n for g in groups if g is not t for n in g), tuple(t))
             for i, t in enumerate(groups)]  # fmt: skip
    write_folds(tmp_path / "labels", folds, labels)
    assert main(["check", str(tmp_path / "labels"), "--dataset", "mmi"]) == 0
    out = capsys.readouterr().out
    assert "NOT VERIFIABLE" in out and out.endswith("\nok (subject independence not verifiable)\n")


def test_make_folds_properties():
    names, labels, subjects = _toy()
    folds = make_folds(names, labels, subjects, k=5, seed=3)
    assert len(folds) == 5 and [f.name for f in folds] == ["1", "2", "3", "4", "5"]
    assert check_folds(folds, subjects, labels) == []  # subject-independent, covering
    assert sorted(n for f in folds for n in f.test) == sorted(names)
    total = len(names)
    rate = np.mean([labels[n] for n in names])
    for f in folds:
        assert set(f.train) | set(f.test) == set(names)
        assert abs(len(f.test) - total / 5) <= 3
        assert abs(np.mean([labels[n] for n in f.test]) - rate) < 0.12  # stratified
    # deterministic, independent of input order, seed-dependent
    assert make_folds(names[::-1], labels, subjects, k=5, seed=3) == folds
    assert make_folds(names, labels, subjects, k=5, seed=4) != folds
    with pytest.raises(ValueError, match="subjects"):
        make_folds(names, labels, subjects, k=41, seed=0)


def test_write_read_roundtrip(tmp_path):
    names, labels, subjects = _toy(12)
    folds = make_folds(names, labels, subjects, k=3, seed=0)
    write_folds(tmp_path, folds, labels)
    back, back_labels = read_fold_files(tmp_path)
    assert back_labels == labels
    assert [(f.index, f.name, set(f.train), set(f.test)) for f in back] == [
        (f.index, f.name, set(f.train), set(f.test)) for f in folds
    ]


def test_numeric_fold_order(tmp_path):
    for k in (1, 2, 10, 11):
        (tmp_path / str(k)).mkdir()
        (tmp_path / str(k) / "train.json").write_text(json.dumps({f"a{k}": 0}))
        (tmp_path / str(k) / "test.json").write_text(json.dumps({f"b{k}": 1}))
    assert [f.name for f in read_folds(tmp_path)] == ["1", "2", "10", "11"]


def test_bad_fold_files(tmp_path):
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "train.json").write_text(json.dumps({"a": 2}))
    (tmp_path / "1" / "test.json").write_text("{}")
    with pytest.raises(ValueError, match="train.json.*'a'"):
        read_folds(tmp_path)
    (tmp_path / "1" / "train.json").write_text(json.dumps({"a": 0}))
    (tmp_path / "1" / "test.json").unlink()
    with pytest.raises(FileNotFoundError, match="test.json"):
        read_folds(tmp_path)


def test_check_folds_finds_leak_overlap_and_coverage():
    labels = {n: 0 for n in "abcd"}
    subjects = {"a": "s1", "b": "s1", "c": "s2", "d": "s3"}
    leak = [Fold(1, "1", ("a", "c"), ("b", "d")), Fold(2, "2", ("b", "d"), ("a", "c"))]
    problems = check_folds(leak, subjects, labels)
    assert any("leak" in p and "s1" in p for p in problems)
    overlap = [Fold(1, "1", ("a", "b", "c"), ("c", "d")), Fold(2, "2", ("d",), ("a", "b", "c"))]
    problems = check_folds(overlap, subjects, labels)
    assert any("both train and test" in p for p in problems)
    assert any("more than one test part" in p for p in problems)
    uncovered = [Fold(1, "1", ("a", "b", "c"), ("d",))]
    assert any("no test part" in p for p in check_folds(uncovered, subjects, labels))
    # "d" and "d.mp4" name one landmark file (data.names.match_names): one video
    labels["d.mp4"], subjects["d.mp4"] = 0, "s3"
    twice = [Fold(1, "1", ("a", "b", "d.mp4"), ("c", "d")), Fold(2, "2", ("c",), ("a", "b"))]
    problems = check_folds(twice, subjects, labels)
    assert any("both train and test: d.mp4" in p for p in problems)
    moved = [Fold(1, "1", ("a", "b"), ("c", "d")), Fold(2, "2", ("c", "d"), ("a", "b", "d.mp4"))]
    assert any("d.mp4 (folds 1, 2)" in p for p in check_folds(moved, subjects, labels))
    labels["d.avi"], subjects["d.avi"] = 0, "s4"  # d.mp4 and d.avi are two files
    apart = [
        Fold(1, "1", ("a", "b"), ("c", "d.avi")),
        Fold(2, "2", ("c", "d.avi"), ("a", "b", "d.mp4")),
    ]
    assert check_folds(apart, subjects, labels) == []


def test_split_train_val():
    names, labels, subjects = _toy(60, seed=1)
    train, val = split_train_val(names, labels, subjects, val_fraction=0.2, seed=0)
    assert set(train) | set(val) == set(names) and not set(train) & set(val)
    assert not {subjects[n] for n in train} & {subjects[n] for n in val}
    assert 0.12 < len(val) / len(names) < 0.28
    rate = np.mean([labels[n] for n in names])
    assert abs(np.mean([labels[n] for n in val]) - rate) < 0.1
    assert split_train_val(names, labels, subjects, 0.2, seed=0) == (train, val)
    assert train == [n for n in names if n in set(train)]  # input order kept
    with pytest.raises(ValueError, match="subject"):
        split_train_val(["x", "y"], {"x": 0, "y": 1}, {"x": "s", "y": "s"})


def test_validation_never_takes_a_class_out_of_training():
    """Subject A holds every spontaneous video: whichever subject the seeded order visits first,
    A stays in training; with one subject per class there is no split to make."""
    labels = {f"a{i}": 1 for i in range(10)} | {f"{s}{i}": 0 for s in "bc" for i in range(5)}
    subjects = {n: n[0] for n in labels}
    for seed in range(20):
        train, val = split_train_val(list(labels), labels, subjects, 0.15, seed=seed)
        assert {labels[n] for n in train} == {0, 1} and val, seed
        assert {subjects[n] for n in val} in ({"b"}, {"c"})
    with pytest.raises(ValueError, match="single class: add subjects"):
        split_train_val(["a", "b"], {"a": 1, "b": 0}, {"a": "A", "b": "B"})


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "data.folds", "check", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


def test_cli_check_uva(repo_root):
    res = _cli("uva/labels", cwd=repo_root)
    assert res.returncode == 0, res.stderr
    assert "10 folds, 1240 videos, 400 subjects" in res.stdout
    lines = [ln.split() for ln in res.stdout.splitlines()]
    fold1 = next(ln for ln in lines if ln[:2] == ["1", "1"])
    assert [int(v) for v in fold1[2:]] == [1116, 361, 577, 539, 124, 39, 66, 58]


def test_cli_check_fails_on_leak(tmp_path, repo_root):
    labels = {
        "001_deliberate_smile_1": 0,
        "001_spontaneous_smile_2": 1,
        "002_deliberate_smile_1": 0,
        "002_spontaneous_smile_1": 1,
    }
    names = sorted(labels)
    folds = [
        Fold(1, "1", tuple(names[:1] + names[2:]), (names[1],)),
        Fold(2, "2", (names[1],), tuple(names[:1] + names[2:])),
    ]
    write_folds(tmp_path / "labels", folds, labels)
    res = _cli(tmp_path, cwd=repo_root)
    assert res.returncode == 1
    assert "leak" in res.stdout and "001" in res.stdout
    res = _cli(tmp_path / "nothing", cwd=repo_root)
    assert res.returncode == 2 and "no fold folders" in res.stderr


def test_cli_check_without_landmarks_still_checks_labels_against_names(tmp_path, capsys):
    """A UvA-NEMO name carries its label: a fold file that says otherwise is a problem even when
    no landmark folder lets the check open the dataset as training does."""
    from data.fold_check import main

    labels = {"001_deliberate_smile_1": 1, "001_spontaneous_smile_2": 1,
              "002_deliberate_smile_1": 0, "002_spontaneous_smile_1": 1}  # fmt: skip
    one, two = sorted(labels)[:2], sorted(labels)[2:]
    write_folds(tmp_path / "labels", [Fold(1, "1", tuple(one), tuple(two)),
                                      Fold(2, "2", tuple(two), tuple(one))], labels)  # fmt: skip
    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "not checked as smile_point.py opens the dataset: no landmark folder" in out
    assert "labels disagree for 1 video(s): ['001_deliberate_smile_1 (" in out
    assert "its uva name: 0" in out


def test_cli_check_folder_dataset_with_csv_and_landmarks(tmp_path, repo_root):
    from landmark_synth import make_folder_dataset

    from data.datasets import open_dataset

    make_folder_dataset(tmp_path, n_subjects=4, per_subject=2)
    open_dataset("folder", tmp_path, folds_k=2)  # writes generated folds to labels/
    res = _cli(tmp_path, "--landmarks", tmp_path / "npy", cwd=repo_root)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 folds, 8 videos, 4 subjects (subject rule: subject column of" in res.stdout
    (tmp_path / "npy" / "subj 3 clip 1.mp4.npy").unlink()
    res = _cli(tmp_path, "--landmarks", tmp_path / "npy", cwd=repo_root)
    assert res.returncode == 1 and "subj 3 clip 1.mp4" in res.stdout


def test_cli_check_refuses_what_training_refuses(tmp_path, capsys):
    """The check opens the dataset as smile_point.py does: a label that labels.csv and the fold
    files disagree on, or a name no landmark file has, fails it with training's message, which
    names the fold file."""
    from landmark_synth import build_table_without, make_folder_dataset

    from data.datasets import open_dataset
    from data.dmarker_cache import build_dmarker_table
    from data.fold_check import main

    make_folder_dataset(tmp_path, n_subjects=4, per_subject=2)
    open_dataset("folder", tmp_path, folds_k=2)  # writes generated folds to labels/
    assert main(["check", str(tmp_path)]) == 0
    assert capsys.readouterr().out.endswith("\nok\n")
    assert main(["check", str(tmp_path), "--landmarks", str(tmp_path / "nyp")]) == 2  # a typo
    assert f"--landmarks {tmp_path / 'nyp'}: no such folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a mistyped kind printed "ok" after a note
        main(["check", str(tmp_path), "--dataset", "fodler"])
    assert "invalid choice: 'fodler'" in capsys.readouterr().err
    csv = tmp_path / "labels.csv"
    good = csv.read_text()
    csv.write_text(good.replace("subj 0 clip 0.mp4,0,", "subj 0 clip 0.mp4,1,"))
    test = next(p for p in (tmp_path / "labels").glob("*/test.json") if "subj 0" in p.read_text())
    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"PROBLEM: {tmp_path}: labels disagree for 1 video(s)" in out
    assert f"subj 0 clip 0.mp4 ({test}: 0, {csv}: 1)" in out
    csv.write_text(good)
    fold2 = tmp_path / "labels" / "2" / "test.json"
    fold2.write_text(json.dumps({**json.loads(fold2.read_text()), "ghost": 1}))
    assert main(["check", str(tmp_path)]) == 1  # generated folds list what labels.csv does
    out = capsys.readouterr().out
    assert f"folds generated for 9 videos, but {csv} lists 8 now: 1 no longer listed (e.g. " in out
    (tmp_path / "labels" / "folds_meta.json").unlink()  # fold files of one's own
    assert main(["check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"no landmark file in {tmp_path / 'npy'}: ghost ({fold2})" in out
    labels, subset, npy = (tmp_path / x for x in ("labels", "labels_extracted", "npy"))
    named = f"python -m data.folds subset {labels} {subset} --landmarks {npy}, then train with "
    assert f"{named}--folds {subset} (not the published protocol: say so)" in out
    assert main(["subset", str(labels), str(subset), "--landmarks", str(npy)]) == 0  # it works
    assert "ghost" in (subset / "subset.json").read_text()
    assert main(["check", str(subset), "--landmarks", str(npy)]) == 0
    capsys.readouterr()
    fold2.write_text(
        json.dumps({k: v for k, v in json.loads(fold2.read_text()).items() if k != "ghost"})
    )
    bad = tmp_path / "npy" / "subj 1 clip 1.mp4.npy"
    arr = np.load(bad)
    arr[2, 3, 0] = np.inf
    np.save(bad, arr)
    assert main(["check", str(tmp_path)]) == 1
    assert f"{bad}: landmarks contain NaN or inf" in capsys.readouterr().out
    np.save(bad, np.nan_to_num(arr, posinf=0.5))
    build_dmarker_table(tmp_path / "npy", output=tmp_path / "dmarkers.npz")
    assert main(["check", str(tmp_path)]) == 0
    capsys.readouterr()
    np.save(bad, np.nan_to_num(arr, posinf=0.6))  # the table no longer describes the file
    assert main(["check", str(tmp_path)]) == 1
    assert f"dmarkers.npz: {bad.name} changed since the table was built" in capsys.readouterr().out
    build_table_without(bad, tmp_path / "dmarkers.npz")  # built before bad was added
    assert main(["check", str(tmp_path)]) == 1  # training would refuse it
    out = capsys.readouterr().out
    assert "dmarkers.npz: 1 video(s) not in it (e.g. subj 1 clip 1.mp4)" in out
    assert "meshsmilenet reads no table" in out


def test_validation_part_gets_both_classes_when_it_can():
    """SPOS-like layouts: few subjects, one class rare. Whenever two or more training subjects
    hold each class, the validation part must hold both (AUC and threshold need them)."""
    rng = np.random.default_rng(0)
    for trial in range(200):
        n_subj = int(rng.integers(3, 8))
        labels, subjects = {}, {}
        for s in range(n_subj):
            for j in range(int(rng.integers(1, 6))):
                name = f"s{s}_{j}"
                labels[name] = int(rng.random() < 0.8)  # posed (0) is rare
                subjects[name] = f"s{s}"
        train, val = split_train_val(list(labels), labels, subjects, 0.15, seed=trial)
        assert {subjects[n] for n in train}.isdisjoint(subjects[n] for n in val)
        holders = [{subjects[n] for n in labels if labels[n] == c} for c in (0, 1)]
        if all(len(h) >= 2 for h in holders):
            assert {labels[n] for n in val} == {0, 1}, trial


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "data.folds", "check", "{root}"],
        ["dmarker.py", "--landmarks", "{root}/npy", "--output", "{tmp}/table.npz"],
        ["-m", "data.demo", "--out", "{tmp}/demo", "--subjects", "4", "--folds", "2"],
    ],
)
def test_a_reader_gone_early_ends_a_cli_quietly(tmp_path, demo_root, command):
    """`... | head` closes the pipe early: exit status 1 and no BrokenPipeError traceback
    (every CLI runs its main through data.files.run_cli)."""
    import os
    from pathlib import Path

    args = [a.format(root=demo_root, tmp=tmp_path) for a in command]
    read, write = os.pipe()
    os.close(read)  # the reader has gone before the first line
    try:
        done = subprocess.run(
            [sys.executable, *args], stdout=write, stderr=subprocess.PIPE, text=True,
            cwd=Path(__file__).resolve().parents[1], timeout=300,
        )  # fmt: skip
    finally:
        os.close(write)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "BrokenPipeError" not in done.stderr


def test_a_command_stopped_without_words_of_its_own_ends_in_one_line(capsys):
    """Ctrl-C, or SIGTERM (timeout, scancel), in a command with no handler of its own (compare,
    data.folds, data.demo_fit, data.demo_cues) printed a KeyboardInterrupt traceback."""

    def main() -> int:
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as e:
        run_cli(main)
    assert e.value.code == 130 and capsys.readouterr().err == "\ninterrupted\n"


def test_folds_another_run_generated_meanwhile_are_taken_if_alike_else_refused(tmp_path):
    """Two runs of a folder without folds, started together: the second's write failed and it
    trained on its own folds, unsaved, while labels/ held the first's (its resume then refused)."""
    names = [f"s{i}_{j}" for i in range(6) for j in range(2)]
    labels = {n: int(n.endswith("_1")) for n in names}
    subjects = {n: n.split("_")[0] for n in names}
    mine = generate_folds(tmp_path / "labels", names, labels, subjects, "csv", 3, seed=0)
    theirs = generate_folds(tmp_path / "labels", names, labels, subjects, "csv", 3, seed=1)
    assert [f.test for f in mine.folds] != [f.test for f in theirs.folds]
    theirs.save()  # the other run, first
    with pytest.raises(ValueError, match="another run generated other folds there meanwhile"):
        mine.save()
    same = generate_folds(tmp_path / "labels", names, labels, subjects, "csv", 3, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # taken: no "using them unsaved"
        same.save()
    assert [f.test for f in read_folds(tmp_path / "labels")] == [f.test for f in theirs.folds]
