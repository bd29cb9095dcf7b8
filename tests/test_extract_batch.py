"""Batch extraction: failures reported and survived, writes, worker crashes, CLI errors (the
jobs an input becomes: test_extract_jobs.py; reruns and kill -9: test_extract_rerun.py)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from extract_cli import assert_valid, run_cli, summary_rows, touch, write_avi

from data import extract_batch
from data.extract_batch import JobResult, Settings, _run_pool
from data.extract_jobs import Job
from data.files import temp_prefix
from data.io import load_landmarks, load_meta, meta_path, save_landmarks
from extract_landmarks import main


@pytest.fixture()
def mixed(pyfeat_data, tmp_path):
    """Good videos, a video without a face, a truncated mp4 and a text file named .mp4."""
    d = tmp_path / "videos"
    d.mkdir()
    shutil.copy(pyfeat_data / "single_face.mp4", d)
    shutil.copy(pyfeat_data / "no_face.mp4", d)
    data = (pyfeat_data / "single_face.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (d / "notes.mp4").write_text("this is a text file, not a video\n")
    return d


def test_failures_reported_batch_continues(mixed, capsys):
    rc = run_cli(mixed, "--max-frames", 30, workers=2)
    assert rc == 1
    rows = summary_rows(capsys.readouterr().out)
    out = mixed / "npy"
    assert "done" in rows["single_face.mp4"]
    assert_valid(out / "single_face.mp4.npy")
    assert "failed" in rows["no_face.mp4"] and "no face found" in rows["no_face.mp4"]
    for bad in ("truncated.mp4", "notes.mp4"):
        assert "failed" in rows[bad] and f"cannot decode {mixed / bad}" in rows[bad]
    for failed in ("no_face.mp4", "truncated.mp4", "notes.mp4"):
        assert not (out / f"{failed}.npy").exists() and not (out / f"{failed}.json").exists()
    assert not list(out.glob(".*.tmp"))


def test_truncated_stream_detected(pyfeat_data, tmp_path, capsys):
    """A file that opens but whose stream stops early (truncated AVI) fails, not a short array."""
    path = write_avi(pyfeat_data, tmp_path / "cut.avi", 20)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert run_cli(path, "--output", tmp_path / "npy") == 1
    assert "stream ends at frame" in capsys.readouterr().out
    assert not (tmp_path / "npy").exists()  # the check that it can be written left nothing
    assert not list(tmp_path.glob(".*.tmp"))


# ------------------------------------------------------------------ dataset layouts


def _names(jobs) -> list[str]:
    return [j.name for j in jobs]


def test_sidecar_must_describe_its_array(tmp_path):
    npy = tmp_path / "v.mp4.npy"
    save_landmarks(npy, np.zeros((3, 478, 3), np.float32), {"n_frames": 3, "face_found": [1] * 3})
    assert load_landmarks(npy)[0].shape == (3, 478, 3)
    other = "describes another array than v.mp4.npy"
    damaged = "damaged sidecar, face_found is None, not a list of 0 and 1"
    for bad, why in (
        ({"n_frames": 5}, other),
        ({"face_found": [1]}, other),
        ({"face_found": None}, damaged),
    ):
        (tmp_path / "v.mp4.json").write_text(
            json.dumps({"n_frames": 3, "face_found": [1] * 3, **bad})
        )
        with pytest.raises(ValueError, match=rf"v.mp4.json: {why}"):
            load_landmarks(npy)


@pytest.mark.parametrize("fails", ["array", "sidecar"])
def test_a_failed_write_never_leaves_an_array_without_its_sidecar(tmp_path, monkeypatch, fails):
    """Disk full while writing the new array: the old pair stays. While renaming the new sidecar
    (the array already replaced): both go, since a bare array would be read as a published file
    with the dataset's default frame rate and size."""
    npy = tmp_path / "v.mp4.npy"
    save_landmarks(npy, np.zeros((3, 478, 3), np.float32), {"n_frames": 3, "face_found": [1] * 3})
    real = os.replace

    def full_disk(src, dst):
        if Path(dst).suffix == (".npy" if fails == "array" else ".json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space"):
        save_landmarks(npy, np.ones((5, 478, 3)), {"n_frames": 5, "face_found": [1] * 5})
    monkeypatch.undo()
    if fails == "array":
        assert load_landmarks(npy)[0].shape == (3, 478, 3)
    else:
        assert not npy.exists() and not (tmp_path / "v.mp4.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == (
        ["v.mp4.json", "v.mp4.npy"] if fails == "array" else []
    )


