"""What a dataset reads beside its landmark files: the D-Marker table (which one, and whether
it still fits the files) and each video's frame rate and size (sidecar, labels.csv, defaults)."""

from __future__ import annotations

import os
import shutil
import warnings

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

from data.datasets import open_dataset


def test_assumed_frame_rates_are_said(tmp_path):
    """BBC files without a sidecar take an assumed 25 fps: training says so, and a D-Marker table
    measured at the videos' real rate is told to give labels.csv's columns, not only to rebuild
    at the assumed rate; with the columns both are content."""
    from data.dmarker_cache import build_dmarker_table

    names = [f"{c}smilecontent{i}.mp4" for c in ("Genuine", "posed") for i in range(3)]
    for name in names:
        write_video(tmp_path / "npy", name, synth_video(8, 68, seed=name_seed(name)), fps=None)
    build_dmarker_table(tmp_path / "npy", output=tmp_path / "dmarkers.npz", fps=30.0,
                        frame_size=(480, 270))  # fmt: skip
    said = r"6 landmark file\(s\) without a sidecar \(e.g. Genuine.* take bbc's assumed frame "
    said += r"rate or size \(1280x720 at 25 fps\) where labels.csv gives none; if their videos "
    with pytest.warns(UserWarning, match=said + r"differ, give labels.csv's fps,width,height"):
        ds = open_dataset("bbc", tmp_path)
    told = r"at 30 fps but the dataset plays it at 25 fps; rebuild it: .* \(or, if its video is "
    with pytest.raises(ValueError, match=told + r"as the table says, give labels.csv's fps,width"):
        ds.dmarkers()
    rows = [(n, int(n.startswith("G")), f"s{i}", 25, 480, 270) for i, n in enumerate(names)]
    write_csv(tmp_path / "labels.csv", rows)  # columns given: a rebuild is the one fix
    with pytest.raises(ValueError, match="plays it at 25 fps") as e:
        open_dataset("bbc", tmp_path).dmarkers()
    assert "give labels.csv's" not in str(e.value) and "--labels" in str(e.value)
    only_fps = "video,label,subject,fps\n" + "".join(f"{r[0]},{r[1]},{r[2]},25\n" for r in rows)
    (tmp_path / "labels.csv").write_text(only_fps)  # the size assumed (warned), the rate given
    with pytest.warns(UserWarning, match="assumed frame rate or size"):
        ds = open_dataset("bbc", tmp_path)
    with pytest.raises(ValueError, match="plays it at 25 fps") as e:
        ds.dmarkers()
    assert "give labels.csv's" not in str(e.value)  # no hint to give the rate it gives
    rows = [(*r[:3], 30, 480, 270) for r in rows]
    write_csv(tmp_path / "labels.csv", rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert open_dataset("bbc", tmp_path).dmarkers() is not None


def test_folder_needs_frame_info(tmp_path):
    for name in ("a.mp4", "b.mp4"):
        write_video(tmp_path / "npy", name, synth_video(4, 68, seed=name_seed(name)), fps=None)
    write_csv(tmp_path / "labels.csv", [("a.mp4", 1, "s1"), ("b.mp4", 0, "s2")])
    with pytest.raises(ValueError, match=r"a.mp4.npy: no fps"):
        open_dataset("folder", tmp_path)
    write_csv(
        tmp_path / "labels.csv",
        [("a.mp4", 1, "s1", 30, 320, 240), ("b.mp4", 0, "s2", 30, 320, 240)],
    )
    assert open_dataset("folder", tmp_path).videos["a.mp4"].fps == 30.0
    for rate, width in ((1e-9, 320), (30, "inf"), ("inf", 320)):
        write_csv(  # a rate or size no video has: refused as a sidecar's would be
            tmp_path / "labels.csv",
            [("a.mp4", 1, "s1", rate, width, 240), ("b.mp4", 0, "s2", 30, 320, 240)],
        )
        key, value = ("width", "inf") if width == "inf" else ("fps", f"{float(rate)!r}")
        with pytest.raises(ValueError, match=rf"a.mp4.npy: {key} is {value}, not a finite number"):
            open_dataset("folder", tmp_path)


def test_demo_layout_with_dmarkers(tmp_path):
    root = make_folder_dataset(tmp_path / "demo", n_subjects=4, per_subject=2)
    (root / "demo.json").write_text("{}")
    from data.dmarker_cache import build_dmarker_table
    from data.dmarker_table import CACHE_VERSION

    build_dmarker_table(root / "npy", output=root / "dmarkers.npz")
    ds = open_dataset("demo", root)
    table = ds.dmarkers()
    assert table is not None and table.features.shape == (8, 225)
    assert "subj 0 clip 1.mp4" in table
    assert open_dataset("folder", root).dmarkers() is not None
    with np.load(root / "dmarkers.npz") as z:  # a table of the previous version
        old = {**z, "version": np.int64(1)}
    np.savez(root / "dmarkers.npz", **old)
    fix = f"rebuild it with python dmarker.py --landmarks {root / 'npy'} --output {root}"
    with pytest.raises(ValueError, match=rf"version 1, this code reads {CACHE_VERSION}\); {fix}"):
        open_dataset("demo", root).dmarkers()
    shutil.rmtree(root / "labels")
    (root / "dmarkers.npz").unlink()
    assert open_dataset("demo", root).dmarkers() is None


def test_which_dmarker_table(tmp_path):
    """Two candidate tables (under the root and beside the landmarks) are refused rather than one
    silently preferred; data.dmarkers names the one; a table of another landmark folder is
    named as such, not as one changed file."""
    from data.dmarker_cache import build_dmarker_table
    from data.dmarker_table import load_dmarker_table

    root = make_folder_dataset(tmp_path / "set", n_subjects=4, per_subject=2)
    build_dmarker_table(root / "npy", output=root / "dmarkers.npz")
    shutil.copy2(root / "dmarkers.npz", root / "npy" / "dmarkers.npz")  # a copy: no question
    assert open_dataset("folder", root).dmarkers().path == root / "dmarkers.npz"
    other = load_dmarker_table(root / "npy" / "dmarkers.npz")
    other.features = other.features + 1.0  # another table, say of another eyelid measure
    other.save(root / "npy" / "dmarkers.npz")
    with pytest.raises(ValueError, match=r"two D-Marker tables, .*set/dmarkers.npz and "):
        open_dataset("folder", root).dmarkers()
    chosen = root / "npy" / "dmarkers.npz"
    assert open_dataset("folder", root, dmarkers_path=chosen).dmarkers().path == chosen
    missing = root / "other.npz"
    fix = "no D-Marker table there \\(data.dmarkers\\); build it with python dmarker.py"
    with pytest.raises(FileNotFoundError, match=rf"other.npz: {fix} --landmarks "):
        open_dataset("folder", root, dmarkers_path=missing).dmarkers()

    (root / "npy" / "dmarkers.npz").unlink()
    shutil.copytree(root / "npy", root / "npy_dlib")  # another extraction: other files
    for f in (root / "npy_dlib").iterdir():
        os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    with pytest.raises(ValueError, match=r"dmarkers.npz: built from other landmark files than the "
                       r"8 under .*npy_dlib \(another landmark folder's table"):  # fmt: skip
        open_dataset("folder", root, landmarks_dir=root / "npy_dlib").dmarkers()


def test_outdated_table_of_published_files_names_their_rate_and_size(tmp_path):
    """Files without a sidecar (published UvA-NEMO landmarks) need --fps and --frame-size: the
    rebuild command an outdated table gets carries the dataset's, and works as given."""
    import shlex

    import dmarker
    from data.dmarker_cache import build_dmarker_table

    uva_subjects(tmp_path / "npy", fps=None)
    table = build_dmarker_table(tmp_path / "npy", fps=50.0, frame_size=(1920, 1080))
    with np.load(table.path) as z:
        old = {**z, "version": np.int64(1)}
    np.savez(table.path, **old)
    with pytest.raises(ValueError, match="rebuild it with python dmarker.py") as e:
        open_dataset("uva", tmp_path, folds_k=3).dmarkers()
    command = str(e.value).split("rebuild it with ")[1]
    assert command.endswith("--fps 50 --frame-size 1920x1080")
    build_dmarker_table(tmp_path / "npy", fps=25.0, frame_size=(1920, 1080))
    with pytest.raises(ValueError, match="at 25 fps but the dataset plays it at 50") as e:
        open_dataset("uva", tmp_path).dmarkers()
    assert "labels.csv" not in str(e.value)  # UvA-NEMO's rate is no guess: the table is wrong
    assert dmarker.main([*shlex.split(command)[2:], "--quiet"]) == 0
    assert len(open_dataset("uva", tmp_path).dmarkers()) == 6


def test_a_table_of_another_frame_shape_or_of_labels_csv_rates_is_rebuilt_as_told(tmp_path):
    """A table measured in a frame of another aspect ratio than the dataset's (other distances)
    is refused like one of another rate; rates that labels.csv gives per file go to dmarker.py
    as --labels (the size it leaves out as the kind's default, as training takes it), so the
    rebuild the refusal names works as given (one --fps cannot), also in a folder whose name
    holds a space."""
    import shlex

    import dmarker
    from data.dmarker_cache import build_dmarker_table

    def rebuild(e) -> None:
        command = str(e.value).split("rebuild it: ")[1].split(" (or, if its video")[0]
        assert dmarker.main([*shlex.split(command)[2:], "--quiet"]) == 0

    root = tmp_path / "bbc set"
    names = [f"{c}smilecontent{i}.mp4" for c in ("Genuine", "posed") for i in range(3)]
    for name in names:
        write_video(root / "npy", name, synth_video(8, 68, seed=name_seed(name)), fps=None)
    build_dmarker_table(root / "npy", output=root / "dmarkers.npz", fps=25.0,
                        frame_size=(640, 480))  # fmt: skip
    with pytest.warns(UserWarning, match="assumed frame rate or size"):
        ds = open_dataset("bbc", root)
    shape = r"Genuinesmilecontent0 was measured in a 640x480 frame but the dataset's is "
    with pytest.raises(ValueError, match=shape + r"1280x720 \(another aspect ratio") as e:
        ds.dmarkers()
    assert "(or, if its video is as the table says, give labels.csv's" in str(e.value)  # assumed
    rebuild(e)
    assert len(ds.dmarkers()) == 6
    build_dmarker_table(root / "npy", output=root / "dmarkers.npz", fps=25.0,
                        frame_size=(2560, 1440))  # fmt: skip
    assert len(ds.dmarkers()) == 6  # the same aspect ratio: the same D-Markers

    rows = [(n, int(n.startswith("G")), f"s{i}", 24 + i % 2) for i, n in enumerate(names)]
    (root / "labels.csv").write_text(
        "video,label,subject,fps\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    )
    with pytest.warns(UserWarning, match="assumed frame rate or size"):  # the size
        ds = open_dataset("bbc", root)
    with pytest.raises(ValueError, match="plays it at 24 fps; rebuild it: .* --labels ") as e:
        ds.dmarkers()
    rebuild(e)
    table = ds.dmarkers()
    assert [table.fps[table.index(n)] for n in names] == [24, 25, 24, 25, 24, 25]
    assert table.frame_size.tolist() == [[1280, 720]] * 6

    write_csv(root / "labels.csv", [(*r, 853.33, 480) for r in rows])
    with pytest.raises(ValueError, match=r"line 2: width '853.33' is not a whole number of pixels"):
        open_dataset("bbc", root)
    write_csv(root / "labels.csv", [(*r, 640, "") for r in rows])
    with pytest.raises(ValueError, match=r"line 2: a width without a height, or the reverse"):
        open_dataset("bbc", root)
