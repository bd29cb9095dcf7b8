"""open_dataset for every kind, on small synthetic landmark files in tmp dirs."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from landmark_synth import (
    make_folder_dataset,
    name_seed,
    synth_video,
    uva_subjects,
    write_csv,
    write_video,
)

from data import folds as folds_module
from data.datasets import open_dataset
from data.files import UMASK
from data.folds import GENERATED_META, Fold, read_fold_files, write_folds
from data.frame_info import DATASET_DEFAULTS
from data.io import meta_path
from data.subjects import subjects_for


def _write_folds(root, folds, labels):
    write_folds(
        root / "labels",
        [Fold(i + 1, str(i + 1), tuple(tr), tuple(te)) for i, (tr, te) in enumerate(folds)],
        labels,
    )


def test_uva_published_folds_and_defaults(tmp_path, repo_root):
    _, labels = read_fold_files(repo_root / "uva" / "labels")
    arrays = {
        name: synth_video(3, 68, seed=name_seed(name)) for name in labels
    }  # each video its own (copies refused)
    for name, arr in arrays.items():  # published files: "<name>.mp4.npy", no sidecar
        write_video(tmp_path / "npy", f"{name}.mp4", arr, fps=None)
    ds = open_dataset("uva", tmp_path, folds_dir=repo_root / "uva" / "labels")
    assert len(ds.videos) == 1240 and len(ds.folds) == 10
    assert len(set(ds.subjects.values())) == 400
    v = ds.videos["001_deliberate_smile_2"]
    assert (v.subject, v.label, v.fps, v.width, v.height) == ("001", 0, 50.0, 1920, 1080)
    assert v.file.name == "001_deliberate_smile_2.mp4.npy"
    assert ds.fold(10).name == "10"
    expected = arrays[v.name] * np.array([1920, 1080, 1920])
    np.testing.assert_allclose(ds.landmarks(v.name), expected, rtol=1e-6)


def test_uva_without_fold_files_makes_and_writes_folds(tmp_path):
    for s in range(1, 13):
        for kind, j in (("deliberate", 1), ("spontaneous", 2), ("spontaneous", 3)):
            name = f"{s:03d}_{kind}_smile_{j}.mp4"
            write_video(tmp_path / "npy", name, synth_video(5, 68, seed=name_seed(name)))
    with pytest.raises(FileNotFoundError, match=r"lables: no fold files .*leave out --folds"):
        open_dataset("uva", tmp_path, folds_dir=tmp_path / "lables")  # a typo: nothing generated
    assert not (tmp_path / "lables").exists() and not (tmp_path / "labels").exists()
    ds = open_dataset("uva", tmp_path, folds_k=4, seed=1)
    assert len(ds.folds) == 4 and len(ds.videos) == 36
    assert ds.videos["003_spontaneous_smile_2"].label == 1
    assert ds.videos["003_spontaneous_smile_2"].fps == 25.0  # sidecar beats the default
    meta = json.loads((tmp_path / "labels" / GENERATED_META).read_text())
    assert (meta["k"], meta["seed"]) == (4, 1)
    again = open_dataset("uva", tmp_path)  # reads the written files
    assert [(f.name, set(f.test)) for f in again.folds] == [(f.name, set(f.test)) for f in ds.folds]
    with pytest.raises(ValueError, match="holds 4 generated folds, data.n_folds asks for 5"):
        open_dataset("uva", tmp_path, folds_k=5)
    (tmp_path / "labels" / GENERATED_META).unlink()  # fold files of one's own: taken as they are
    assert len(open_dataset("uva", tmp_path, folds_k=5).folds) == 4


def test_a_quick_run_extraction_is_refused(tmp_path):
    """Landmarks extracted with --max-frames hold the start of a video: never a training video."""
    uva_subjects(tmp_path / "npy")
    quick = meta_path(tmp_path / "npy" / "002_spontaneous_smile_1.mp4.npy")
    quick.write_text(json.dumps({**json.loads(quick.read_text()), "max_frames": 5}))
    with pytest.raises(ValueError, match=r"002_spontaneous_smile_1.mp4.npy: a quick run .*without"):
        open_dataset("uva", tmp_path, folds_k=3)
    other = meta_path(tmp_path / "npy" / "003_deliberate_smile_1.mp4.npy")
    other.write_text(json.dumps({**json.loads(other.read_text()), "max_frames": 5}))
    with pytest.raises(ValueError, match=r"without --max-frames \(also 1 more: 003_deliberate"):
        open_dataset("uva", tmp_path, folds_k=3)  # every file named, not one per run
    other.write_text(json.dumps({**json.loads(other.read_text()), "max_frames": None}))
    quick.write_text(json.dumps({**json.loads(quick.read_text()), "max_frames": 50}))
    assert len(open_dataset("uva", tmp_path, folds_k=3).videos) == 6  # the video ended first


def test_a_sidecar_of_another_array_is_refused(tmp_path):
    """A sidecar left from another extraction (other frame count) would give the array another
    video's fps: the dataset names it, as --classify and dmarker.py do."""
    uva_subjects(tmp_path / "npy")
    stale = meta_path(tmp_path / "npy" / "003_deliberate_smile_1.mp4.npy")
    stale.write_text(json.dumps({**json.loads(stale.read_text()), "n_frames": 9}))
    with pytest.raises(ValueError, match=r"003_deliberate_smile_1.mp4.json: describes another arr"):
        open_dataset("uva", tmp_path, folds_k=3)


