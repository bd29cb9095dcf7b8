"""python -m data.folds subset: fold files without the videos whose extraction failed."""

from __future__ import annotations

import json
import shlex
import shutil

import pytest

from data.folds import Fold, read_fold_files, write_folds


def test_subset_drops_videos_without_landmarks_and_says_so(tmp_path, capsys):
    """Published folds with a video whose extraction failed: `subset` writes the same folds
    without it (every other video keeps its fold and label), records what it dropped, and the
    dataset opens on the new folds as it would not on the old."""
    from landmark_synth import name_seed, synth_video, write_video

    from data.datasets import open_dataset
    from data.fold_check import main

    names = [f"{s:03d}_{c}_smile_1" for s in range(1, 7) for c in ("deliberate", "spontaneous")]
    labels = {n: int("spont" in n) for n in names}
    groups = [names[0:4], names[4:8], names[8:12]]
    folds = [Fold(i + 1, str(i + 1), tuple(n for g in groups if g is not t for n in g), tuple(t))
             for i, t in enumerate(groups)]  # fmt: skip
    write_folds(tmp_path / "labels", folds, labels)
    lost = {"002_spontaneous_smile_1", "005_deliberate_smile_1"}  # extraction failed
    for n in sorted(set(names) - lost):
        write_video(tmp_path / "npy", f"{n}.mp4", synth_video(4, 68, seed=name_seed(n)))
    with pytest.raises(FileNotFoundError, match="2 listed video"):
        open_dataset("uva", tmp_path)

    dst = tmp_path / "labels extracted"
    assert main(["subset", str(tmp_path), str(dst)]) == 0
    out = capsys.readouterr().out
    vet = shlex.split(out.split("Vet it: ")[1])  # the command as printed, run in a shell
    assert vet[:4] == ["python", "-m", "data.folds", "check"] and main(vet[3:]) == 0
    assert capsys.readouterr().out.endswith("\nok\n")
    assert f"{dst}: the 3 folds of {tmp_path / 'labels'} without 2 video(s)" in out
    assert "(test folds 1: 1, 3: 1; e.g. 002_spontaneous_smile_1, 005_deliberate" in out
    new, new_labels = read_fold_files(dst)
    for old, fold in zip(folds, new, strict=True):
        assert fold.name == old.name and fold.test == tuple(n for n in old.test if n not in lost)
        assert fold.train == tuple(n for n in old.train if n not in lost)
    assert new_labels == {n: y for n, y in labels.items() if n not in lost}
    meta = json.loads((dst / "subset.json").read_text())
    assert meta["dropped"] == sorted(lost) and meta["source"] == str(
        (tmp_path / "labels").resolve()
    )
    assert len(open_dataset("uva", tmp_path, folds_dir=dst)) == 10

    assert main(["subset", str(tmp_path), str(dst)]) == 2  # never into a folder that holds any
    assert "labels extracted: exists and is not an empty folder" in capsys.readouterr().err
    assert main(["subset", str(dst), str(tmp_path / "again")]) == 2  # nothing to drop
    assert "every listed video has a landmark file" in capsys.readouterr().err
    for n in groups[0]:  # fold 1 would test nothing
        (tmp_path / "npy" / f"{n}.mp4.npy").unlink(missing_ok=True)
    assert main(["subset", str(tmp_path), str(tmp_path / "again")]) == 2
    assert "fold(s) 1 would have no test or no training video left" in capsys.readouterr().err
    assert not (tmp_path / "again").exists()


def test_missing_landmarks_of_published_folds_name_a_subset_in_the_dataset(tmp_path):
    """Published fold files kept elsewhere (a shared, perhaps read-only folder): the subset the
    refusal names goes into the dataset's own folder, not beside them."""
    from landmark_synth import make_folder_dataset

    from data.datasets import open_dataset

    root = make_folder_dataset(tmp_path / "mine", n_subjects=4, per_subject=2)
    open_dataset("folder", root, folds_k=2)  # generated folds, copied as "published" ones
    shared = tmp_path / "shared" / "reference folds"
    shutil.copytree(root / "labels", shared)
    (shared / "folds_meta.json").unlink()
    (root / "npy" / "subj 1 clip 1.mp4.npy").unlink()
    with pytest.raises(FileNotFoundError) as refused:
        open_dataset("folder", root, folds_dir=shared)
    dst = shlex.quote(str(root / "reference folds_extracted"))
    assert f"subset {shlex.quote(str(shared))} {dst} --landmarks " in str(refused.value)
    assert f"then train with --folds {dst} (not the published protocol" in str(refused.value)
