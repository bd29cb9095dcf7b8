"""The per-dataset D-Marker table (data/dmarker_table.py) and its build (data/dmarker_cache.py);
the dmarker.py CLI: test_dmarker_cli.py."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np
import pytest
from dmarker_synth import H, W, ramp, smile_video, synthetic_video, three_videos, write_video

import data.dmarker_cache as cache
import data.dmarker_table as table_format
import dmarker as cli
from data.dmarker import FEATURE_NAMES, video_descriptors
from data.dmarker_cache import build_dmarker_table
from data.dmarker_table import load_dmarker_table
from data.files import WriteError, atomic_save_npy
from data.io import load_landmarks, meta_path, to_isotropic
from data.mesh import points_for
from data.mirror import mirror_landmarks, mirror_permutation


def bump_mtime(path, seconds=10):
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 10**9))


@pytest.fixture
def calls(monkeypatch):
    """Counts the videos the cache computes (rather than reuses)."""
    seen = []
    real = cache._compute

    def counting(*args, **kwargs):
        seen.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cache, "_compute", counting)
    return seen


@pytest.fixture
def dataset(tmp_path):
    return three_videos(tmp_path)


def test_build_matches_per_video_computation_and_file_format(dataset):
    table = build_dmarker_table(dataset)
    assert table.path == dataset / "dmarkers.npz" and table.errors == {}
    assert table.names == ["a.mp4", "b.mp4", "c.avi"] and table.features.shape == (3, 225)
    arr, meta = load_landmarks(dataset / "b.mp4.npy")
    expected = video_descriptors(to_isotropic(arr, W, H), 30.0, face_found=meta["face_found"])
    np.testing.assert_array_equal(table.get("b.mp4"), expected.features)
    np.testing.assert_array_equal(table.fps, [25.0, 30.0, 50.0])
    assert not list(dataset.glob(".dmarkers.npz*"))  # no temp file left behind
    with np.load(dataset / "dmarkers.npz", allow_pickle=False) as z:  # no pickled objects
        assert tuple(z["feature_names"]) == FEATURE_NAMES
        assert z["names"].dtype.kind == "U" and z["signals"].shape[1] == 9
        assert z["offsets"][-1] == len(z["signals"]) == 3 * 80
    loaded = load_dmarker_table(dataset / "dmarkers.npz")
    np.testing.assert_array_equal(loaded.features, table.features)
    res = loaded.result("c.avi")
    assert res.phases == table.result("c.avi").phases and res.signals.shape == (80, 9)
    assert loaded.status == ["ok"] * 3 and loaded.cheek_available.all()


def test_rerun_reuses_and_updates_only_changed_files(dataset, calls):
    build_dmarker_table(dataset)
    stamp = (dataset / "dmarkers.npz").stat().st_mtime_ns
    calls.clear()
    again = build_dmarker_table(dataset)
    assert calls == [] and again.reused == 3
    assert (dataset / "dmarkers.npz").stat().st_mtime_ns == stamp  # not even rewritten
    before = again.get("b").copy()
    write_video(dataset, "b.mp4", smile_video(12.0, seed=5), fps=30.0)
    bump_mtime(dataset / "b.mp4.npy")
    updated = build_dmarker_table(dataset)
    assert len(calls) == 1 and updated.reused == 2
    assert not np.array_equal(updated.get("b"), before)
    (dataset / "c.avi.npy").unlink()
    (dataset / "c.avi.json").unlink()
    assert build_dmarker_table(dataset).names == ["a.mp4", "b.mp4"]
    assert len(calls) == 1  # dropping a row recomputes nothing
    build_dmarker_table(dataset, force=True)
    assert len(calls) == 3
    assert build_dmarker_table(dataset, eyelid="paper").eyelid == "paper"
    assert len(calls) == 5  # other settings: recomputed


def test_file_without_sidecar_needs_rate_and_size(dataset, calls):
    write_video(dataset, "published.mp4", smile_video(seed=9), sidecar=False)
    table = build_dmarker_table(dataset)
    assert "published.mp4" not in table and len(table) == 3
    msg = table.errors["published.mp4"]
    assert "published.mp4.npy" in msg and "--fps" in msg and "--frame-size" in msg
    table = build_dmarker_table(dataset, fps=50.0, frame_size=(W, H))
    assert table.errors == {} and table.fps[table.index("published")] == 50.0
    arr, _ = load_landmarks(dataset / "published.mp4.npy")
    expected = video_descriptors(to_isotropic(arr, W, H), 50.0)
    np.testing.assert_array_equal(table.get("published.mp4"), expected.features)
    # the sidecar wins over the arguments for the others
    assert table.fps[table.index("a")] == 25.0
    calls.clear()
    table = build_dmarker_table(dataset, fps=25.0, frame_size=(W, H))  # another rate: recomputed
    assert len(calls) == 1 and table.fps[table.index("published")] == 25.0
    assert build_dmarker_table(dataset).reused == 4 and len(calls) == 1  # no flags: keep
    assert build_dmarker_table(dataset, fps=25.0).reused == 4 and len(calls) == 1  # same rate
    table = build_dmarker_table(dataset, frame_size=(W / 2, H / 2))  # a new size, not kept stale
    assert "published.mp4" not in table and "--fps" in table.errors["published.mp4"]


def test_bad_files_are_reported_and_the_rest_computed(dataset):
    (dataset / "text.mp4.npy").write_text("not an array")
    nan = smile_video()
    nan[5, 61] = np.nan
    atomic_save_npy(dataset / "nan.mp4.npy", (nan / [W, H, W]).astype(np.float32))
    write_video(dataset, "flat_zero.mp4", np.zeros((10, 478, 3)))
    write_video(dataset, "points.mp4", smile_video()[:, :100])
    quick = write_video(dataset, "quick.mp4", smile_video()[:40])  # extracted with --max-frames 40
    meta = json.loads(meta_path(quick).read_text())
    meta_path(quick).write_text(json.dumps({**meta, "max_frames": 40}))
    listed = write_video(dataset, "listed.mp4", smile_video())
    meta_path(listed).write_text("[1, 2]")  # valid JSON, not a sidecar
    for name, key, value in (("found.mp4", "face_found", ["yes"] * 80), ("slow.mp4", "fps", 1e-9)):
        damaged = write_video(dataset, name, smile_video())
        meta = json.loads(meta_path(damaged).read_text())
        meta_path(damaged).write_text(json.dumps({**meta, key: value}))
    with open(dataset / "zip.mp4.npy", "wb") as f:  # an archive under a landmark file's name
        np.savez(f, x=np.zeros(3))
    shutil.copy(dataset / "a.mp4.npy", dataset / "._a.mp4.npy")  # macOS metadata: no video
    np.save(dataset / "complex.mp4.npy", (smile_video() / [W, H, W]).astype(np.complex64))
    table = build_dmarker_table(dataset, fps=25.0, frame_size=(W, H))
    assert table.names == ["a.mp4", "b.mp4", "c.avi"]
    assert set(table.errors) == {
        "text.mp4", "nan.mp4", "flat_zero.mp4", "points.mp4", "quick.mp4", "listed.mp4",
        "found.mp4", "slow.mp4", "zip.mp4", "complex.mp4",
    }  # fmt: skip
    assert (
        "landmark array of real numbers, got shape (80, 478, 3) of complex64"
        in (table.errors["complex.mp4"])
    )
    assert "unreadable sidecar (not a JSON object)" in table.errors["listed.mp4"]
    assert "damaged sidecar, face_found is ['yes', " in table.errors["found.mp4"]
    assert (
        "damaged sidecar, fps is 1e-09, not null or a frame rate of at least 0.01"
        in (table.errors["slow.mp4"])
    )
    assert "an .npz archive, not a .npy landmark file" in table.errors["zip.mp4"]
    assert "quick run (--max-frames 40)" in table.errors["quick.mp4"]
    assert "not a readable .npy" in table.errors["text.mp4"]
    assert "NaN" in table.errors["nan.mp4"]
    assert "degenerate face geometry" in table.errors["flat_zero.mp4"]
    assert "unsupported landmark count 100" in table.errors["points.mp4"]
    for name, msg in table.errors.items():
        assert msg.startswith(str(dataset / name))  # the landmark file or its sidecar


def test_edge_videos_in_the_table(tmp_path):
    write_video(tmp_path, "filled.mp4", smile_video(), face_found=[0] * 80)
    write_video(tmp_path, "dlib.mp4", smile_video(n_landmarks=68))
    write_video(tmp_path, "tiny.mp4", smile_video()[:2])
    write_video(tmp_path, "still.mp4", synthetic_video(478, 40))
    table = load_dmarker_table(build_dmarker_table(tmp_path).path)
    assert dict(zip(table.names, table.status, strict=True)) == {
        "dlib.mp4": "ok", "filled.mp4": "no_face", "still.mp4": "flat", "tiny.mp4": "short",
    }  # fmt: skip
    assert table.cheek_available.tolist() == [False, True, True, True]
    assert np.all(table.get("dlib")[150:] == 0) and np.all(table.get("filled") == 0)
    assert np.isfinite(table.features).all()


def test_names_with_and_without_extension(tmp_path):
    for name in ("x.mp4", "x.avi", "clip 7.mp4", "12"):
        write_video(tmp_path, name, smile_video())
    table = build_dmarker_table(tmp_path, output=tmp_path / "out" / "dm.npz")
    assert table.path == tmp_path / "out" / "dm.npz"
    row = table.get("clip 7.mp4")
    np.testing.assert_array_equal(table.get("clip 7"), row)
    np.testing.assert_array_equal(table.get("clip 7.mp4.npy"), row)
    assert "12" in table and "x.avi" in table
    with pytest.raises(KeyError, match="ambiguous"):
        table.get("x")
    with pytest.raises(KeyError, match="not in the D-Marker table"):
        table.get("nope.mp4")
    assert "nope.mp4" not in table and "x" not in table  # membership: a lookup, no message built


def test_load_errors_and_stale_tables(dataset, monkeypatch):
    with pytest.raises(FileNotFoundError, match="dmarker.py --landmarks"):
        load_dmarker_table(dataset / "missing.npz")
    (dataset / "dmarkers.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable D-Marker table"):
        load_dmarker_table(dataset / "dmarkers.npz")
    assert len(build_dmarker_table(dataset)) == 3  # a broken cache is simply rebuilt
    # a newer version of the code (build and reader: one constant)
    monkeypatch.setattr(table_format, "CACHE_VERSION", table_format.CACHE_VERSION + 1)
    with pytest.raises(ValueError, match="rebuild it"):
        load_dmarker_table(dataset / "dmarkers.npz")
    assert build_dmarker_table(dataset).reused == 0  # another version: recomputed


def test_interrupted_write_keeps_the_old_table(dataset, monkeypatch):
    build_dmarker_table(dataset)
    old = (dataset / "dmarkers.npz").read_bytes()
    write_video(dataset, "d.mp4", smile_video(seed=3))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        build_dmarker_table(dataset)
    assert (dataset / "dmarkers.npz").read_bytes() == old
    assert not list(dataset.glob(".dmarkers.npz*"))


def test_an_unwritable_table_is_found_before_the_work(dataset, calls, monkeypatch):
    """The table's folder refusing writes is found at the first video to compute, not after all
    of them; a rerun with nothing to compute (an up-to-date table on a read-only disk) needs no
    write and runs."""
    build_dmarker_table(dataset)
    calls.clear()

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as m:
        m.setattr(tempfile, "mkstemp", denied)
        assert len(build_dmarker_table(dataset)) == 3 and calls == []  # all reused, none written
    write_video(dataset, "d.mp4", smile_video(seed=3))
    with monkeypatch.context() as m:
        m.setattr(tempfile, "mkstemp", denied)
        with pytest.raises(WriteError, match=r"dmarkers.npz: cannot be written \(Permission den"):
            build_dmarker_table(dataset)
    assert calls == []


def test_build_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        build_dmarker_table(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="no landmark files"):
        build_dmarker_table(tmp_path)


def test_mirror_image_dmarkers_are_computed_not_derived(tmp_path):
    """Both eyelids are measured in the right eye's width, so on a face whose eyes differ in width
    the mirror image's eyelid block is not the video's with the left/right differences negated
    (the lip block is); the table holds the mirror image's own D-Markers."""
    s = ramp(80, 10, 12, 25, 15, 8.0)
    video = synthetic_video(478, 80, lip_right=s, lip_left=0.7 * s, lid=0.3 * s, seed=0)
    video[:, points_for(478).left_eye_outer, 0] += 6.0  # a left eye 20% wider
    write_video(tmp_path, "v.mp4", video)
    table = load_dmarker_table(build_dmarker_table(tmp_path).path)
    iso = to_isotropic(load_landmarks(tmp_path / "v.mp4.npy")[0], W, H)
    expected = video_descriptors(mirror_landmarks(iso, mirror_permutation(478)), 25.0).features
    np.testing.assert_array_equal(table.get("v.mp4", mirrored=True), expected)
    names = np.array(FEATURE_NAMES)
    naive = table.get("v.mp4") * np.where(np.char.endswith(names, "_lr_amplitude_diff"), -1, 1)
    lip, eyelid = np.char.startswith(names, "lip_"), np.char.startswith(names, "eyelid_")
    np.testing.assert_allclose(expected[lip], naive[lip], rtol=1e-4, atol=1e-5)
    assert np.abs(expected[eyelid] - naive[eyelid]).max() > 0.01


