"""The landmark stores: the packed store (one memory-mapped array per file set, rebuilt when a
file changes) against reading files one by one, and the files either refuses by name."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import tempfile
import time

import numpy as np
import pytest
from landmark_synth import make_folder_dataset, synth_video, write_video

from data import store as store_module
from data.datasets import open_dataset
from data.fold_check import training_refusal
from data.store import FileStore, PackedStore, build_packed, open_packed


def test_packed_store_matches_files_and_refreshes(tmp_path):
    make_folder_dataset(tmp_path, n_subjects=3, per_subject=2)
    packed = open_dataset("folder", tmp_path)
    plain = open_dataset("folder", tmp_path, pack=False)
    assert isinstance(packed.store, PackedStore) and isinstance(plain.store, FileStore)
    for name in packed.videos:
        np.testing.assert_array_equal(packed.landmarks(name), plain.landmarks(name))
    assert len(pickle.dumps(packed)) < 20_000  # workers re-open the memory map
    name = "subj 1 clip 1.mp4"
    new = synth_video(40, 478, seed=99)
    write_video(tmp_path / "npy", name, new)
    again = open_dataset("folder", tmp_path)
    assert again.videos[name].n_frames == 40
    np.testing.assert_allclose(again.landmarks(name), new * np.array([640, 480, 640]), rtol=1e-6)
    assert len(list((tmp_path / "npy" / ".packed").glob("landmarks-*.npy"))) == 1


def test_a_pack_that_cannot_be_written_falls_back_to_files(tmp_path, monkeypatch):
    """A read-only landmark folder (a shared dataset): the files are read one by one, with a
    warning that points at the caller."""
    make_folder_dataset(tmp_path, n_subjects=3, per_subject=2)
    plain = open_dataset("folder", tmp_path, pack=False)

    def read_only(*args):
        raise OSError("Read-only file system")

    monkeypatch.setattr(store_module, "build_packed", read_only)
    with pytest.warns(UserWarning, match="could not pack .*Read-only file system.*one by one") as w:
        fallback = open_dataset("folder", tmp_path)
    assert w[0].filename == __file__ and isinstance(fallback.store, FileStore)
    for name in plain.videos:
        np.testing.assert_array_equal(fallback.landmarks(name), plain.landmarks(name))


def test_a_truncated_landmark_file_is_named(tmp_path):
    """A cut copy (head -c) of a landmark file: opening, packing and reading it name the file and
    the fix, not numpy's "mmap length is greater than file size"."""
    make_folder_dataset(tmp_path, n_subjects=3, per_subject=2)
    plain = open_dataset("folder", tmp_path, pack=False)
    files = sorted((tmp_path / "npy").glob("*.npy"))
    shapes = {f: np.load(f, mmap_mode="r").shape for f in files}
    cut = tmp_path / "npy" / "subj 0 clip 1.mp4.npy"
    cut.write_bytes(cut.read_bytes()[:5000])
    fix = r"run extract_landmarks.py on its video again with --overwrite, or remove it from the"
    with pytest.raises(ValueError, match=rf"{re.escape(cut.name)}: truncated .*; {fix}"):
        open_dataset("folder", tmp_path)
    scales = {f.name: (640, 480) for f in files}
    for read in (
        lambda: build_packed(files, scales, shapes),  # the file was cut after it was opened
        lambda: plain.landmarks("subj 0 clip 1.mp4"),
    ):
        with pytest.raises(ValueError, match=rf"{re.escape(cut.name)}: not a readable .*; {fix}"):
            read()
    cut.write_bytes(cut.read_bytes()[:40])  # within the header
    with pytest.raises(ValueError, match=rf"{re.escape(cut.name)}: not a readable .*; {fix}"):
        open_dataset("folder", tmp_path)


def test_a_landmark_file_with_nan_is_named(tmp_path):
    """NaN would reach training as a "diverged" loss, and the baseline as a bare sklearn error."""
    make_folder_dataset(tmp_path, n_subjects=3, per_subject=2)
    plain = open_dataset("folder", tmp_path, pack=False)
    bad = tmp_path / "npy" / "subj 1 clip 0.mp4.npy"
    arr = np.load(bad)
    arr[5, 7, 1] = np.nan
    np.save(bad, arr)
    fix = r"run extract_landmarks.py on its video again with --overwrite, or remove it from the"
    for read in (lambda: open_dataset("folder", tmp_path), lambda: plain.landmarks(bad.stem)):
        with pytest.raises(ValueError, match=rf"{re.escape(bad.name)}: .* NaN or inf; {fix}"):
            read()


