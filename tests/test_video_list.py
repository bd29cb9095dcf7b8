"""Which videos a dataset holds (data/video_list.py): what a researcher's own labels.csv gets wrong
is refused or reported, never trained on silently."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from landmark_synth import make_folder_dataset, name_seed, synth_video, write_csv, write_video

from data.datasets import Video, open_dataset
from data.folds import GENERATED_META
from data.video_list import check_no_copies


def _rows(root):
    lines = (root / "labels.csv").read_text().splitlines()[1:]
    return [tuple(line.split(",")) for line in lines]


def test_one_file_named_twice_is_refused(tmp_path):
    """A row with the extension and one without name one landmark file: it would be one video
    scored twice, with two labels."""
    make_folder_dataset(tmp_path, n_subjects=3, per_subject=2)
    rows = _rows(tmp_path) + [("subj 0 clip 1", "1", "s0")]
    write_csv(tmp_path / "labels.csv", rows)
    csv = tmp_path / "labels.csv"
    file = tmp_path / "npy" / "subj 0 clip 1.mp4.npy"
    message = rf"'subj 0 clip 1' \({re.escape(str(csv))}\) and 'subj 0 clip 1.mp4' \("
    with pytest.raises(
        ValueError, match=message + rf".* name one landmark file, {re.escape(str(file))}"
    ):
        open_dataset("folder", tmp_path)
    assert not (tmp_path / "labels").exists()  # refused before folds are generated


def test_generated_folds_follow_the_listed_videos(tmp_path):
    """Rows added to labels.csv after folds were generated would be left out of every fold."""
    make_folder_dataset(tmp_path, n_subjects=3, per_subject=2)
    assert len(open_dataset("folder", tmp_path, folds_k=3)) == 6
    write_video(tmp_path / "npy", "erin 1.mp4", synth_video(24, 478, seed=7))
    write_video(tmp_path / "npy", "erin 2.mp4", synth_video(24, 478, seed=8))
    write_csv(
        tmp_path / "labels.csv",
        _rows(tmp_path) + [("erin 1.mp4", "1", "erin"), ("erin 2.mp4", "0", "erin")],
    )
    with pytest.raises(ValueError, match=r"folds generated for 6 videos, but .*labels.csv lists 8 "
                       r"now: 2 added to .*labels.csv \(e.g. erin 1.mp4, erin 2.mp4\); delete its "
                       r"fold folders and folds_meta.json"):  # fmt: skip
        open_dataset("folder", tmp_path, folds_k=3)
    for fold in (tmp_path / "labels").iterdir():
        if fold.is_dir():
            for f in fold.iterdir():
                f.unlink()
            fold.rmdir()
    (tmp_path / "labels" / "folds_meta.json").unlink()
    assert len(open_dataset("folder", tmp_path, folds_k=3)) == 8


def test_a_name_of_another_spelling_is_suggested(tmp_path):
    """The file is x.MP4 and labels.csv says x.mp4, or gives a path or the landmark file's own
    name: the message says what to write instead of "extract them"."""
    make_folder_dataset(tmp_path, n_subjects=3, per_subject=2)
    rows = _rows(tmp_path)
    rows[0] = ("SUBJ 0 clip 0.mp4", *rows[0][1:])
    rows[1] = ("videos/s0/subj 0 clip 1.mp4", *rows[1][1:])
    rows[2] = ("npy/subj 1 clip 0.mp4.npy", *rows[2][1:])
    write_csv(tmp_path / "labels.csv", rows)
    with pytest.raises(FileNotFoundError) as e:
        open_dataset("folder", tmp_path)
    assert "SUBJ 0 clip 0.mp4 (" in str(e.value) and "(name it 'subj 0 clip 0.mp4'?)" in str(
        e.value
    )
    assert "(name it 'subj 0 clip 1.mp4'?)" in str(e.value)
    assert "npy/subj 1 clip 0.mp4.npy (" in str(e.value)
    assert "(name it 'subj 1 clip 0.mp4'?)" in str(e.value)


def test_landmark_files_left_out_of_labels_csv_are_reported(tmp_path):
    make_folder_dataset(tmp_path, n_subjects=3, per_subject=2)
    write_video(tmp_path / "npy", "forgotten.mp4", synth_video(24, 478, seed=9))
    with pytest.warns(UserWarning, match=r"1 landmark file\(s\) not in .*labels.csv are left out "
                      r"\(e.g. forgotten.mp4.npy\); add rows to train on them"):  # fmt: skip
        assert len(open_dataset("folder", tmp_path)) == 6


def test_landmark_files_in_no_fold_file_are_reported(tmp_path):
    """Fold files of one's own (or a subset of the published ones) decide what a run uses: the
    landmark files they leave out are named, so a subset run is not taken for the full one."""
    make_folder_dataset(tmp_path, n_subjects=3, per_subject=2)
    open_dataset("folder", tmp_path, folds_k=3)  # generated, then kept as fold files of one's own
    (tmp_path / "labels" / GENERATED_META).unlink()
    for part in (tmp_path / "labels").glob("*/*.json"):  # names without extension: same files
        listed = json.loads(part.read_text())
        part.write_text(json.dumps({k.removesuffix(".mp4"): v for k, v in listed.items()}))
    write_video(tmp_path / "npy", "forgotten.mp4", synth_video(24, 478, seed=9))
    rows = [*_rows(tmp_path), ("forgotten.mp4", "1", "s9")]
    write_csv(tmp_path / "labels.csv", rows)  # listed in labels.csv, in no fold
    with pytest.warns(UserWarning, match=r"1 landmark file\(s\) not in the fold files of "
                      r".*labels are left out \(e.g. forgotten.mp4.npy\); list them in a fold "
                      r"file to use them"):  # fmt: skip
        assert len(open_dataset("folder", tmp_path)) == 6


def test_a_copied_landmark_file_is_refused(tmp_path):
    """The same video under two names (a file copied under another subject's name) would be in
    training and test at once: refused, both files and subjects named."""
    make_folder_dataset(tmp_path, n_subjects=3, per_subject=2)
    npy = tmp_path / "npy"
    original = npy / "subj 0 clip 0.mp4.npy"
    for suffix in (".npy", ".json"):  # subject 2's second clip becomes a copy of it
        shutil.copy(original.with_suffix(suffix), npy / f"subj 2 clip 1.mp4{suffix}")
    with pytest.raises(ValueError) as e:
        open_dataset("folder", tmp_path)
    message = str(e.value)
    assert (
        "subj 0 clip 0.mp4.npy and " in message and "subj 2 clip 1.mp4.npy hold the same" in message
    )
    assert "subject s0" in message and "subject s2" in message
    assert message.endswith("remove the copy from the dataset") and "\n" not in message


def test_copies_are_found_among_files_that_only_start_alike(tmp_path):
    """Files of one length and first frame are compared whole: a and b differ after their first
    frame, b and c are copies."""
    a = synth_video(6, 68, seed=1)
    b = a.copy()
    b[3:] += 0.01
    arrays = {"a": a, "b": b, "c": b.copy(), "d": synth_video(6, 68, seed=2)}
    videos = {}
    for name, arr in arrays.items():
        np.save(tmp_path / f"{name}.npy", arr)
        videos[name] = Video(name, tmp_path / f"{name}.npy", 0, name, 25.0, 640, 480, len(arr))
    with pytest.raises(ValueError, match=r"b.npy and .*c.npy hold the same landmarks \(b: sub"):
        check_no_copies(videos, "fix")
    del videos["c"]
    check_no_copies(videos, "fix")  # a and b start alike only


def test_a_list_that_contradicts_the_dataset_names_is_refused(tmp_path):
    """UvA-NEMO names carry the label (deliberate / spontaneous): a fold file or labels.csv row
    saying otherwise is an error, not a relabelled video."""
    names = [f"{s:03d}_{k}_smile_1" for s in (1, 2, 3) for k in ("deliberate", "spontaneous")]
    for n in names:
        write_video(tmp_path / "npy", f"{n}.mp4", synth_video(5, 68, seed=name_seed(f"{n}.mp4")))
    write_csv(tmp_path / "labels.csv", [(f"{n}.mp4", int("spont" in n), n[:3]) for n in names])
    assert len(open_dataset("uva", tmp_path, folds_k=3)) == 6
    rows = [(f"{n}.mp4", int("spont" in n or n == names[0]), n[:3]) for n in names]
    write_csv(tmp_path / "labels.csv", rows)
    message = rf"labels disagree for 1 video\(s\): \['{names[0]}.mp4 \(.*labels.csv: 1, its uva "
    with pytest.raises(
        ValueError, match=message + r"name: 0\)'\]; correct the source that is wrong"
    ):
        open_dataset("uva", tmp_path, folds_k=3)


def test_subjects_differing_only_in_case_are_refused(tmp_path):
    """ "Alice" and "alice" would be two subjects: one person's videos in train and test."""
    make_folder_dataset(tmp_path, n_subjects=3, per_subject=2)
    rows = _rows(tmp_path)
    rows[1] = (rows[1][0], rows[1][1], "S0 ")
    write_csv(tmp_path / "labels.csv", rows)
    with pytest.raises(ValueError, match=r"labels.csv line 3: subject 'S0' differs from 's0' "
                       r"\(line 2\) only in case or spaces; write one person's"):  # fmt: skip
        open_dataset("folder", tmp_path)


def test_too_many_folds_name_the_setting(tmp_path, capsys):
    """Own data with 3 subjects under the default of 10 folds; SPOS's config leaves k to the
    subjects (leave one subject out, however many there are); the check before any run says
    where the folds will come from."""
    from data.fold_check import main
    from training.config import load_config

    make_folder_dataset(tmp_path, n_subjects=3, per_subject=2)
    assert main(["check", str(tmp_path), "--dataset", "folder"]) == 2
    assert "smile_point.py generates them in <root>/labels at its first run" in (
        capsys.readouterr().err
    )
    with pytest.raises(ValueError, match=r"cannot make 10 subject-independent folds from 3 "
                       r"subjects; generate at most as many folds as subjects \(--set "
                       r"data.n_folds=K\)"):  # fmt: skip
        open_dataset("folder", tmp_path, folds_k=10)
    spos = Path(__file__).resolve().parents[1] / "configs" / "spos.yaml"
    assert load_config(spos, []).data.n_folds is None


def test_the_cli_prints_a_warning_as_one_line(tmp_path):
    import subprocess
    import sys

    make_folder_dataset(tmp_path, n_subjects=3, per_subject=2)
    write_video(tmp_path / "npy", "forgotten.mp4", synth_video(24, 478, seed=9))
    done = subprocess.run(
        [sys.executable, "smile_point.py", "--dataset", "folder", "--data-root", str(tmp_path),
         "--set", "data.n_folds=3", "--fold", "x"],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=300,
    )  # fmt: skip
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and "UserWarning" not in done.stderr
    assert any(
        line.endswith("(e.g. forgotten.mp4.npy); add rows to train on them") for line in lines
    )
    assert lines[-1].endswith("--fold 'x': give a fold number 1..3 or 'all'")


def test_generated_folds_compare_files_not_spellings(tmp_path):
    """BBC folds generated from the landmark folder stay valid when a labels.csv names the same
    files with their extension; a new landmark file is a changed dataset."""
    for i in range(3):
        for stem in ("Genuinesmilecontent", "posedsmilecontent"):
            name = f"{stem}{i}.mp4"
            write_video(tmp_path / "npy", name, synth_video(8, 68, seed=name_seed(name)), fps=None)
    assert len(open_dataset("bbc", tmp_path, folds_k=3)) == 6  # folds named without .mp4
    names = sorted(p.name[: -len(".npy")] for p in (tmp_path / "npy").glob("*.npy"))
    write_csv(tmp_path / "labels.csv", [(n, int(n.startswith("G")), n) for n in names])
    assert len(open_dataset("bbc", tmp_path, folds_k=3)) == 6
    (tmp_path / "labels.csv").unlink()
    write_video(tmp_path / "npy", "posedsmilecontent9.mp4", synth_video(8, 68, seed=9), fps=None)
    with pytest.raises(ValueError, match=r"folds generated for 6 videos, but the landmark folder "
                       r".*npy lists 7 now: 1 added to .*\(e.g. posedsmilecontent9\)"):  # fmt: skip
        open_dataset("bbc", tmp_path, folds_k=3)


def test_names_that_encode_no_label_leave_the_lists_alone(tmp_path, demo_root):
    """Only a name that follows the dataset's pattern is a label source: own names under
    --dataset uva, a BBC name like "composed ..." with its label in labels.csv. Neither the demo
    nor a labels.csv that lists every file warns."""
    import warnings

    make_folder_dataset(tmp_path / "own", n_subjects=3, per_subject=2)
    assert len(open_dataset("uva", tmp_path / "own", folds_k=3)) == 6
    bbc = tmp_path / "bbc"
    write_video(bbc / "npy", "composed smile 1.mp4", synth_video(8, 68, seed=1), fps=None)
    write_video(bbc / "npy", "posed smile 2.mp4", synth_video(8, 68, seed=2), fps=None)
    rows = [("composed smile 1.mp4", 1, "a"), ("posed smile 2.mp4", 0, "b")]
    write_csv(bbc / "labels.csv", [(*r, 25, 1280, 720) for r in rows])  # no rate assumed either
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = open_dataset("bbc", bbc, folds_k=2)
        assert ds.videos["composed smile 1.mp4"].label == 1
        open_dataset("demo", demo_root)


def test_subjects_are_unicode_normalised(tmp_path):
    """ "José" typed composed on one row and decomposed on another is one person."""
    from data.subjects import read_labels_csv

    write_csv(tmp_path / "labels.csv", [("a.mp4", 1, "Jos\u00e9"), ("b.mp4", 0, "Jose\u0301")])
    assert len(set(read_labels_csv(tmp_path / "labels.csv").subjects.values())) == 1
