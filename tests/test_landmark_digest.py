"""The landmark digest (what training read: arrays and frame rates): stable for the same points,
another for other ones; resumes, kept folds of MeshSmileNet (no D-Marker table to tell) and
checkpoints of earlier versions."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_run import Killed, dies_at_line, tiny_config

import smile_point
from data.datasets import open_dataset
from data.io import meta_path
from training.checkpoint import save_checkpoint
from training.config import load_config
from training.loop import fit, resolve_device


def test_landmark_digest_is_what_training_reads(tmp_path, demo_root):
    """The digest that resumes, kept folds and repeats compare: the same for the same points
    read through the packed store or file by file, however the names are ordered; another for
    a moved point or another frame rate (clips are resampled by it)."""
    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    names = sorted(open_dataset("demo", root).videos)
    first = open_dataset("demo", root).landmark_digest(names)
    assert open_dataset("demo", root, pack=False).landmark_digest(names[::-1]) == first
    assert open_dataset("demo", root).landmark_digest(names[1:]) != first
    sidecar = meta_path(root / "npy" / f"{names[0]}.npy")
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "fps": meta["fps"] / 2}))
    assert open_dataset("demo", root).landmark_digest(names) != first
    sidecar.write_text(json.dumps(meta))
    assert open_dataset("demo", root).landmark_digest(names) == first


def changed_landmarks(root: Path, name: str, by: float = 0.01) -> None:
    """Rewrite one demo video's landmark file with its points moved ``by`` (a frame's share)."""
    npy = root / "npy" / f"{name}.npy"
    time.sleep(0.01)  # a new modification time, whatever the file system's resolution
    np.save(npy, np.load(npy) + by)


def test_finished_fold_is_kept_only_on_the_same_landmarks(tmp_path, demo_root, capsys):
    """A finished MeshSmileNet fold (no D-Marker table to tell) is not kept once the landmark
    files it learned from changed (extracted again, replaced: its results would mix two
    datasets), while a file written again with the same points is."""
    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    args = ["--config", str(tiny_config(tmp_path, root, epochs=1)), "--model", "meshsmilenet"]
    args += ["--fold", "2", "--out", str(tmp_path / "run"), "--resume"]
    assert smile_point.main(args) == 0
    split = open_dataset("demo", root).split(2, seed=0)
    changed_landmarks(root, split.train[0], by=0.0)  # written again: a new file, the same points
    assert smile_point.main(args) == 0
    assert "finished earlier, kept" in capsys.readouterr().out
    changed_landmarks(root, split.train[0])
    assert smile_point.main(args) == 2
    assert "fold_02 (its landmark files changed since)" in capsys.readouterr().err


def test_resume_refuses_a_checkpoint_of_other_landmark_files(tmp_path, demo_root):
    """An unfinished fold resumed after its landmark files changed would train one model on two
    datasets: refused, also for MeshSmileNet (no D-Marker targets to tell)."""
    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    cfg = load_config(tiny_config(tmp_path, root, epochs=4))
    cfg.model.name = "meshsmilenet"
    cfg.train.dmarker_weight = 0.0

    def fit_cut(resume):
        dataset = open_dataset("demo", root)
        split = dataset.split(1, seed=0)
        with pytest.raises(Killed):
            fit(cfg, dataset, list(split.train), list(split.val), tmp_path / "cut",
                resolve_device("cpu"), resume=resume, log=dies_at_line(3))  # fmt: skip
        return split

    split = fit_cut(resume=False)
    changed_landmarks(root, split.val[0])
    with pytest.raises(ValueError, match=r"cut/last.pt: a checkpoint of other landmark files "):
        fit_cut(resume=True)


def test_a_checkpoint_without_a_landmark_digest_still_resumes(tmp_path, demo_root):
    """Checkpoints of versions before the landmark digest resume (unchecked) and are then saved
    with it."""
    cfg = load_config(tiny_config(tmp_path, demo_root, epochs=4))
    dataset = open_dataset("demo", demo_root)
    split = dataset.split(1, seed=0)
    args = (cfg, dataset, list(split.train), list(split.val), tmp_path / "cut")
    with pytest.raises(Killed):
        fit(*args, resolve_device("cpu"), log=dies_at_line(3))
    for name in ("last.pt", "best.pt"):
        old = torch.load(tmp_path / "cut" / name, weights_only=True)
        del old["landmark_digest"]
        save_checkpoint(tmp_path / "cut" / name, **old)
    fit(*args, resolve_device("cpu"), resume=True, log=lambda line: None)
    last = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert last["state"]["epoch"] == 3 and last["landmark_digest"] == dataset.landmark_digest(
        list(split.train) + list(split.val)
    )
