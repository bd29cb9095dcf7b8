"""Scoring videos: deterministic windows -> per-video probabilities (validation, the test fold,
``--classify``), and the one test of a fold's selected checkpoint.
"""

from __future__ import annotations

import signal
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from data.clips import ClipConfig, TestWindows, video_scores
from data.datasets import SmileDataset
from models import build_model
from training.checkpoint import load_checkpoint
from training.config import Config
from training.metrics import classification_metrics, finite


def leave_stop_to_main(worker_id: int) -> None:
    """A DataLoader worker's start: SIGTERM ignored. ``timeout``, ``scancel`` and preemption
    signal the whole process group; the main process stops as on Ctrl-C and ends its workers,
    which, killed by the signal themselves, made it fail with "DataLoader worker is killed"."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def clip_config(cfg: Config) -> ClipConfig:
    """The clip settings of a config (window, frame rate, normalisation, test stride)."""
    d = cfg.data
    return ClipConfig(
        window=d.window, target_fps=d.target_fps, normalize=d.normalize, test_stride=d.test_stride
    )


def uses_amp(cfg: Config, device: torch.device) -> bool:
    """bf16 autocast: with ``train.amp`` on a CUDA GPU with bf16 tensor cores (compute capability
    8.0+, Ampere and later; older GPUs emulate bf16, slower than fp32); never on the CPU."""
    return cfg.train.amp and device.type == "cuda" and _bf16_cores(device)


@cache
def _bf16_cores(device: torch.device) -> bool:
    return torch.cuda.get_device_capability(device) >= (8, 0)


def autocast(cfg: Config, device: torch.device):
    """The autocast context of :func:`uses_amp`."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_amp(cfg, device))


def batch_to(batch: dict, device: torch.device) -> dict:
    """The batch's tensors on ``device``."""
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }


@torch.no_grad()
def predict(
    cfg: Config, model, windows: TestWindows, n_videos: int, device: torch.device
) -> np.ndarray:
    """Per-video spontaneous probability: the mean over its deterministic windows. -> (n_videos,)"""
    model.eval()
    loader = DataLoader(
        windows,
        batch_size=cfg.train.batch_size * 2,
        shuffle=False,
        num_workers=cfg.data.num_workers,
        worker_init_fn=leave_stop_to_main,
        pin_memory=device.type == "cuda",
    )
    probs, index = [], []
    for batch in loader:
        index.append(batch.pop("index").numpy())  # stays on the CPU
        batch = batch_to(batch, device)
        with autocast(cfg, device):
            out = model(batch["x"], batch["mask"])
        probs.append(torch.sigmoid(out.logits.float()).cpu().numpy())
    return video_scores(np.concatenate(probs), np.concatenate(index), n_videos)


def test(
    cfg: Config,
    dataset: SmileDataset,
    names: list[str],
    out_dir: Path,
    device: torch.device,
    threshold: float,
) -> dict:
    """Evaluate ``best.pt`` once on ``names`` (the test fold) -> test.json's content."""
    ckpt = load_checkpoint(out_dir / "best.pt")
    model = build_model(cfg.model, dataset.n_landmarks).to(device)
    model.load_state_dict(ckpt["model"])
    labels = np.array([dataset.videos[n].label for n in names])
    probs = predict(cfg, model, TestWindows(dataset, names, clip_config(cfg)), len(names), device)
    probs = finite(probs, names, "test")
    return {
        **classification_metrics(labels, probs, threshold),
        "best_epoch": ckpt["state"]["best_epoch"],
        "videos": {
            n: {"label": int(y), "probability": float(p)}
            for n, y, p in zip(names, labels, probs, strict=True)
        },
    }