def test_no_folds_are_generated_for_a_refused_dataset(tmp_path):
    """Folds are written once every check has passed: a damaged landmark file leaves no fold
    folder (fixing it by removing the file would otherwise meet folds that list it)."""
    uva_subjects(tmp_path / "npy", n=6)
    empty = tmp_path / "npy" / "006_spontaneous_smile_1.mp4.npy"
    np.save(empty, np.zeros((0, 68, 3), np.float32))
    meta_path(empty).unlink()
    with pytest.raises(ValueError, match="006_spontaneous_smile_1.mp4.npy: no frames"):
        open_dataset("uva", tmp_path, folds_k=3)
    assert not (tmp_path / "labels").exists()
    empty.unlink()
    ds = open_dataset("uva", tmp_path, folds_k=3, save_folds=False)
    assert not (tmp_path / "labels").exists() and len(ds.folds) == 3
    ds.save_folds()
    assert [f.test for f in open_dataset("uva", tmp_path).folds] == [f.test for f in ds.folds]


def test_generated_folds_appear_whole(tmp_path, monkeypatch):
    """A write interrupted after some fold files leaves no fold folder behind (and no temp files);
    into a folder that holds other files the folds are moved in."""
    uva_subjects(tmp_path / "npy", n=6)
    real = folds_module.atomic_write_json

    def fail_on_meta(path, obj):
        if str(path).endswith(GENERATED_META):
            raise OSError("disk full")
        return real(path, obj)

    monkeypatch.setattr(folds_module, "atomic_write_json", fail_on_meta)
    with pytest.warns(UserWarning, match="using them unsaved") as caught:
        open_dataset("uva", tmp_path, folds_k=3)
    assert caught[0].filename == __file__  # the warning points at the caller of open_dataset
    assert sorted(p.name for p in tmp_path.iterdir()) == ["npy"]
    monkeypatch.undo()
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "README.txt").write_text("my notes")
    ds = open_dataset("uva", tmp_path, folds_k=3)
    written = sorted(p.name for p in (tmp_path / "labels").iterdir())
    assert written == ["1", "2", "3", "README.txt", GENERATED_META]
    (tmp_path / "labels" / "README.txt").unlink()
    shutil.rmtree(tmp_path / "labels")
    open_dataset("uva", tmp_path, folds_k=3)  # into no folder: the temp folder is renamed
    assert (tmp_path / "labels").stat().st_mode & 0o777 == 0o777 & ~UMASK
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels", "npy"]
    assert [f.test for f in open_dataset("uva", tmp_path).folds] == [f.test for f in ds.folds]


