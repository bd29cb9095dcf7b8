"""Checkpoints (``last.pt``, ``best.pt``; the payload is built in ``training.loop.fit``): "model"
(the weights validated and tested), "optimizer", "scheduler", "state" (epoch, best epoch and
score, epochs without improvement), "rng" (:func:`rng_state`), "config" (resolved),
"n_landmarks" (the model's input), "dmarker_scaler" (mean and std that turn the D-Marker head's
standardised outputs back into descriptors; None without the D-Marker loss), "targets_digest",
"split_digest" and "landmark_digest" (the D-Marker targets, the training and validation videos
with their labels, and their landmark arrays, it was trained on: what --resume checks); with
weight averaging also "train_model" (the weights the optimizer moves) and "ema_updates".

Checkpoints hold only tensors, numbers, strings and containers of them, and are loaded with
``weights_only=True``: loading one runs no code, whoever wrote it. Those of earlier versions (numpy
arrays in "rng" and "dmarker_scaler") are refused until ``python -m training.checkpoint trust
PATH`` rewrites them.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import pickle
import random
import re
import shlex
import shutil
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from data.files import atomic_write, run_cli

#: The checkpoint files a run writes (in ``fold_NN`` folders): what ``trust`` takes in a folder.
CHECKPOINT_NAMES = ("best.pt", "last.pt")

#: Keys every checkpoint of smile_point.py holds.
_KEYS = {"model", "optimizer", "scheduler", "state", "config"}


def rng_state(device: torch.device) -> dict:
    """The CPU, numpy and Python generators' states and, on CUDA, the training GPU's only (a
    resume may see fewer GPUs; a CPU run never starts CUDA). numpy's key is kept as a tensor."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": _tensor_key(np.random.get_state()),
        "python": random.getstate(),
    }


def _tensor_key(state: tuple) -> tuple:
    """numpy's legacy generator state with its uint32 key (624,) as an int64 tensor."""
    name, key, *rest = state
    return (name, torch.as_tensor(np.asarray(key, dtype=np.int64)), *rest)


def scaler_tensors(scaler) -> dict | None:
    """The D-Marker scaler's mean and std (``data.targets.DMarkerScaler``) as checkpoints keep
    them: tensors (no copy); None without one."""
    if scaler is None:
        return None
    return {"mean": torch.from_numpy(scaler.mean), "std": torch.from_numpy(scaler.std)}


def set_rng_state(state: dict, device: torch.device) -> None:
    """Restore :func:`rng_state`; a CUDA state only onto a CUDA ``device``. Earlier versions
    saved a list, one state per visible GPU: skipped (each epoch reseeds every generator)."""
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and torch.is_tensor(state.get("cuda")):
        torch.cuda.set_rng_state(state["cuda"], device)
    name, key, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), *rest))
    random.setstate(state["python"])


def save_checkpoint(path: str | Path, **payload) -> None:
    """``torch.save`` a dict atomically (temp file + rename)."""
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def split_digest(labels: Mapping[str, int], parts: dict[str, list[str]]) -> str:
    """SHA-256 of a fold's parts ({"train": names, "val": names, ...}) with the videos' labels."""
    rows = sorted((p, n, labels[n]) for p, names in parts.items() for n in names)
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


#: What a checkpoint must have been trained on to be resumed: digest key -> what differs.
TRAINED_ON = {
    "split_digest": "other training or validation videos than this fold's (another fold's file, "
    "or the dataset changed)",
    "landmark_digest": "other landmark files than the dataset holds now (they were extracted "
    "again, replaced, or are another landmark set)",
}


def check_same_data(path: Path, ckpt: dict, digests: dict[str, str]) -> None:
    """ValueError when checkpoint ``path`` was trained or selected on other data than
    ``digests`` ({key of :data:`TRAINED_ON`: digest}) describes: other videos (:func:`split_digest`;
    a file of another fold, or of this fold before its videos changed: resuming it would test a
    model that may have learnt from the test subjects) or other landmark arrays (resuming would
    train one model on two datasets). Earlier versions saved fewer digests, or none."""
    for key, digest in digests.items():
        if ckpt.get(key, digest) != digest:
            raise ValueError(
                f"{path}: a checkpoint of {TRAINED_ON[key]}; delete {path.parent} and resume, "
                "or train under a new --out"
            )


class CheckpointError(ValueError):
    """A fold's checkpoint cannot be read (``--fold all`` reports it and runs the other folds)."""


class UntrustedCheckpointError(CheckpointError):
    """A checkpoint holding more than weights and numbers: loading it could run code."""