def test_long_output_names_are_written(tmp_path):
    """Temp names do not grow with the output name: a 248-byte name (255 is the limit) works."""
    name = "笑顔" * 40 + ".mp4"  # 244 bytes in UTF-8
    npy = tmp_path / f"{name}.npy"
    save_landmarks(npy, np.zeros((2, 478, 3), np.float32), {"n_frames": 2, "face_found": [1, 1]})
    assert load_landmarks(npy)[0].shape == (2, 478, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{name}.json", f"{name}.npy"]


def test_temp_cleanup_removes_this_outputs_temps_only(tmp_path):
    npy, other = tmp_path / "clip [1].mp4.npy", tmp_path / "clip 1.mp4.npy"
    mine = [tmp_path / f"{temp_prefix(t)}k2j3h4g5.tmp" for t in (npy, meta_path(npy))]
    theirs = tmp_path / f"{temp_prefix(other)}k2j3h4g5.tmp"
    for tmp in (*mine, theirs):
        touch(tmp)
    extract_batch._clean_temp_files(npy, meta_path(npy))
    assert not any(t.exists() for t in mine) and theirs.exists()


def test_mmi_end_to_end(pyfeat_data, tmp_path):
    session = tmp_path / "mmi" / "Sessions" / "1767"
    session.mkdir(parents=True)
    write_avi(pyfeat_data, session / "S001.avi", 6, fps=25)
    assert run_cli(tmp_path / "mmi", "--dataset", "mmi") == 0
    npy = tmp_path / "mmi" / "npy" / "1767.npy"
    assert_valid(npy)
    assert load_meta(npy)["video"] == "1767" and load_meta(npy)["fps"] == 25.0


def test_cli_input_errors(tmp_path, pyfeat_data, capsys):
    assert run_cli(tmp_path / "missing.mp4") == 2
    assert "missing.mp4: no such file" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert run_cli(tmp_path / "empty") == 2
    err = capsys.readouterr().err
    assert "empty: no videos found; expected video files" in err and "--dataset" not in err
    assert run_cli(tmp_path / "empty", "--dataset", "uva") == 2
    assert "<root>/videos/*.mp4" in capsys.readouterr().err
    assert run_cli(pyfeat_data, "--plot", tmp_path / "one.png", "--output", tmp_path) == 2
    assert "single .png file needs a single video" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(pyfeat_data), "--stride", "0"])


def test_an_output_folder_that_is_a_file_is_refused_up_front(pyfeat_data, tmp_path, capsys):
    """--output or --plot naming a file (or a path below one): one line before any video is
    decoded, not "[Errno 20] Not a directory" for each video after decoding it."""
    video, afile = pyfeat_data / "single_face.mp4", tmp_path / "afile"
    afile.write_text("")
    plot = ("--plot", afile, "--output", tmp_path / "out")
    for flag, bad, *more in (("--output", afile), ("--output", afile / "x"), plot):
        assert run_cli(video, "--max-frames", 2, flag, bad, *more) == 2
        err = capsys.readouterr().err
        assert f"{flag} {bad}: " in err and "it must be a folder" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def crash_on_bad(job: Job, settings: Settings) -> JobResult:
    """Stands in for a backend that kills its worker process on one video."""
    if job.name == "bad":
        os._exit(3)
    time.sleep(0.3)  # let the crash catch the other jobs in flight or queued
    return JobResult(job.name, str(job.source), "done")


def test_dead_worker_fails_only_its_own_video(tmp_path):
    names = ("a", "bad", "c", "d", "e")
    jobs = [Job(tmp_path / f"{n}.mp4", n, tmp_path / f"{n}.npy") for n in names]
    results = []
    _run_pool(jobs, Settings(backend="dlib"), 2, results.append, work=crash_on_bad)
    assert sorted((r.name, r.status) for r in results) == [
        (n, "failed" if n == "bad" else "done") for n in names
    ]
    assert "worker process died" in next(r.reason for r in results if r.name == "bad")


def test_jobs_lost_to_a_crash_are_retried_on_every_worker(tmp_path, monkeypatch):
    """The retry of lost jobs (each in a process of its own) keeps all workers busy."""
    jobs = [Job(tmp_path / f"{n}.mp4", n, tmp_path / f"{n}.npy") for n in "abcdef"]
    together = threading.Barrier(3, timeout=30)  # breaks unless 3 retries run at once

    def fake_pass(batch, settings, workers, record, work):
        if len(batch) > 1:
            return list(batch)  # the shared pool broke: everything lost
        together.wait()
        record(JobResult(batch[0].name, str(batch[0].source), "done"))
        return []

    monkeypatch.setattr(extract_batch, "_pool_pass", fake_pass)
    results = []
    _run_pool(jobs, Settings(backend="dlib"), 3, results.append)
    assert sorted(r.name for r in results) == list("abcdef")


def test_a_contact_sheet_not_drawn_leaves_its_landmarks_done(pyfeat_data, tmp_path, capsys):
    """A sheet that cannot be written (a full disk) is reported in the video's row and makes the
    exit status 1, but the video's complete landmarks are not called failed, extracted or
    skipped."""
    d = tmp_path / "videos"
    d.mkdir()
    write_avi(pyfeat_data, d / "clip.avi", 4)
    full = OSError(errno.ENOSPC, "No space left on device")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(extract_batch, "contact_sheet", lambda *a, **k: (_ for _ in ()).throw(full))
        assert run_cli(d, "--plot") == 1
        out = capsys.readouterr().out
        row = summary_rows(out)["clip.avi"]
        assert "done" in row and "contact sheet not drawn: [Errno 28] No space left" in row
        assert "1 done, 0 skipped, 0 failed of 1" in out and "1 contact sheet(s) not drawn" in out
        assert_valid(d / "npy" / "clip.avi.npy")
        assert run_cli(d, "--plot") == 1  # the rerun skips the landmarks, retries the sheet
        row = summary_rows(capsys.readouterr().out)["clip.avi"]
        assert "skipped" in row and "contact sheet not drawn" in row
    assert run_cli(d, "--plot") == 0 and (d / "npy" / "clip.avi.png").is_file()
    write_avi(pyfeat_data, d / "other.avi", 4)
    (d / "npy" / "other.avi.png").mkdir(parents=True)  # a folder where its sheet should go
    capsys.readouterr()
    for status in ("done", "skipped"):  # the rerun does not take the folder for the sheet
        assert run_cli(d, "--plot") == 1
        row = summary_rows(capsys.readouterr().out)["other.avi"]
        assert status in row and "contact sheet not drawn" in row
