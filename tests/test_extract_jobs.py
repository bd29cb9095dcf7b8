"""Extraction jobs: dataset layouts, folder walks (stray images, outputs, links), name clashes,
inputs given as "." and outputs or contact sheets where a later run would read them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from extract_cli import run_cli, touch

from data.extract_jobs import check_plot, check_targets, make_jobs


def _names(jobs) -> list[str]:
    return [j.name for j in jobs]


def test_dataset_layouts(tmp_path):
    uva = tmp_path / "uva"
    for n in ("001_deliberate_smile_2.mp4", "001_spontaneous_smile_10.mp4", "readme.txt"):
        touch(uva / "videos" / n)
    jobs, out = make_jobs(uva, "uva")
    assert out == uva / "npy" and _names(jobs) == [
        "001_deliberate_smile_2.mp4", "001_spontaneous_smile_10.mp4",
    ]  # fmt: skip
    assert jobs[0].output == uva / "npy" / "001_deliberate_smile_2.mp4.npy"

    bbc = tmp_path / "bbc"
    touch(bbc / "Genuine" / "g1.mp4")
    touch(bbc / "posed" / "p1.mp4")
    assert _names(make_jobs(bbc, "bbc")[0]) == ["g1.mp4", "p1.mp4"]
    bbc2 = tmp_path / "bbc2"  # under <root>/videos/, as UvA-NEMO's, and the labels are read
    touch(bbc2 / "Videos" / "genuine" / "g1.mp4")
    touch(bbc2 / "Videos" / "Posed" / "p1.mp4")
    jobs, out = make_jobs(bbc2, "bbc")
    assert _names(jobs) == ["g1.mp4", "p1.mp4"] and out == bbc2 / "npy"

    mmi = tmp_path / "mmi"
    touch(mmi / "Sessions" / "10" / "S001-001.avi")
    touch(mmi / "Sessions" / "2" / "S002-003.avi")
    touch(mmi / "Sessions" / "3" / "still.jpg")  # an image session: not a video
    touch(mmi / "Sessions" / "4" / "a.avi")
    touch(mmi / "Sessions" / "4" / "b.avi")
    jobs, _ = make_jobs(mmi, "mmi")
    assert _names(jobs) == ["2", "4", "10"]  # numeric order
    by_name = {j.name: j for j in jobs}
    assert by_name["10"].output.name == "10.npy" and not by_name["10"].error
    assert "several .avi" in by_name["4"].error

    spos = tmp_path / "spos"
    for label, clip in (("posed", "yi_p1"), ("spontaneous", "ying_s2")):
        for i in (1, 2, 10):
            touch(spos / label / "happy" / clip / f"img{i}.bmp")
    touch(spos / "posed" / "happy" / "yi_p1" / "@eaDir" / "thumb.jpg")  # a NAS's thumbnails
    touch(spos / "posed" / "happy" / "@eaDir" / "thumb.jpg")
    assert _names(make_jobs(spos, "spos")[0]) == ["yi_p1", "ying_s2"]
    jobs, out = make_jobs(spos / "posed" / "happy" / "yi_p1")  # one clip, sub-folder or not
    assert _names(jobs) == ["yi_p1"] and out == spos / "posed" / "happy" / "npy"

    folder = tmp_path / "mixed"
    touch(folder / "a" / "x.mov")
    touch(folder / "b" / "clip" / "f1.png")
    touch(folder / "npy" / "old.png")  # outputs (contact sheets) are not inputs
    jobs, out = make_jobs(folder, "folder")
    assert sorted(_names(jobs)) == ["clip", "x.mov"] and out == folder / "npy"


def test_folder_walks_past_stray_images_outputs_links_and_clashes(tmp_path):
    ds = tmp_path / "ds"
    touch(ds / "overview.jpg")  # a stray image does not make the dataset one frame folder
    touch(ds / "posed" / "p1.mp4")
    touch(ds / "spont" / "s1.mp4")
    touch(ds / "sheets" / "old.mp4.npy")  # an earlier --output with contact sheets
    touch(ds / "sheets" / "old.mp4.png")
    elsewhere = tmp_path / "elsewhere" / "clips"
    touch(elsewhere / "l1 [1080p].mp4")
    (ds / "linked").symlink_to(elsewhere)  # linked folders are walked
    (elsewhere / "loop").symlink_to(ds)  # ... once each
    jobs, out = make_jobs(ds)
    assert out == ds / "npy" and _names(jobs) == ["l1 [1080p].mp4", "p1.mp4", "s1.mp4"]

    touch(ds / "spont" / "again" / "p1.mp4")  # two sources, one output name: both fail, only them
    jobs, _ = make_jobs(ds)
    clash = [j for j in jobs if j.name == "p1.mp4"]
    assert len(clash) == 2 and all("would also write p1.mp4.npy" in j.error for j in clash)
    assert all(not j.error for j in jobs if j.name != "p1.mp4")


def test_clashes_ignore_case_and_a_linked_file_counts_once(tmp_path):
    """Names one file on macOS and Windows clash; a link to a video also found is one video."""
    ds = tmp_path / "ds"
    touch(ds / "posed" / "Smile.mp4")
    touch(ds / "genuine" / "smile.mp4")
    touch(ds / "posed" / "cafe\u0301.mp4")  # é decomposed (as macOS writes it) ...
    touch(ds / "genuine" / "caf\u00e9.mp4")  # ... and composed
    touch(ds / "posed" / "w.mp4")
    (ds / "all").mkdir()
    (ds / "all" / "w.mp4").symlink_to("../posed/w.mp4")
    jobs, _ = make_jobs(ds)
    errors = {j.source.relative_to(ds).as_posix(): j.error for j in jobs}
    assert errors["all/w.mp4"] == "" and "posed/w.mp4" not in errors
    assert (
        f"{ds / 'posed' / 'Smile.mp4'} (as Smile.mp4.npy) would also write smile.mp4.npy "
        "where file names ignore case" in errors["genuine/smile.mp4"]
    )
    assert "would also write Smile.mp4.npy" in errors["posed/Smile.mp4"]
    assert errors["posed/cafe\u0301.mp4"] and errors["genuine/caf\u00e9.mp4"]
    assert len(jobs) == 5


def test_stray_images_beside_video_folders_are_no_clip_at_any_depth(tmp_path):
    ds = tmp_path / "ds"
    touch(ds / "part1" / "overview.jpg")  # beside a folder of videos
    touch(ds / "part1" / "posed" / "b.mp4")
    touch(ds / "part2" / "notes.png")  # above one
    touch(ds / "part2" / "subject1" / "spont" / "c.mp4")
    touch(ds / "part3" / "clip" / "f1.png")  # a clip is still a clip
    touch(ds / "part3" / "@eaDir" / "SYNOPHOTO_THUMB_M.jpg")  # a NAS's thumbnails: no clip
    touch(ds / "__MACOSX" / "part1" / "._b.mp4")  # an unzipped archive's resource forks
    assert _names(make_jobs(ds)[0]) == ["b.mp4", "c.mp4", "clip"]
    assert _names(make_jobs(ds / "part2")[0]) == ["c.mp4"]


def test_contact_sheets_inside_a_folder_input_refused(tmp_path, capsys):
    """A later run would take a folder of sheets for a clip: refused unless never walked."""
    vids = tmp_path / "vids"
    touch(vids / "a.mp4")
    assert run_cli(vids, "--plot", vids / "sheets") == 2
    assert f"--plot {vids / 'sheets'} is inside the input folder" in capsys.readouterr().err
    out = vids / "npy"
    for fine in (out, out / "sheets", vids / ".sheets", tmp_path / "sheets"):
        check_plot(vids, out, fine)
    with pytest.raises(ValueError, match="inside the input folder"):
        check_plot(vids, vids / "landmarks", vids / "landmarks" / "sheets")
    assert not (vids / "sheets").exists()
    uva = tmp_path / "uva"  # a UvA-NEMO walk takes videos only: sheets inside it are harmless
    touch(uva / "001_deliberate_smile_1.mp4")
    assert run_cli(uva, "--dataset", "uva", "--plot", uva / "sheets") == 1  # the fake video fails
    assert "inside the input folder" not in capsys.readouterr().err


def test_outputs_inside_a_frame_folder_refused(tmp_path, capsys):
    clip = tmp_path / "clipA"
    for i in (1, 2):
        touch(clip / f"frame{i}.png")
    assert run_cli(clip, "--output", clip) == 2
    assert "inside the frame folder" in capsys.readouterr().err
    assert run_cli(clip, "--plot", clip / "sheets") == 2
    assert "inside the frame folder" in capsys.readouterr().err
    assert sorted(p.name for p in clip.iterdir()) == ["frame1.png", "frame2.png"]


def test_clip_given_as_dot_is_named_after_its_folder(tmp_path, monkeypatch):
    clip = tmp_path / "clipA"
    for i in (1, 2):
        touch(clip / f"frame{i}.png")
    monkeypatch.chdir(clip)
    jobs, out = make_jobs(".")
    assert _names(jobs) == ["clipA"] and out == tmp_path / "npy"
    check_targets(jobs, out)  # the default output is beside the clip, not in it
    (clip / "thumbs").mkdir()
    monkeypatch.chdir(clip / "thumbs")
    assert make_jobs("..", output="x")[0][0].output == Path("x") / "clipA.npy"
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "mine").symlink_to(clip)  # a linked clip keeps the link's name and place
    jobs, out = make_jobs(tmp_path / "links" / "mine")
    assert _names(jobs) == ["mine"] and out == tmp_path / "links" / "npy"


def test_a_link_to_a_missing_video_is_a_failed_job(tmp_path):
    """A broken link was passed over: the batch counted one video fewer and said nothing."""
    ds = tmp_path / "ds"
    touch(ds / "a.mp4")
    (ds / "gone.mp4").symlink_to(tmp_path / "moved" / "gone.mp4")
    uva = tmp_path / "uva"
    touch(uva / "videos" / "001_deliberate_smile_1.mp4")
    (uva / "videos" / "001_spontaneous_smile_1.mp4").symlink_to(tmp_path / "nowhere.mp4")
    for root, kind in ((ds, "folder"), (uva, "uva")):
        jobs, _ = make_jobs(root, kind)
        failed = [j for j in jobs if j.error]
        assert len(jobs) == 2 and len(failed) == 1
        assert "which does not exist; fix or remove the link" in failed[0].error
    (ds / "loop.mp4").symlink_to("loop.mp4")  # a link to itself: one failed job, not a crash
    jobs, _ = make_jobs(ds, "folder")
    assert sorted(j.name for j in jobs if j.error) == ["gone.mp4", "loop.mp4"]


def test_frame_fps_without_a_frame_folder_is_refused(tmp_path, capsys):
    """--frame-fps 50 on videos did nothing: a video keeps the rate its file records."""
    touch(tmp_path / "ds" / "a.mp4")
    assert run_cli(tmp_path / "ds", "--frame-fps", 50) == 2
    err = capsys.readouterr().err
    assert "--frame-fps 50: " in err and "holds no frame-image folder" in err
    assert not (tmp_path / "ds" / "npy").exists()  # refused before anything runs


def test_a_named_pipe_is_refused(tmp_path, capsys):
    """A pipe is neither a video to seek in nor a folder (it was taken for a dataset root)."""
    os.mkfifo(tmp_path / "v.mp4")
    for output in ((), ("--output", tmp_path / "out")):
        assert run_cli(tmp_path / "v.mp4", *output) == 2
        assert f"{tmp_path / 'v.mp4'}: not a regular file or folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]


def test_one_labels_folder_missing_is_noted(tmp_path, capsys):
    """BBC and SPOS take labels from their folders: when only one label's folder is found (the
    other misspelt or elsewhere), its videos alone are extracted, and the note says so."""
    from data.video_sources import missing_label_note

    bbc = tmp_path / "bbc"
    touch(bbc / "Spontaneous" / "g1.mp4")  # BBC calls it Genuine
    touch(bbc / "posed" / "p1.mp4")
    assert _names(make_jobs(bbc, "bbc")[0]) == ["p1.mp4"]
    assert missing_label_note("bbc", bbc) == (
        f"{bbc}: no Genuine videos, only posed ones (expected {{Genuine,posed}}/): only those are "
        "extracted; name the other label's folder Genuine"
    )
    assert run_cli(bbc, "--dataset", "bbc") == 1  # the empty file fails, and the note follows
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"note: {bbc}: no Genuine videos")
    (bbc / "Spontaneous").rename(bbc / "genuine")
    assert missing_label_note("bbc", bbc) is None
    spos = tmp_path / "spos"
    touch(spos / "Spontanous" / "happy" / "ying_s2" / "img1.bmp")
    touch(spos / "posed" / "happy" / "yi_p1" / "img1.bmp")
    assert "no spontaneous videos, only posed ones" in missing_label_note("spos", spos)
    assert missing_label_note("uva", spos) is None
