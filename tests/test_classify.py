"""smile_point.py --classify: new videos and landmark files scored with trained checkpoints, as
the test fold was scored; failures reported while the other inputs are classified. Which
checkpoints it takes: test_classify_checkpoints.py."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_run import classify

import extract_landmarks
import smile_point
from data.frame_info import DATASET_DEFAULTS, FrameDefaults
from training.classify import Verdict, format_verdicts, list_inputs


def test_a_test_fold_video_gets_its_test_probability(tmp_path, trained_run):
    root, out = trained_run
    fold = out / "fold_02"
    tested = json.loads((fold / "test.json").read_text())["videos"]
    names = sorted(tested)[:3]
    files = [str(root / "npy" / f"{n}.npy") for n in names]
    rc, report = classify([*files, "--checkpoint", str(fold / "best.pt")], tmp_path)
    assert rc == 0 and report["failed"] == {}
    got = {v["name"][: -len(".npy")]: v["probability"] for v in report["videos"]}
    assert got == pytest.approx({n: tested[n]["probability"] for n in names}, abs=1e-6)


def test_a_run_folder_averages_its_folds(tmp_path, trained_run):
    root, out = trained_run
    thresholds = [
        json.loads((out / f"fold_0{k}" / "selection.json").read_text())["threshold"]
        for k in (1, 2, 3)
    ]
    assert len(set(thresholds)) > 1  # chosen on each fold's validation split
    # the run folder and one of its folds again: that fold counts once
    again = str(out / "fold_02" / "best.pt")
    rc, report = classify([str(root / "npy"), "--checkpoint", str(out), again], tmp_path)
    assert rc == 0
    assert len(report["videos"]) == len(list((root / "npy").glob("*.npy")))
    for v in report["videos"]:
        per = v["per_checkpoint"]
        assert sorted(Path(p).parent.name for p in per) == ["fold_01", "fold_02", "fold_03"]
        assert v["probability"] == pytest.approx(np.mean(list(per.values())))
        assert v["spontaneous"] == (v["probability"] >= v["threshold"])
        assert v["threshold"] == pytest.approx(np.mean(thresholds))
    # each fold's model gives its own test videos the probability of its test.json
    for k in (1, 2, 3):
        fold = out / f"fold_{k:02d}"
        tested = json.loads((fold / "test.json").read_text())["videos"]
        for v in report["videos"]:
            if (name := v["name"][: -len(".npy")]) in tested:
                assert v["per_checkpoint"][str(fold / "best.pt")] == pytest.approx(
                    tested[name]["probability"], abs=1e-6
                )


def test_a_video_is_extracted_and_scored_like_its_landmark_file(tmp_path, trained_run, pyfeat_data):
    _, out = trained_run
    video = tmp_path / "single_face.mp4"
    shutil.copy(pyfeat_data / "single_face.mp4", video)
    assert extract_landmarks.main([str(video), "--output", str(tmp_path / "npy")]) == 0
    npy = tmp_path / "npy" / "single_face.mp4.npy"
    rc, report = classify(
        [str(video), str(pyfeat_data / "no_face.mp4"), str(npy), "--checkpoint", str(out)],
        tmp_path,
    )
    assert rc == 1  # no_face.mp4 failed, the others were scored
    assert list(report["failed"]) == [str(pyfeat_data / "no_face.mp4")]
    assert "no face found" in report["failed"][str(pyfeat_data / "no_face.mp4")]
    from_video, from_npy = report["videos"]
    assert from_video["name"] == "single_face.mp4" and from_video["face_frames"] == 72
    assert from_video["n_frames"] == from_npy["n_frames"] == 72 and from_video["fps"] == 30
    assert from_video["probability"] == pytest.approx(from_npy["probability"], abs=1e-6)
    assert 0 < from_video["probability"] < 1
    for f in (npy, npy.with_suffix(".json")):  # the landmark file beside its video
        shutil.copy(f, tmp_path)
    rc, report = classify([str(tmp_path), "--checkpoint", str(out)], tmp_path)
    assert rc == 0 and [v["source"] for v in report["videos"]] == [str(video)]  # scored once


def test_a_folder_leaves_out_a_videos_own_landmark_file_where_videos_are_extracted(tmp_path):
    names = ["a.mp4", "a.mp4.npy", "b.mp4.npy", "c.avi", "c.mp4.npy"]
    for n in names:
        (tmp_path / n).write_bytes(b"")
    listed = [p.name for p in list_inputs([tmp_path], skip_extracted=True)]
    assert listed == ["a.mp4", "b.mp4.npy", "c.avi", "c.mp4.npy"]
    assert [p.name for p in list_inputs([tmp_path])] == names  # no backend: the files are all
    given = [tmp_path / "a.mp4", tmp_path / "a.mp4.npy"]  # named by hand: both
    assert list_inputs(given, skip_extracted=True) == given


def test_unusable_inputs_are_named_with_the_fix(tmp_path, trained_run, capsys):
    root, out = trained_run
    src = sorted((root / "npy").glob("*.npy"))[0]
    bare = tmp_path / "published.npy"  # a landmark file without a sidecar
    shutil.copy(src, bare)
    dlib = tmp_path / "dlib.npy"
    shutil.copy(src, dlib)
    shutil.copy(src.with_suffix(".json"), dlib.with_suffix(".json"))
    np.save(dlib, np.load(src)[:, :68])
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    empty = tmp_path / "empty"
    empty.mkdir()
    no_size = tmp_path / "no_size.npy"  # a sidecar without the frame size
    shutil.copy(src, no_size)
    meta = json.loads(src.with_suffix(".json").read_text())
    no_size.with_suffix(".json").write_text(json.dumps({**meta, "width": None}))
    no_frames = tmp_path / "no_frames.npy"
    np.save(no_frames, np.load(src)[:0])
    no_frames.with_suffix(".json").write_text(json.dumps({**meta, "n_frames": 0, "face_found": []}))
    other = tmp_path / "other.npy"  # a sidecar of another array
    np.save(other, np.load(src)[:1])
    shutil.copy(src.with_suffix(".json"), other.with_suffix(".json"))
    twin = tmp_path / "twin" / src.name  # another file of src's name: both named by path
    twin.parent.mkdir()
    shutil.copy(src, twin)
    shutil.copy(src.with_suffix(".json"), twin.with_suffix(".json"))
    nan = tmp_path / "nan.npy"  # NaN would be scored as NaN, and written as invalid JSON
    broken = np.load(src)
    broken[3, 10] = np.nan
    np.save(nan, broken)
    shutil.copy(src.with_suffix(".json"), nan.with_suffix(".json"))
    pipe = tmp_path / "pipe.npy"  # reading a named pipe would wait for a writer forever
    os.mkfifo(pipe)
    inputs = [bare, dlib, text, empty, no_size, no_frames, other, nan, pipe, src, twin, src]
    rc, report = classify([str(p) for p in inputs] + ["--checkpoint", str(out)], tmp_path)
    assert rc == 1
    assert [v["name"] for v in report["videos"]] == [str(src), str(twin)]
    probability = report["videos"][0]["probability"]
    assert report["videos"][1]["probability"] == pytest.approx(probability, abs=1e-6)
    failed = report["failed"]
    assert "no fps (sidecar missing" in failed[str(bare)]
    assert "extract_landmarks.py" in failed[str(bare)]
    assert "68 landmarks per frame" in failed[str(dlib)] and "478" in failed[str(dlib)]
    assert "not a video file or a .npy" in failed[str(text)]
    assert "no videos or .npy landmark files in this folder (its sub-folders" in failed[str(empty)]
    assert "no width (sidecar missing or incomplete)" in failed[str(no_size)]
    assert "no frames" in failed[str(no_frames)]
    assert "other.json: describes another array than other.npy" in failed[str(other)]
    fix = "run extract_landmarks.py on its video again with --overwrite"  # a rerun keeps it else
    assert f"nan.npy: landmarks contain NaN or inf; {fix}" in failed[str(nan)]
    assert "not a regular file or folder" in failed[str(pipe)]
    assert "9 input(s) failed" in capsys.readouterr().err
    assert format_verdicts([], {str(text): "not a video"}) == f"failed: {text}: not a video"
    verdict = Verdict("clip.mp4", "clip.mp4", 0.61, 0.7, False, {}, 90, 30.0, 45)
    head, row = format_verdicts([verdict], {}).splitlines()
    assert "call (P >= 0.700)" in head  # the threshold the calls were made at
    assert row.split() == ["clip.mp4", "0.610", "posed", "90", "50%"]


def test_files_without_sidecar_take_the_dataset_defaults_with_one_warning(
    tmp_path, trained_run, monkeypatch
):
    """A published landmark file has no sidecar: it is scored at the training dataset's frame
    rate and size (UvA-NEMO: 50 fps, 1920x1080), and one warning names the files so taken."""
    root, out = trained_run
    src = sorted((root / "npy").glob("*.npy"))[0]
    monkeypatch.setitem(DATASET_DEFAULTS, "demo", FrameDefaults(640, 360, 30.0))
    bare = [tmp_path / f"published_{i}.npy" for i in range(2)]
    for b in bare:
        shutil.copy(src, b)
    meta = json.loads(src.with_suffix(".json").read_text())
    assert (meta["width"], meta["height"]) != (640, 360)
    no_fps = tmp_path / "no_fps.npy"  # its sidecar gives the size, the dataset the rate
    shutil.copy(src, no_fps)
    no_fps.with_suffix(".json").write_text(json.dumps({**meta, "fps": None}))
    inputs = [*map(str, bare), str(no_fps), str(src)]
    with pytest.warns(UserWarning) as caught:
        rc, report = classify([*inputs, "--checkpoint", str(out)], tmp_path)
    assert rc == 0 and [v["fps"] for v in report["videos"]][:3] == [30.0, 30.0, 30.0]
    texts = [str(w.message) for w in caught if "sidecar" in str(w.message)]
    assert texts == [
        "3 landmark file(s) without a (complete) sidecar, completed with demo's defaults: "
        "published_0.npy, published_1.npy at 30 fps, 640x360; no_fps.npy at 30 fps, "
        f"{meta['width']}x{meta['height']}; "
        "if that is wrong, classify their videos"
    ]


def test_training_and_classify_flags_do_not_mix(tmp_path, trained_run, capsys):
    _, out = trained_run
    assert smile_point.main(["--classify", "x.npy", "--checkpoint", str(out), "--fold", "2"]) == 2
    assert "--fold: training flags" in capsys.readouterr().err
    assert smile_point.main(["--dataset", "demo", "--checkpoint", str(out)]) == 2
    assert "go with --classify" in capsys.readouterr().err
    report = tmp_path / "missing" / "v.json"
    assert (
        smile_point.main(["--classify", "x.npy", "--checkpoint", str(out), "--json", str(report)])
        == 2
    )
    assert "is not a writable folder" in capsys.readouterr().err
    args = ["--classify", "x.npy", "--checkpoint", str(out), "--json", str(tmp_path)]
    assert smile_point.main(args) == 2
    assert "a folder; give a file name" in capsys.readouterr().err


def test_more_unusable_inputs_are_named_with_the_fix(tmp_path, trained_run):
    root, out = trained_run
    src = sorted((root / "npy").glob("*.npy"))[0]
    meta = json.loads(src.with_suffix(".json").read_text())
    landmarks = np.load(src)

    def landmark_file(name: str, array: np.ndarray, **changes) -> Path:
        path = tmp_path / name
        np.save(path, array)
        fields = {**meta, "n_frames": len(array), "face_found": [True] * len(array)}
        path.with_suffix(".json").write_text(json.dumps({**fields, **changes}))
        return path

    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    flat = landmark_file("flat.npy", landmarks[:, :, 0])
    short = landmark_file("short.npy", landmarks[:2])  # 2 frames at 30 fps: 1 frame at 8 fps
    text_fps = landmark_file("text_fps.npy", landmarks, fps="30")
    faceless = landmark_file("faceless.npy", landmarks, face_found=[False] * len(landmarks))
    slow = landmark_file("slow.npy", landmarks, fps=1e-9)  # would make 10^10 frames per row
    found = landmark_file("found.npy", landmarks, face_found=["yes"] * len(landmarks))
    archive = tmp_path / "archive.npy"
    with open(archive, "wb") as f:  # np.load opens an .npz whatever its name
        np.savez(f, x=landmarks)
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"not decoded: refused by its extension")
    inputs = [empty, flat, short, text_fps, faceless, slow, found, archive, loop, photo, src]
    rc, report = classify([str(p) for p in inputs] + ["--checkpoint", str(out)], tmp_path)
    assert rc == 1 and [v["name"] for v in report["videos"]] == [src.name]
    failed = {Path(k).name: v for k, v in report["failed"].items()}
    assert len(failed) == 10 and all("\n" not in why for why in failed.values())
    assert "damaged sidecar, fps is 1e-09, not null or a frame rate" in failed["slow.npy"]
    assert "damaged sidecar, face_found is ['yes', " in failed["found.npy"]
    assert "an .npz archive, not a .npy landmark file" in failed["archive.npy"]
    assert "loop.mp4: no such file (a link to nothing, or a loop of links)" in failed["loop.mp4"]
    assert "empty.npy: not a readable .npy landmark file" in failed["empty.npy"]
    assert "got shape" in failed["flat.npy"] and "give a landmark file" in failed["flat.npy"]
    assert re.search(
        r"short.npy: 2 frame\(s\), 0.04 s: too short to hold a smile \(the model reads 12.5 fps "
        r"and needs 3 frames, 0.16 s\); give the whole video$",
        failed["short.npy"],
    )
    assert "damaged sidecar, fps is '30', not null or a frame rate" in failed["text_fps.npy"]
    assert "no face in any of its" in failed["faceless.npy"]
    assert "a still image; a smile's class is in its motion" in failed["photo.jpg"]


def test_a_name_that_is_not_utf8_is_classified_printed_and_written(
    tmp_path, trained_run, monkeypatch
):
    root, out = trained_run
    src = sorted((root / "npy").glob("*.npy"))[0]
    folder = tmp_path / "inputs"
    folder.mkdir()
    name = os.fsdecode(b"clip\xff.npy")  # a Latin-1 name from an old archive
    shutil.copy(src, folder / name)
    shutil.copy(src.with_suffix(".json"), folder / name.replace(".npy", ".json"))
    printed = io.BytesIO()  # a UTF-8 terminal's strict stdout, as outside the C locale
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(printed, "utf-8", errors="strict"))
    rc, report = classify([str(folder), "--checkpoint", str(out)], tmp_path)
    sys.stdout.flush()
    assert rc == 0 and [v["name"] for v in report["videos"]] == [name]
    assert b"\nclip\xff.npy  " in printed.getvalue()  # its bytes, as ls prints them


def test_json_replaces_only_an_earlier_verdicts_file(tmp_path, trained_run, capsys):
    root, out = trained_run
    src = sorted((root / "npy").glob("*.npy"))[0]
    npy = tmp_path / src.name
    shutil.copy(src, npy)
    sidecar = npy.with_suffix(".json")
    shutil.copy(src.with_suffix(".json"), sidecar)
    before = sidecar.read_text()
    args = ["--classify", str(npy), "--checkpoint", str(out), "--json"]
    assert smile_point.main([*args, str(sidecar)]) == 2
    assert "not a verdicts file of --classify; give a new file name" in capsys.readouterr().err
    assert sidecar.read_text() == before
    assert smile_point.main([*args, str(out / "results.json")]) == 2
    verdicts = tmp_path / "verdicts.json"
    assert smile_point.main([*args, str(verdicts)]) == 0
    assert smile_point.main([*args, str(verdicts)]) == 0  # an earlier verdicts file: replaced
    assert json.loads(verdicts.read_text())["videos"][0]["name"] == npy.name