def test_a_table_without_mirror_images_is_recomputed(dataset, calls):
    table = build_dmarker_table(dataset)
    with np.load(table.path) as z:  # a hand-made table without the column
        np.savez(table.path, **{k: z[k] for k in z.files if k != "mirrored"})
    with pytest.raises(ValueError, match="not a readable D-Marker table .*mirrored.*; rebuild it"):
        load_dmarker_table(table.path)
    calls.clear()
    again = build_dmarker_table(dataset)
    assert again.reused == 0 and len(calls) == 3 and again.mirrored.shape == (3, 225)


def test_when_every_file_fails_the_previous_table_is_kept(dataset, capsys):
    build_dmarker_table(dataset)
    before = (dataset / "dmarkers.npz").read_bytes()
    for sidecar in dataset.glob("*.json"):
        sidecar.unlink()  # no rate and size any more: every file fails
    assert cli.main(["--landmarks", str(dataset), "--force", "--quiet"]) == 1
    assert "nothing written" in capsys.readouterr().err
    assert (dataset / "dmarkers.npz").read_bytes() == before


def test_a_failure_in_the_mirror_image_says_so(tmp_path):
    """The mirror image measures both eyelids in the video's left eye: a frame whose left eye
    corners coincide fails there, and the message says it was the mirror image."""
    video = smile_video()
    p = points_for(478)
    video[5, p.left_eye_outer] = video[5, p.left_eye_inner]
    write_video(tmp_path, "v.mp4", video)
    table = build_dmarker_table(tmp_path)
    assert "in its mirror image (left and right swapped): degenerate" in table.errors["v.mp4"]


def test_table_names_drop_only_a_video_extension():
    """A name finds "x.MP4" without its extension, as the dataset matches names; a dot that is part
    of a name ("clip.v2") stays."""
    names = table_format.VideoNames(["x.MP4", "clip.v2", "y.mp4", "y.avi"])
    assert names.row("x") == 0 and names.row("x.MP4.npy") == 0
    assert names.row("clip") is None and names.row("clip.v2") == 1
    assert names.row("y") is None and names.sharing_stem("y") == ["y.mp4", "y.avi"]