def test_names_with_spaces_with_or_without_extension(tmp_path):
    names = {"my clip 1": 0, "my clip 2.mp4": 1, "other one": 0, "other two.avi": 1}
    for n in ("my clip 1.mp4", "my clip 2.mp4", "other one.mov", "other two.avi"):
        write_video(tmp_path / "npy", n, synth_video(6, 68, seed=name_seed(n)))
    write_csv(tmp_path / "labels.csv", [(n, lab, n.split()[0]) for n, lab in names.items()])
    _write_folds(
        tmp_path,
        [
            (["other one", "other two.avi"], ["my clip 1", "my clip 2.mp4"]),
            (["my clip 1", "my clip 2.mp4"], ["other one", "other two.avi"]),
        ],
        names,
    )
    ds = open_dataset("folder", tmp_path)
    assert ds.videos["my clip 1"].file.name == "my clip 1.mp4.npy"
    assert ds.videos["my clip 2.mp4"].file.name == "my clip 2.mp4.npy"
    assert ds.videos["other one"].file.name == "other one.mov.npy"


def test_missing_landmark_files_are_named(tmp_path):
    make_folder_dataset(tmp_path, n_subjects=3, per_subject=2)
    (tmp_path / "npy" / "subj 1 clip 0.mp4.npy").unlink()
    (tmp_path / "npy" / "subj 2 clip 1.mp4.npy").unlink()
    with pytest.raises(FileNotFoundError) as err:
        open_dataset("folder", tmp_path)
    assert "2 listed video(s)" in str(err.value)
    assert "subj 1 clip 0.mp4" in str(err.value) and "subj 2 clip 1.mp4" in str(err.value)


def test_no_landmarks_message(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r"no landmarks under .*uva/npy: run extract_landmarks.py <uva videos folder> "
        r"--dataset uva --output .*uva/npy, or use --dataset demo",
    ):
        open_dataset("uva", tmp_path / "uva")
    with pytest.raises(FileNotFoundError, match="python -m data.demo --out"):
        open_dataset("demo", tmp_path / "demo")


def test_leak_raises(tmp_path):
    make_folder_dataset(tmp_path, n_subjects=3, per_subject=2)
    labels = {f"subj {s} clip {j}.mp4": (s + j) % 2 for s in range(3) for j in range(2)}
    names = sorted(labels)  # subj 0 clip 0 in test, subj 0 clip 1 in train: a leak
    _write_folds(tmp_path, [(names[1:], names[:1]), (names[:1], names[1:])], labels)
    with pytest.raises(ValueError, match=r"subject\(s\) in both train and test \(leak\): s0"):
        open_dataset("folder", tmp_path)
    way = f"or move {tmp_path / 'labels'} away to have subject-independent folds generated there"
    with pytest.raises(ValueError, match=re.escape(way)):
        open_dataset("folder", tmp_path)
    (tmp_path / "labels").rename(tmp_path / "published")
    way = f"or leave out --folds to have subject-independent folds generated in {tmp_path}"
    with pytest.raises(ValueError, match=re.escape(way)):
        open_dataset("folder", tmp_path, folds_dir=tmp_path / "published")
    assert len(open_dataset("folder", tmp_path, folds_k=3).folds) == 3  # as it says
    way = f"or leave out --folds to use the folds in {tmp_path / 'labels'})"  # now there are some
    with pytest.raises(ValueError, match=re.escape(way)):
        open_dataset("folder", tmp_path, folds_dir=tmp_path / "published")


