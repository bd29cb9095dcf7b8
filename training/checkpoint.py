"""Checkpoints: model, optimizer, scheduler, epoch, selection state, RNG states, resolved config
(with weight averaging also the trained weights and the number of averaging updates)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from data.io import atomic_write


def rng_state() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save_checkpoint(path: str | Path, **payload) -> None:
    """``torch.save`` a dict atomically (temp file + rename), adding the current RNG states."""
    payload = {**payload, "rng": rng_state()}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path) -> dict:
    """Every tensor on the CPU: ``load_state_dict`` copies weights and optimizer state to the
    device of the module they load into, and the RNG states must stay CPU byte tensors."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no checkpoint (train first, or drop --resume)")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a pickle of anything: one line, whatever failed
        raise ValueError(
            f"{path}: not a readable checkpoint ({type(e).__name__}); delete it and train that "
            "fold again"
        ) from e