def test_a_demo_names_its_generator_as_the_fix(demo_root, tmp_path):
    """A demo's landmark files come from the generator, not from videos: a damaged one is fixed by
    generating the demo again, whether it is cut, empty or holds NaN."""
    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    command = f"python -m data.demo --out {root} --seed 1 --subjects 6 --folds 3"  # as it was made
    fix = re.escape(f"generate the demo again: {command}")
    bad = sorted((root / "npy").glob("*.npy"))[3]
    original = bad.read_bytes()
    bad.write_bytes(original[:5000])
    with pytest.raises(ValueError, match=rf"{re.escape(bad.name)}: truncated .*; {fix}$"):
        open_dataset("demo", root)
    np.save(bad, np.zeros((0, 478, 3), np.float32))
    with pytest.raises(ValueError, match=rf"{re.escape(bad.name)}: no frames; {fix}$"):
        open_dataset("demo", root)
    bad.write_bytes(original)
    plain = open_dataset("demo", root, pack=False)
    arr = np.load(bad)
    arr[2, 4, 0] = np.inf
    np.save(bad, arr)
    for read in (lambda: open_dataset("demo", root), lambda: plain.landmarks(bad.stem)):
        with pytest.raises(ValueError, match=rf"{re.escape(bad.name)}: .* NaN or inf; {fix}$"):
            read()
    assert training_refusal("demo", root, root / "labels", root / "npy").endswith(
        f"generate the demo again: {command}"
    )


def test_packs_of_different_file_sets_coexist(tmp_path):
    """Two runs packing different subsets of one folder keep each other's packs; packs of the
    older single-index layout, of an older format and unused for a month are removed."""
    make_folder_dataset(tmp_path, n_subjects=3, per_subject=2)
    files = sorted((tmp_path / "npy").glob("*.npy"))
    scales = {f.name: (640, 480) for f in files}
    legacy = tmp_path / "npy" / ".packed" / "landmarks-0123abcd.npy"
    legacy.parent.mkdir()
    np.save(legacy, np.zeros((1, 1, 3), np.float32))
    first, second = files[:4], files[2:]
    a, b = build_packed(first, scales), build_packed(second, scales)
    assert not legacy.exists()
    for subset, built in ((first, a), (second, b)):
        reopened = open_packed(subset, scales)
        assert reopened is not None and reopened.data_path == built.data_path
        for f in subset:
            np.testing.assert_array_equal(reopened.get(f), FileStore(scales).get(f))
    assert a.data_path != b.data_path
    assert open_packed(first, {**scales, first[0].name: (320, 240)}) is None  # frame size is keyed
    month_ago = time.time() - 31 * 86400
    os.utime(a.data_path.with_suffix(".json"), (month_ago, month_ago))
    build_packed(files, scales)  # a third set: the pack unused for a month goes
    assert not a.data_path.exists() and b.data_path.exists()
    index = b.data_path.with_suffix(".json")
    index.write_text(json.dumps({**json.loads(index.read_text()), "format": 3}))
    build_packed(files[1:], scales)  # the format-3 pack was built without the NaN check: it goes
    assert not b.data_path.exists()


def test_files_of_two_backends_are_named_with_the_fix(tmp_path):
    """68-point dlib files beside 478-point mediapipe ones: one file of each count is named."""
    make_folder_dataset(tmp_path, n_subjects=3, per_subject=2)
    write_video(tmp_path / "npy", "subj 2 clip 1.mp4", synth_video(24, 68, seed=3))
    message = (
        r"npy: landmark files mix point counts: 1 with 68 \(e.g. subj 2 clip 1.mp4.npy\), 5 with "
        r"478 \(e.g. subj 0 clip 0.mp4.npy\); extract every video with one --backend"
    )
    with pytest.raises(ValueError, match=message):
        open_dataset("folder", tmp_path)


def test_a_full_disk_is_named_with_the_fix(tmp_path, monkeypatch):
    """numpy's own message on a full disk ("103248 requested and 48096 written") named neither
    the file nor the fix; the old file is kept and no temp file is left."""
    from data.files import WriteError, atomic_save_npy, atomic_save_npz
    from data.io import save_landmarks

    npy = tmp_path / "x.mp4.npy"
    atomic_save_npy(npy, np.zeros((2, 478, 3), np.float32))

    def full(file, *args, **kwargs):
        raise OSError("103248 requested and 48096 written")

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(WriteError, match=r"x.mp4.npy: not written \(103248 requested .*free space"):
        atomic_save_npy(npy, np.ones((2, 478, 3), np.float32))
    with pytest.raises(WriteError, match=r"^\S*x.mp4.npy: not written"):  # named once
        save_landmarks(npy, np.ones((2, 478, 3), np.float32), {"fps": 25})
    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(WriteError, match=r"t.npz: not written"):
        atomic_save_npz(tmp_path / "t.npz", a=np.zeros(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.mp4.npy"]


def test_a_write_that_fails_before_or_after_the_data_names_the_target(tmp_path, monkeypatch):
    """Making the temp file or renaming it fails like the write itself: a WriteError naming the
    file asked for (never the random temp name), nothing left behind."""
    from data.files import WriteError, atomic_write_text

    long = tmp_path / ("v" * 300 + ".mp4.json")  # longer than a file system takes
    with pytest.raises(WriteError, match=r"v{300}\.mp4\.json: not written \(File name too long"):
        atomic_write_text(long, "{}")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(WriteError, match=r"t\.json: not written \(Permission denied\)") as e:
        atomic_write_text(tmp_path / "t.json", "{}")
    assert ".tmp" not in str(e.value)
    assert list(tmp_path.iterdir()) == []
