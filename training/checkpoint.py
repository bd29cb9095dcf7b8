"""Checkpoints (``last.pt``, ``best.pt``; the payload is built in ``training.loop.fit``): "model"
(the weights validated and tested), "optimizer", "scheduler", "state" (epoch, best epoch and
score, epochs without improvement), "rng" (:func:`rng_state`), "config" (resolved),
"n_landmarks" (the model's input), "dmarker_scaler" (mean and std that turn the D-Marker head's
standardised outputs back into descriptors; None without the D-Marker loss), "targets_digest"
and "split_digest" (the D-Marker targets, and the training and validation videos with their
labels, it was trained on: what --resume checks); with weight averaging also "train_model" (the
weights the optimizer moves) and "ema_updates"."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from data.files import atomic_write


def rng_state(device: torch.device) -> dict:
    """The CPU, numpy and Python generators' states and, on CUDA, the training GPU's only (a
    resume may see fewer GPUs; a CPU run never starts CUDA)."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def set_rng_state(state: dict, device: torch.device) -> None:
    """Restore :func:`rng_state`; a CUDA state only onto a CUDA ``device``. Earlier versions
    saved a list, one state per visible GPU: skipped (each epoch reseeds every generator)."""
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and torch.is_tensor(state.get("cuda")):
        torch.cuda.set_rng_state(state["cuda"], device)
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save_checkpoint(path: str | Path, **payload) -> None:
    """``torch.save`` a dict atomically (temp file + rename)."""
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def split_digest(labels: Mapping[str, int], parts: dict[str, list[str]]) -> str:
    """SHA-256 of a fold's parts ({"train": names, "val": names, ...}) with the videos' labels."""
    rows = sorted((p, n, labels[n]) for p, names in parts.items() for n in names)
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def check_split(path: Path, ckpt: dict, split: str) -> None:
    """ValueError when checkpoint ``path`` was trained or selected on other videos than
    ``split`` (:func:`split_digest`): a file of another fold, or of this fold before its videos
    changed; resuming it would test a model that may have learnt from the test subjects.
    Earlier versions saved no digest."""
    if ckpt.get("split_digest", split) != split:
        raise ValueError(
            f"{path}: a checkpoint of other training or validation videos than this fold's "
            f"(another fold's file, or the dataset changed); delete {path.parent} and resume, "
            "or train under a new --out"
        )


class CheckpointError(ValueError):
    """A fold's checkpoint cannot be read (``--fold all`` reports it and runs the other folds)."""


def load_checkpoint(path: str | Path) -> dict:
    """Every tensor on the CPU: ``load_state_dict`` copies weights and optimizer state to the
    device of the module they load into, and the RNG states must stay CPU byte tensors."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint (train first, or drop --resume)")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a pickle of anything: one line, whatever failed
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({type(e).__name__}); delete {path.parent} and "
            "resume (--resume runs that fold again)"
        ) from e


def mend_best(out_dir: Path, state: dict) -> None:
    """After a kill between writing ``last.pt`` and ``best.pt`` (the last epoch improved),
    ``best.pt`` is that epoch's ``last.pt``. Raises ValueError when best.pt holds another epoch
    than the records' best for any other reason."""
    best, want = out_dir / "best.pt", state["best_epoch"]
    have = load_checkpoint(best)["state"]["best_epoch"] if best.exists() else None
    if have == want or want < 1 or have == state["epoch"] + 2:
        return  # (the last: written before last.pt by earlier versions; the rerun rewrites it)
    if want != state["epoch"] + 1:
        holds = f"holds epoch {have}" if have else "is missing"
        raise ValueError(
            f"{best} {holds} but the fold's records select epoch {want}; train this fold again "
            "under a new --out"
        )
    atomic_write(best, lambda tmp: shutil.copyfile(out_dir / "last.pt", tmp))