def test_spos_exact_subject_tokens(tmp_path):
    people = ("yi", "ying", "rui", "tomas", "nelly", "riku", "xiaopeng")  # SPOS's seven
    clips = {f"{p}_smile_{j}": j - 1 for p in people for j in (1, 2)}
    for name, label in clips.items():
        write_video(tmp_path / "npy", name, synth_video(8, 68, seed=name_seed(name)), fps=None)
        (tmp_path / ("Spontaneous" if label else "posed") / "happy" / name).mkdir(parents=True)
    for sub in ("posed", "Spontaneous"):  # a NAS's thumbnails in every folder: not a clip
        (tmp_path / sub / "happy" / "@eaDir").mkdir()
    ds = open_dataset("spos", tmp_path)
    assert ds.videos["ying_smile_1"].subject == "ying" and ds.videos["yi_smile_1"].subject == "yi"
    assert ds.videos["yi_smile_2"].label == 1 and ds.videos["yi_smile_1"].fps == 25.0
    assert len(ds.folds) == 7  # leave one subject out: as many folds as subjects
    for f in ds.folds:
        assert len({ds.subjects[n] for n in f.test}) == 1
    yi = next(f for f in ds.folds if "yi_smile_1" in f.test)
    assert set(yi.test) == {"yi_smile_1", "yi_smile_2"}
    elsewhere = tmp_path / "elsewhere"  # landmarks extracted away from the frame folders
    shutil.copytree(tmp_path / "npy", elsewhere / "npy")
    said = rf"no label for 14 video\(s\), .*; SPOS labels come from {elsewhere}/"
    with pytest.raises(ValueError, match=said + r"{posed,spontaneous}/happy/<clip>/: give --data"):
        open_dataset("spos", elsewhere)


def test_mmi_subjects_from_metadata_or_fold_membership(tmp_path):
    labels = {str(i): i % 2 for i in range(100, 106)}
    for name in labels:
        write_video(tmp_path / "npy", name, synth_video(8, 68, seed=name_seed(name)), fps=None)
    groups = [["100", "101"], ["102", "103"], ["104", "105"]]
    folds = [([n for g in groups if g is not t for n in g], t) for t in groups]
    _write_folds(tmp_path, folds, labels)
    with pytest.warns(UserWarning, match="subject independence cannot be checked"):
        ds = open_dataset("mmi", tmp_path)
    assert ds.videos["102"].subject == "group2" and ds.videos["100"].width == 720
    for i, name in enumerate(labels):  # session metadata: subject 7 appears in two test folds
        folder = tmp_path / "Sessions" / name
        folder.mkdir(parents=True)
        subject = 7 if name in ("101", "102") else i
        (folder / "session.xml").write_text(f'<session><subject id="{subject}"/></session>')
    with pytest.raises(ValueError, match=r"leak.*S7"):
        open_dataset("mmi", tmp_path)
    xml = tmp_path / "Sessions" / "104" / "session.xml"
    kept = xml.read_text()
    xml.unlink()  # a session without metadata, not one of the leak's: the leak is still seen
    with pytest.warns(UserWarning, match=r"test folds holding the 1 of 6 sessions .*\(e\.g\. 104"):
        with pytest.raises(ValueError, match=r"leak.*S7"):
            open_dataset("mmi", tmp_path)
    # 104 is one of the people of its test fold: they are one group wherever their sessions are
    subjects, _ = subjects_for(
        "mmi", labels, root=tmp_path, folds=read_fold_files(tmp_path / "labels")[0]
    )
    assert subjects["104"] == subjects["105"] == "group3(S5)" and subjects["101"] == "S7"
    xml.write_text(kept)
    first = tmp_path / "Sessions" / "100" / "session.xml"  # now S7's own test fold is a group:
    first.rename(first.with_suffix(".bak"))  # the leak is named by its group and the person
    with pytest.warns(UserWarning, match="cannot be checked in full"):
        with pytest.raises(ValueError, match=r"leak.*group1\(S7\)"):
            open_dataset("mmi", tmp_path)
    first.with_suffix(".bak").rename(first)
    for name in ("101", "102"):
        (tmp_path / "Sessions" / name / "session.xml").unlink()
        (tmp_path / "Sessions" / name / f"S00{name[-1]}-001.avi").touch()
    assert open_dataset("mmi", tmp_path).videos["102"].subject == "S2"
    # one person whose id a session.xml zero-pads and a video name does not: still one subject
    (tmp_path / "Sessions" / "101" / "session.xml").write_text('<subject id="007"/>')
    (tmp_path / "Sessions" / "102" / "S002-001.avi").rename(tmp_path / "Sessions/102/S7-001.avi")
    with pytest.raises(ValueError, match=r"leak.*S7"):
        open_dataset("mmi", tmp_path)