def load_checkpoint(path: str | Path) -> dict:
    """Every tensor on the CPU: ``load_state_dict`` copies weights and optimizer state to the
    device of the module they load into, and the RNG states must stay CPU byte tensors. Only
    weights and numbers are unpickled (``weights_only``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint (train first, or drop --resume)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not zipfile.is_zipfile(path):  # a damaged file
            raise _unreadable(path, e) from e
        raise UntrustedCheckpointError(  # what weights_only refuses in a whole file
            f"{path}: holds more than weights and numbers, so loading it could run code (a "
            "checkpoint of an earlier version of this toolkit, or not one of its files); if you "
            f"trust where it came from, run python -m training.checkpoint trust "
            f"{shlex.quote(str(_trust_unit(path)))}"
        ) from e
    except Exception as e:  # one line, whatever failed
        raise _unreadable(path, e) from e


def _unreadable(path: Path, e: Exception) -> CheckpointError:
    return CheckpointError(
        f"{path}: not a readable checkpoint ({type(e).__name__}); delete {path.parent} and "
        "resume (--resume runs that fold again)"
    )


def _trust_unit(path: Path) -> Path:
    """What to name to ``trust`` for checkpoint ``path``: its run folder where it is a fold's
    (every fold's files are of one version), else the file itself."""
    fold = path.parent
    if path.name in CHECKPOINT_NAMES and re.fullmatch(r"fold_\d+", fold.name):
        return fold.parent
    return path


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


def _plain(obj):
    """``obj`` with every numpy array a tensor and every numpy scalar a Python number (dicts and
    lists changed in place: a state dict keeps its type and metadata)."""
    if isinstance(obj, np.ndarray):
        return torch.as_tensor(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (dict, list)):
        for k, v in obj.items() if isinstance(obj, dict) else enumerate(obj):
            obj[k] = _plain(v)
    if isinstance(obj, tuple):
        return tuple(map(_plain, obj))
    return obj


def _weights_only(path: Path, ckpt) -> dict:
    """Checkpoint ``path`` of an earlier version with its numpy values as tensors and numbers
    (ValueError when anything else in it still needs more than weights-only loading)."""
    if not isinstance(ckpt, dict) or not _KEYS <= set(ckpt):
        raise ValueError(f"{path}: not a checkpoint of smile_point.py; not rewritten")
    try:
        if isinstance(ckpt.get("rng"), dict):
            ckpt["rng"]["numpy"] = _tensor_key(ckpt["rng"]["numpy"])
        ckpt = _plain(ckpt)
        buf = io.BytesIO()
        torch.save(ckpt, buf)
        torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    except Exception as e:  # whatever saving it or loading it as weights raised
        raise ValueError(
            f"{path}: holds objects no checkpoint of smile_point.py has; not rewritten"
        ) from e
    return ckpt


def trust(path: Path) -> bool:
    """Rewrite checkpoint ``path`` of an earlier version as a weights-only file (atomically; a
    link's target); False when it already is one. ValueError (naming ``path``) when it cannot
    be."""
    try:
        load_checkpoint(path)
        return False
    except UntrustedCheckpointError:
        pass
    except CheckpointError as e:  # without the advice of a fold's resume
        raise ValueError(f"{path}: not a readable checkpoint ({type(e.__cause__).__name__})") from e
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # whatever the pickle raised
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__})") from e
    save_checkpoint(path.resolve(), **_weights_only(path, ckpt))
    return True


def _checkpoints(path: Path) -> list[Path]:
    """``path`` itself, or the run's checkpoint files (:data:`CHECKPOINT_NAMES`) under it."""
    if path.is_dir():
        return sorted(f for name in CHECKPOINT_NAMES for f in path.rglob(name))
    return [path] if path.exists() else []


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.checkpoint",
        description="Checkpoints of earlier versions you trust, rewritten so that they load "
        "as weights only.",
    )
    p.add_argument("command", choices=["trust"])
    p.add_argument(
        "paths",
        nargs="+",
        type=Path,
        help="checkpoint files, or run folders (their best.pt and last.pt files)",
    )
    args = p.parse_args(argv)
    failed = []
    for q in args.paths:
        files = _checkpoints(q)
        if not files:
            failed.append(f"{q}: {'no best.pt or last.pt in it' if q.is_dir() else 'no such file'}")
        for f in files:
            try:
                print(f"{f}: {'rewritten' if trust(f) else 'already weights-only'}")
            except (OSError, ValueError) as e:  # the rest are still done
                failed.append(str(e).splitlines()[0])
    for line in failed:
        print(f"error: {line}", file=sys.stderr)
    return 2 if failed else 0


if __name__ == "__main__":
    run_cli(main)
