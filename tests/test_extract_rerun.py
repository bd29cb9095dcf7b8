"""Rerunning extract_landmarks.py: what it skips (complete outputs, whole videos a quick run
must keep), what it redoes (other settings, changed sources), and a run killed mid-way."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from extract_cli import assert_valid, run_cli, summary_rows, write_avi

from data import extract_batch
from data.extract_batch import Settings, run_job
from data.extract_jobs import make_jobs
from data.files import temp_prefix
from data.io import check_whole_video, load_meta, meta_path

REPO = Path(__file__).resolve().parents[1]


def test_resume_skips_complete_outputs(pyfeat_data, tmp_path, capsys):
    d = tmp_path / "videos"
    d.mkdir()
    video = Path(shutil.copy(pyfeat_data / "single_face.mp4", d))
    npy = d / "npy" / "single_face.mp4.npy"

    def run(*extra):
        rc = run_cli(d, "--max-frames", 8, *extra)
        return rc, summary_rows(capsys.readouterr().out)["single_face.mp4"]

    assert "done" in run()[1]
    stamp = npy.stat().st_mtime_ns
    rc, row = run()
    assert rc == 0 and "skipped" in row and npy.stat().st_mtime_ns == stamp
    rc, row = run("--plot")  # a sheet for a complete output is drawn from the saved array
    assert "skipped" in row and (d / "npy" / "single_face.mp4.png").is_file()
    assert "done" in run("--overwrite")[1]
    assert "done" in run("--stride", "2")[1]  # other settings: redone, not skipped
    assert "skipped" in run("--stride", "2")[1]
    os.utime(video, (time.time() + 3600, time.time() + 3600))  # the source changed since
    assert "done" in run("--stride", "2")[1]
    assert "skipped" in run("--stride", "2")[1]  # dated an hour ahead (a skewed clock): done once
    npy.with_suffix(".json").unlink()  # an array without sidecar: a published file
    assert "whole-video output kept" in run("--stride", "2")[1]  # by a quick run
    rc, row = run("--stride", "2", "--plot")  # nothing to draw its sheet from: said, not failed
    assert rc == 0 and "no contact sheet: no sidecar says which rows found a face" in row
    assert run_cli(d, "--stride", 2) == 0 and load_meta(npy)["stride"] == 2  # redone by a whole one


def test_a_damaged_sidecar_is_extracted_again(pyfeat_data, tmp_path, capsys):
    """A sidecar value of another kind (an edit, another tool) is no finished extraction: the
    rerun redoes the video instead of failing on it every time."""
    d = tmp_path / "videos"
    d.mkdir()
    shutil.copy(pyfeat_data / "single_face.mp4", d)
    npy = d / "npy" / "single_face.mp4.npy"
    assert run_cli(d, "--max-frames", 8) == 0
    meta = load_meta(npy)
    meta_path(npy).write_text(json.dumps({**meta, "max_frames": "8"}))
    capsys.readouterr()
    assert run_cli(d, "--max-frames", 8) == 0
    assert "done" in summary_rows(capsys.readouterr().out)["single_face.mp4"]
    assert load_meta(npy)["max_frames"] == 8


def test_quick_run_keeps_whole_video_outputs(pyfeat_data, tmp_path, capsys):
    """A --max-frames run (the README's quick look) never replaces an output extracted without
    --max-frames: it is reported skipped with the reason, the rest of the batch runs."""
    d = tmp_path / "videos"
    d.mkdir()
    whole = write_avi(pyfeat_data, d / "whole.avi", 6)
    npy = d / "npy" / "whole.avi.npy"
    assert run_cli(d) == 0
    stamp = npy.stat().st_mtime_ns
    write_avi(pyfeat_data, d / "new.avi", 6)
    assert run_cli(d, "--stride", 2, "--max-frames", 2, "--plot") == 0
    out = capsys.readouterr().out
    rows = summary_rows(out)
    assert "skipped" in rows["whole.avi"] and "whole-video output kept" in rows["whole.avi"]
    assert "done" in rows["new.avi"] and load_meta(d / "npy" / "new.avi.npy")["max_frames"] == 2
    assert "note: 1 whole-video output(s) kept" in out and "--overwrite" in out
    assert npy.stat().st_mtime_ns == stamp and load_meta(npy)["n_frames"] == 6
    assert (d / "npy" / "whole.avi.png").is_file()  # the sheet of the kept output
    os.utime(whole, (time.time() + 5, time.time() + 5))  # the video changed (or was copied)
    assert run_cli(whole, "--max-frames", 2) == 0 and load_meta(npy)["n_frames"] == 6  # kept
    assert "whole-video output kept" in capsys.readouterr().out
    assert run_cli(whole) == 0 and run_cli(whole, "--max-frames", 2, "--overwrite") == 0
    assert load_meta(npy)["n_frames"] == 2


def test_a_limit_the_video_never_reached_extracts_it_whole(pyfeat_data, tmp_path, capsys):
    """--max-frames N on a video of N kept frames or fewer holds the whole video: its sidecar
    says so (max_frames null), training takes it, and no later run redoes it."""
    video = pyfeat_data / "single_face.mp4"  # 72 frames
    npy = tmp_path / "single_face.mp4.npy"
    assert run_cli(video, "--output", tmp_path, "--stride", 3, "--max-frames", 24) == 0
    assert load_meta(npy)["n_frames"] == 24 and load_meta(npy)["max_frames"] is None
    check_whole_video(npy, load_meta(npy))  # not refused as a quick run
    stamp = npy.stat().st_mtime_ns
    for extra in (("--max-frames", 24), ("--max-frames", 30), ()):  # all complete: skipped
        capsys.readouterr()
        assert run_cli(video, "--output", tmp_path, "--stride", 3, *extra) == 0
        out = capsys.readouterr().out
        assert "skipped" in summary_rows(out)["single_face.mp4"] and "note:" not in out
    assert npy.stat().st_mtime_ns == stamp
    earlier = {**load_meta(npy), "max_frames": 30}  # as earlier versions wrote a whole video
    meta_path(npy).write_text(json.dumps(earlier))
    check_whole_video(npy, earlier)
    for extra in (("--max-frames", 2), ()):  # whole: neither replaced nor redone
        assert run_cli(video, "--output", tmp_path, "--stride", 3, *extra) == 0
        assert npy.stat().st_mtime_ns == stamp
    args = ("--output", tmp_path, "--stride", 3, "--max-frames", 23, "--overwrite")
    assert run_cli(video, *args) == 0
    assert load_meta(npy)["max_frames"] == 23  # one kept frame short of the end: a quick run
    with pytest.raises(ValueError, match="a quick run"):
        check_whole_video(npy, load_meta(npy))


def _session_alive(sid: int) -> bool:
    """Whether any process of session ``sid`` is still running (Linux /proc)."""
    for p in Path("/proc").glob("[0-9]*"):
        try:
            if os.getsid(int(p.name)) == sid and "Z" not in (p / "stat").read_text().split()[2]:
                return True
        except (OSError, IndexError):
            continue
    return False


@pytest.mark.slow
def test_kill_mid_run_then_rerun(pyfeat_data, tmp_path):
    """kill -9 of the run (its main process) once the first output is written: outputs on disk
    are whole, the orphaned workers leave, and a rerun completes the rest."""
    d = tmp_path / "videos"
    d.mkdir()
    for k in range(8):
        shutil.copy(pyfeat_data / "single_face.mp4", d / f"take{k}.mp4")
    cmd = [sys.executable, str(REPO / "extract_landmarks.py"), str(d), "--workers", "2", "--quiet"]
    proc = subprocess.Popen(
        cmd, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    out = d / "npy"
    deadline = time.time() + 120
    while not list(out.glob("*.json")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    try:
        deadline = time.time() + 20
        while _session_alive(proc.pid) and time.time() < deadline:
            time.sleep(0.1)
        assert not _session_alive(proc.pid), "worker processes outlived the killed run"
    finally:
        if _session_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    finished = sorted(out.glob("*.json"))
    assert 1 <= len(finished) < 8, "the kill came too late to test anything"
    for npy in out.glob("*.npy"):  # every array on disk loads, sidecar or not
        arr = np.load(npy)
        assert arr.ndim == 3 and np.isfinite(arr).all()
    stale = out / f"{temp_prefix(out / 'take7.mp4.npy')}deadbeef.tmp"  # as a kill leaves it
    stale.write_bytes(b"partial")
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(finished)} skipped" in rerun.stdout
    for k in range(8):
        assert_valid(out / f"take{k}.mp4.npy")
    assert not list(out.glob(".*.tmp"))


class FlatBackend:
    """Stands in for MediaPipe: one face per frame, every point at the frame's first value."""

    name, version = "mediapipe", "test"

    def track(self):
        return nullcontext(self)

    def detect(self, rgb: np.ndarray) -> list[np.ndarray]:
        return [np.full((478, 3), rgb[0, 0, 0] / 255, dtype=np.float32)]


def test_frame_folder_redone_when_its_frames_are_swapped_or_renamed(tmp_path):
    """mv keeps sizes and mtimes (and SPOS frames are all one size): the frame names, sizes and
    mtimes in order tell. A copy that keeps mtimes is the same clip."""
    clip = tmp_path / "clip01"
    clip.mkdir()
    for i in range(1, 6):
        cv2.imwrite(str(clip / f"frame{i}.bmp"), np.full((48, 64, 3), 40 * i, np.uint8))
        os.utime(clip / f"frame{i}.bmp", (1e9 + i, 1e9 + i))  # written one after the other
    job, settings = make_jobs(clip)[0][0], Settings()

    def redone() -> bool:
        complete = extract_batch.skip_reason(job, settings) == ""
        assert run_job(job, settings, FlatBackend()).status == ("skipped" if complete else "done")
        return not complete

    assert redone() and not redone()
    for a, b in (("frame2", "tmp"), ("frame4", "frame2"), ("tmp", "frame4")):
        os.rename(clip / f"{a}.bmp", clip / f"{b}.bmp")
    assert redone() and np.load(job.output)[:, 0, 0].tolist() == pytest.approx(
        [40 / 255, 160 / 255, 120 / 255, 80 / 255, 200 / 255]
    )
    for i in range(1, 6):
        os.rename(clip / f"frame{i}.bmp", clip / f"img{i}.bmp")
    assert redone() and not redone()
    shutil.copytree(clip, tmp_path / "copy")  # copy2: mtimes kept
    assert extract_batch.skip_reason(replace(job, source=tmp_path / "copy"), settings) == ""
    meta = load_meta(job.output)
    del meta["source_frames"]  # as earlier versions wrote it: judged on size and mtime
    meta_path(job.output).write_text(json.dumps(meta))
    assert not redone()


def test_failed_rerun_keeps_the_previous_output(pyfeat_data, tmp_path):
    video = write_avi(pyfeat_data, tmp_path / "v.avi", 4)
    out = tmp_path / "npy"
    assert run_cli(video, "--output", out) == 0
    video.write_bytes(video.read_bytes()[:200])  # now unreadable
    assert run_cli(video, "--output", out, "--overwrite") == 1
    assert_valid(out / "v.avi.npy")  # the earlier extraction, sidecar and all


def test_an_unwritable_output_fails_before_decoding(pyfeat_data, tmp_path, capsys, monkeypatch):
    """An output folder that refuses writes fails each video before it is decoded (not after
    the whole extraction), named with the fix; complete outputs are still skipped there."""
    d = tmp_path / "videos"
    d.mkdir()
    shutil.copy(pyfeat_data / "single_face.mp4", d)
    assert run_cli(d, "--max-frames", 8) == 0
    shutil.copy(pyfeat_data / "single_face.mp4", d / "again.mp4")
    capsys.readouterr()

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    def never(*args, **kwargs):
        raise AssertionError("decoded a video whose output cannot be written")

    monkeypatch.setattr("tempfile.mkstemp", denied)
    monkeypatch.setattr(extract_batch, "extract_video", never)
    assert run_cli(d, "--max-frames", 8) == 1
    rows = summary_rows(capsys.readouterr().out)
    assert "skipped" in rows["single_face.mp4"]  # complete: nothing to write
    assert "failed" in rows["again.mp4"]
    assert "again.mp4.npy: cannot be written (Permission denied)" in rows["again.mp4"]


def test_a_quick_run_killed_between_its_two_renames_is_redone(pyfeat_data, tmp_path, capsys):
    """A kill after the array's rename and before its sidecar's (SIGKILL, or SIGTERM to the
    workers on Ctrl-C) left a 20-frame array alone, which the same --max-frames command then kept
    as a published whole video for good; or a quick array beside the whole video's sidecar."""
    d = tmp_path / "videos"
    d.mkdir()
    shutil.copy(pyfeat_data / "single_face.mp4", d)
    npy = d / "npy" / "single_face.mp4.npy"

    def run(*extra):
        rc = run_cli(d, *extra)
        return rc, summary_rows(capsys.readouterr().out)["single_face.mp4"]

    assert "done" in run("--max-frames", 20)[1]
    sidecar = meta_path(npy)
    left = sidecar.parent / f"{temp_prefix(sidecar)}k2j3h4g5.tmp"  # as the kill leaves it
    os.replace(sidecar, left)
    rc, row = run("--max-frames", 20)
    assert rc == 0 and "done" in row and load_meta(npy)["n_frames"] == 20
    assert not left.exists()
    quick = np.load(npy)
    assert "done" in run()[1] and load_meta(npy)["n_frames"] == 72  # the whole video
    np.save(npy, quick)  # killed after the array of a --max-frames 20 --overwrite
    rc, row = run("--max-frames", 20)
    assert "whole-video output kept" not in row and "done" in row
    assert load_meta(npy)["n_frames"] == 20 == len(np.load(npy))


def test_a_contact_sheet_killed_mid_write_leaves_no_temp_file(pyfeat_data, tmp_path, capsys):
    """Killed while drawing a sheet: the rerun skips the landmarks, draws the sheet and removes
    the half-written one (1.3 MB a video, left for good before)."""
    d = tmp_path / "videos"
    d.mkdir()
    shutil.copy(pyfeat_data / "single_face.mp4", d)
    assert run_cli(d, "--max-frames", 8) == 0
    png = d / "npy" / "single_face.mp4.png"
    half = png.parent / f"{temp_prefix(png)}k2j3h4g5.tmp"
    half.write_bytes(b"\x89PNG")
    capsys.readouterr()
    assert run_cli(d, "--max-frames", 8, "--plot") == 0
    assert "skipped" in summary_rows(capsys.readouterr().out)["single_face.mp4"]
    assert png.is_file() and not half.exists()