def test_labels_csv_may_group_a_kinds_subjects_never_split_one(tmp_path):
    """A labels.csv subject column overrides UvA-NEMO's name prefix and MMI's session ids: one
    person split in two could be trained and tested on (the fold checks would see two
    subjects), so that is refused; grouping two persons into one subject is allowed."""
    uva = tmp_path / "uva"
    names = [f"{s:03d}_{c}_smile_{j}" for s in (1, 2, 3) for c in ("deliberate", "spontaneous")
             for j in (1, 2)]  # fmt: skip
    for name in names:
        write_video(uva / "npy", f"{name}.mp4", synth_video(5, 68, seed=name_seed(name)))
    rows = [(f"{n}.mp4", int("spont" in n), "p" + n[:3]) for n in names]
    write_csv(
        uva / "labels.csv", [(*r[:2], "p999" if i == 1 else r[2]) for i, r in enumerate(rows)]
    )
    with pytest.raises(ValueError, match=r"labels.csv: subjects 'p001' \(001_deliberate_smile_1"
                       r"\.mp4\) and 'p999' \(001_deliberate_smile_2.mp4\) are one person by the "
                       r"UvA-NEMO name prefix \(001\)"):  # fmt: skip
        open_dataset("uva", uva, folds_k=3)
    write_csv(uva / "labels.csv", [(*r[:2], "p1-2" if r[2] != "p003" else "p3") for r in rows])
    ds = open_dataset("uva", uva, folds_k=2)  # 001 and 002 grouped: allowed
    assert (
        ds.videos["001_deliberate_smile_1.mp4"].subject
        == ds.videos["002_spontaneous_smile_2.mp4"].subject
    )

    mmi = tmp_path / "mmi"
    for i, name in enumerate(("2031", "2032", "2033", "2034")):
        write_video(mmi / "npy", name, synth_video(8, 68, seed=name_seed(name)), fps=None)
        (mmi / "Sessions" / name).mkdir(parents=True)
        (mmi / "Sessions" / name / f"S00{1 + i // 2}-{name}.avi").touch()
    write_csv(mmi / "labels.csv", [("2031", 1, 9), ("2032", 0, 1), ("2033", 1, 2), ("2034", 0, 2)])
    with pytest.raises(ValueError, match=r"are one person by the MMI session's subject id \(1\)"):
        open_dataset("mmi", mmi, folds_k=2)
    (mmi / "Sessions" / "2031" / "session.xml").write_text("<broken")  # then its video's name
    with pytest.raises(ValueError, match=r"are one person by the MMI session's subject id \(1\)"):
        open_dataset("mmi", mmi, folds_k=2)
    write_csv(mmi / "labels.csv", [("2031", 1, 1), ("2032", 0, 1), ("2033", 1, 2), ("2034", 0, 2)])
    assert open_dataset("mmi", mmi, folds_k=2).videos["2031"].subject == "1"  # the column's


def test_bbc_labels_from_source_folders(tmp_path):
    """Under <root>/videos/, where extraction also finds them (tests/test_extract_jobs.py)."""
    for sub, stem in (("genuine", "Genuinesmilecontent"), ("posed", "posedsmilecontent")):
        (tmp_path / "videos" / sub).mkdir(parents=True)
        for i in range(3):
            name = f"{stem}{i}.mp4"
            (tmp_path / "videos" / sub / name).touch()
            write_video(tmp_path / "npy", name, synth_video(8, 68, seed=name_seed(name)), fps=None)
    ds = open_dataset("bbc", tmp_path)
    assert ds.videos["Genuinesmilecontent1"].label == 1
    assert ds.videos["posedsmilecontent2"].label == 0
    assert len(set(ds.subjects.values())) == 6 and len(ds.folds) == 6
    assert ds.videos["posedsmilecontent2"].width == DATASET_DEFAULTS["bbc"].width
    for sub in ("genuine", "posed"):  # junk beside the videos is not a name under both labels
        (tmp_path / "videos" / sub / ".DS_Store").touch()
        (tmp_path / "videos" / sub / "Thumbs.db").touch()
    assert len(open_dataset("bbc", tmp_path).videos) == 6
    (tmp_path / "videos" / "posed" / "Genuinesmilecontent1.mp4").touch()  # a copy under both
    with pytest.raises(ValueError, match="Genuinesmilecontent1 both labels; remove the wrong"):
        open_dataset("bbc", tmp_path)


def test_two_videos_of_one_name_keep_their_extensions(tmp_path):
    """Without fold files or labels.csv the names come from the landmark files: x.mp4 and x.avi
    would both be "x", so they keep their extensions; the others lose theirs."""
    for stem in ("Genuine x.mp4", "Genuine x.avi", "posed y.mp4", "posed z.mp4"):
        write_video(tmp_path / "npy", stem, synth_video(4, 68, seed=name_seed(stem)), fps=None)
    ds = open_dataset("bbc", tmp_path, folds_k=2)
    assert sorted(ds.videos) == ["Genuine x.avi", "Genuine x.mp4", "posed y", "posed z"]
    assert ds.videos["Genuine x.avi"].file.name == "Genuine x.avi.npy"


def test_labels_csv_must_name_every_video(tmp_path):
    """A labels.csv that misses a video would silently hand subjects to the name rule, where a
    leak could hide: it is refused, naming the file and the videos."""
    for name in ("Genuine a.mp4", "posed b.mp4", "posed c.mp4"):
        write_video(tmp_path / "npy", name, synth_video(4, 68, seed=name_seed(name)), fps=None)
    _write_folds(
        tmp_path,
        [(["Genuine a", "posed b"], ["posed c"]), (["posed c"], ["Genuine a", "posed b"])],
        {"Genuine a": 1, "posed b": 0, "posed c": 0},
    )
    write_csv(tmp_path / "labels.csv", [("Genuine a", 1, "alice"), ("posed b", 0, "alice")])
    lacking = r"labels.csv: no row for 1 of 3 video\(s\), e.g. posed c \(.*labels/1/test.json\)"
    with pytest.raises(ValueError, match=lacking):
        open_dataset("bbc", tmp_path)
    # rows named with the video extension match fold names without it, as landmark files do
    rows = [("Genuine a.mp4", 1, "alice"), ("posed b.mp4", 0, "alice"), ("posed c.mp4", 0, "bob")]
    write_csv(tmp_path / "labels.csv", rows)
    ds = open_dataset("bbc", tmp_path)
    assert ds.subjects == {"Genuine a": "alice", "posed b": "alice", "posed c": "bob"}


def test_split_is_subject_independent(tmp_path):
    make_folder_dataset(tmp_path, n_subjects=8, per_subject=3)
    ds = open_dataset("folder", tmp_path, folds_k=4)
    sp = ds.split(2, val_fraction=0.3, seed=0)
    assert set(sp.train) | set(sp.val) == set(ds.fold(2).train) and sp.test == ds.fold(2).test
    subj = ds.subjects
    assert not {subj[n] for n in sp.train} & {subj[n] for n in sp.val}
    few = open_dataset("folder", make_folder_dataset(tmp_path / "few", n_subjects=2), folds_k=2)
    with pytest.raises(ValueError, match=r"few, fold 1: cannot split .* use fewer folds, or a"):
        few.split(1)  # one training subject: none is left for validation


def test_name_matching_prefers_exact_and_refuses_ambiguity(tmp_path):
    from data.names import landmark_index, match_names

    for n in ("a.mp4", "a.avi", "b", "b.mp4"):
        write_video(tmp_path, n, synth_video(2, 68, seed=name_seed(n)))
    index = landmark_index(tmp_path)
    found, missing = match_names(["a.mp4", "b", "b.mp4", "c"], index)
    assert found["a.mp4"].name == "a.mp4.npy" and found["b"].name == "b.npy"
    assert found["b.mp4"].name == "b.mp4.npy" and missing == ["c"]
    files = f"{tmp_path / 'a.avi.npy'}, {tmp_path / 'a.mp4.npy'}"
    with pytest.raises(ValueError, match=rf"several landmark files \({re.escape(files)}\); name"):
        match_names(["a"], index)
