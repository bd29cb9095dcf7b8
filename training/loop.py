"""Fit one fold with model selection on the inner validation split.

``fit`` sees only the training and validation names of a fold; the test names reach nothing but
``training.evaluate.test``, which runs once with the selected checkpoint on deterministic windows.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from colorama import Fore, Style
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from data.clips import TestWindows, TrainClips
from data.datasets import SmileDataset
from data.files import atomic_write_json, atomic_write_text
from data.targets import DMarkerScaler, targets_digest
from data.transforms import build_augment
from models import SmileOutput, build_model, count_parameters
from training.checkpoint import (
    check_same_data,
    load_checkpoint,
    mend_best,
    rng_state,
    save_checkpoint,
    scaler_tensors,
    set_rng_state,
    split_digest,
)
from training.config import DEVICE, Config, to_dict
from training.evaluate import autocast, batch_to, clip_config, leave_stop_to_main, predict, uses_amp
from training.metrics import DivergedError, best_threshold, classification_metrics, finite, log_loss

METRIC_COLUMNS = (
    "epoch",
    "loss",
    "bce",
    "dmarker",
    "val_auc",
    "val_accuracy",
    "val_bce",
    "lr",
    "seconds",
    "best",
)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; asking for cuda without one is an error."""
    if not DEVICE.fullmatch(name):
        raise ValueError(f"--device {name}: use auto, cpu or cuda[:N]")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"--device {name}: no CUDA device visible to torch; use --device auto or cpu"
            )
        if device.index is not None and device.index >= (n := torch.cuda.device_count()):
            raise RuntimeError(f"--device {name}: torch sees {n} CUDA device(s), cuda:0..{n - 1}")
        if device.index is not None:  # the current device too: "cuda" and kernels' own buffers
            torch.cuda.set_device(device)
    return device


#: What needs the D-Marker table in a network run, for the error when there is none.
DMARKER_LOSS = "the D-Marker loss (--model meshsmilenet trains without it)"


def uses_dmarkers(cfg: Config) -> bool:
    return cfg.model.name == "deepmarkernet" and cfg.train.dmarker_weight > 0


def _lr_lambda(cfg: Config) -> Callable[[int], float]:
    """Linear warm-up over ``warmup_epochs`` then cosine decay to ``min_lr_ratio`` (per epoch)."""
    t = cfg.train

    def factor(epoch: int) -> float:
        if epoch < t.warmup_epochs:
            return (epoch + 1) / t.warmup_epochs
        span = max(t.epochs - t.warmup_epochs, 1)
        cos = 0.5 * (1 + math.cos(math.pi * min(epoch - t.warmup_epochs, span) / span))
        return t.min_lr_ratio + (1 - t.min_lr_ratio) * cos

    return factor


def _update_average(ema: AveragedModel, model: torch.nn.Module) -> None:
    """One EMA step; integer buffers (BatchNorm's batch counter) are copied, not averaged."""
    ema.update_parameters(model)
    for mine, theirs in zip(ema.module.buffers(), model.buffers(), strict=True):
        if not mine.is_floating_point():
            mine.copy_(theirs)


def compute_loss(cfg: Config, out: SmileOutput, batch: dict) -> tuple[torch.Tensor, dict]:
    """Weighted BCE + D-Marker regression on standardised targets (no sigmoid around it).

    ``out``: logits (b,), dmarkers (b, 225) or None; ``batch``: label (b,) 0/1, dmarker (b, 225)
    standardised, has_dmarker (b,) (0 where a video has no D-Markers: its row is left out).
    Returns the loss and its detached parts {"bce", "dmarker"}.
    """
    bce = F.binary_cross_entropy_with_logits(out.logits.float(), batch["label"].float())
    parts = {"bce": bce.detach()}
    loss = cfg.train.bce_weight * bce
    if uses_dmarkers(cfg) and out.dmarkers is not None:
        has = batch["has_dmarker"].bool()
        if has.any():
            reg = F.mse_loss if cfg.train.dmarker_loss == "mse" else F.smooth_l1_loss
            dm = reg(out.dmarkers.float()[has], batch["dmarker"].float()[has])
            loss = loss + cfg.train.dmarker_weight * dm
            parts["dmarker"] = dm.detach()
    return loss, parts


def _scaler(cfg: Config, dataset: SmileDataset, train: list[str]) -> DMarkerScaler | None:
    """D-Marker standardisation fitted on ``train`` only; None when the D-Marker loss is off."""
    if not uses_dmarkers(cfg):
        return None
    return DMarkerScaler.fit(dataset.require_dmarkers(DMARKER_LOSS, train), train)


def _weights(model: torch.nn.Module, ema: AveragedModel | None) -> dict:
    """A checkpoint's weights: "model" the scored ones (the average with EMA), and with EMA also
    "train_model" (the weights the optimizer moves) and the number of averaged steps."""
    if ema is None:
        return {"model": model.state_dict()}
    return {
        "model": ema.module.state_dict(),
        "train_model": model.state_dict(),
        "ema_updates": int(ema.n_averaged),
    }


def _restore(
    last: Path, model, ema, optimizer, scheduler, device, digest: str | None, trained_on: dict
) -> dict:
    """Load ``last.pt`` into the training objects (as :func:`_weights` saved them) and the RNGs;
    returns its selection state. ValueError when the D-Marker targets or the fold's training and
    validation videos or their landmark arrays changed since."""
    ckpt = load_checkpoint(last)
    check_same_data(last, ckpt, trained_on)
    (ema.module if ema else model).load_state_dict(ckpt["model"])
    if ema:
        model.load_state_dict(ckpt["train_model"])
        ema.n_averaged.fill_(ckpt["ema_updates"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    set_rng_state(ckpt["rng"], device)
    if ckpt.get("targets_digest") != digest:
        raise ValueError(
            f"{last}: the D-Marker targets changed since this fold started (its table was "
            f"rebuilt); delete {last.parent} and resume, or train under a new --out"
        )
    return ckpt["state"]


def _write_metrics(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _read_metrics(path: Path, upto_epoch: int) -> list[dict]:
    if not path.exists():
        return []
    with open(path) as f:
        return [r for r in csv.DictReader(f) if int(r["epoch"]) <= upto_epoch]


def _summary_line(cfg: Config, row: dict, improved: bool) -> str:
    best = f" {Fore.GREEN}* best{Style.RESET_ALL}" if improved else ""
    dm = "" if math.isnan(row["dmarker"]) else f" dm {row['dmarker']:.3f}"
    return (
        f"{Fore.CYAN}epoch {row['epoch']:>3}/{cfg.train.epochs}{Style.RESET_ALL} "
        f"loss {row['loss']:.3f} (bce {row['bce']:.3f}{dm}) | "
        f"{Fore.YELLOW}val bce {row['val_bce']:.3f} auc {row['val_auc']:.3f} "
        f"acc {row['val_accuracy']:.3f}"
        f"{Style.RESET_ALL} | "
        f"lr {row['lr']:.2e} | {row['seconds']:.1f}s{best}"
    )


def _train_epoch(cfg: Config, model, ema, optimizer, train_set: TrainClips, epoch: int, device):
    """One pass over the training clips of ``epoch`` (0-based) -> mean "loss", "bce" and
    "dmarker" over its batches (NaN without the D-Marker loss)."""
    t = cfg.train
    # Every random draw of an epoch is a function of (seed, epoch): resuming is exact.
    torch.manual_seed(t.seed * 100_003 + epoch)
    train_set.set_epoch(epoch)
    loader = DataLoader(
        train_set,
        batch_size=t.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(t.seed * 100_003 + epoch),
        num_workers=cfg.data.num_workers,
        worker_init_fn=leave_stop_to_main,
        pin_memory=device.type == "cuda",  # so that the non-blocking copies do not block
    )
    model.train()
    sums = {"loss": 0.0, "bce": 0.0, "dmarker": 0.0}
    n_dm = 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{t.epochs}", leave=False, dynamic_ncols=True)
    for batch in bar:
        batch = batch_to(batch, device)
        with autocast(cfg, device):
            out = model(batch["x"], batch["mask"])
        loss, parts = compute_loss(cfg, out, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        optimizer.step()
        if ema:
            _update_average(ema, model)
        sums["loss"] += loss.item()
        sums["bce"] += parts["bce"].item()
        if "dmarker" in parts:
            sums["dmarker"] += parts["dmarker"].item()
            n_dm += 1
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return {
        "loss": sums["loss"] / len(loader),
        "bce": sums["bce"] / len(loader),
        "dmarker": sums["dmarker"] / n_dm if n_dm else float("nan"),
    }


def _validate(cfg: Config, labels: np.ndarray, probs: np.ndarray):
    """({"val_auc", "val_accuracy", "val_bce"}, selection score: higher is better; accuracy
    where ``train.select_metric`` is undefined, AUC on a one-class validation part) of the
    validation probabilities ``probs``."""
    vm = classification_metrics(labels, probs)
    val_bce = log_loss(labels, probs)
    score = -val_bce if cfg.train.select_metric == "bce" else vm[cfg.train.select_metric]
    if math.isnan(score):
        score = vm["accuracy"]
    return {"val_auc": vm["auc"], "val_accuracy": vm["accuracy"], "val_bce": val_bce}, score


def fit(
    cfg: Config,
    dataset: SmileDataset,
    train: list[str],
    val: list[str],
    out_dir: Path,
    device: torch.device,
    *,
    resume: bool = False,
    log: Callable[[str], None] = tqdm.write,
) -> dict:
    """Train on ``train``, select the epoch on ``val``; writes metrics.csv, tb/, last.pt, best.pt
    and selection.json.

    With ``train.ema_decay`` the validated, selected and tested weights are an exponential moving
    average of the trained ones; checkpoints then hold both ("model": the average, "train_model":
    the weights the optimizer moves).
    Returns {"best_epoch", "best_score", "threshold"}; the threshold is chosen on ``val``, scored
    with the selected weights and the test's windows (``data.test_stride``).
    """
    t = cfg.train
    out_dir.mkdir(parents=True, exist_ok=True)
    ccfg = clip_config(cfg)
    scaler = _scaler(cfg, dataset, train)
    # Validation videos' targets are never used, but they are in the digest that resumed folds
    # of earlier versions recorded.
    targets = scaler.targets(dataset.dmarkers(), train + val) if scaler else None
    digest = targets_digest(targets)  # a resumed fit must train on the same targets
    trained_on = {  # ... and the same videos and landmark arrays
        "split_digest": split_digest(dataset.labels, {"train": train, "val": val}),
        "landmark_digest": dataset.landmark_digest(train + val),
    }
    train_set = TrainClips(
        dataset,
        train,
        ccfg,
        augment=build_augment(cfg.augment, dataset.n_landmarks, cfg.data.normalize),
        targets=targets,
        target_adjust=scaler.at_speed if scaler else None,
        seed=t.seed,
    )
    # Validation runs every epoch: windows every W frames. The test (once) and --classify use
    # data.test_stride, whose denser windows average more views of each video.
    val_set = TestWindows(dataset, val, replace(ccfg, test_stride=None))
    val_labels = np.array([dataset.videos[n].label for n in val])

    torch.manual_seed(t.seed)
    model = build_model(cfg.model, dataset.n_landmarks).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg))
    ema = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(t.ema_decay), use_buffers=True)
        if t.ema_decay
        else None
    )
    scored = ema.module if ema else model  # the weights that are validated, selected and tested
    precision = "bf16 autocast" if uses_amp(cfg, device) else "fp32"
    log(f"{cfg.model.name}: {count_parameters(model):,} parameters on {device}, {precision}")

    state = {"epoch": -1, "best_score": -math.inf, "best_epoch": -1, "stale": 0}
    last = out_dir / "last.pt"
    if not resume:
        (out_dir / "best.pt").unlink(missing_ok=True)  # never select a checkpoint of another run
    if resume and last.exists():
        state = _restore(last, model, ema, optimizer, scheduler, device, digest, trained_on)
        mend_best(out_dir, state)
        if (best := out_dir / "best.pt").exists():
            check_same_data(best, load_checkpoint(best), trained_on)
        log(f"resumed from {last} after epoch {state['epoch'] + 1}")
    done = state["epoch"] + 1  # epochs finished; rows and TensorBoard steps count from 1
    rows = _read_metrics(out_dir / "metrics.csv", done)
    writer = SummaryWriter(str(out_dir / "tb"), purge_step=done + 1)

    for epoch in range(state["epoch"] + 1, t.epochs):
        if t.patience and state["stale"] >= t.patience:
            log(f"early stop: no validation improvement for {t.patience} epochs")
            break
        start = time.perf_counter()
        losses = _train_epoch(cfg, model, ema, optimizer, train_set, epoch, device)
        probs = predict(cfg, scored, val_set, len(val_labels), device)
        if not (math.isfinite(losses["loss"]) and np.isfinite(probs).all()):
            writer.close()
            what = "training loss" if not math.isfinite(losses["loss"]) else "validation output"
            raise DivergedError(
                f"epoch {epoch + 1}: the {what} is not finite (diverged); train with a "
                "lower --lr under a new --out (a run keeps one config)"
            )
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        metrics, score = _validate(cfg, val_labels, probs)
        improved = score > state["best_score"]
        row = {
            "epoch": epoch + 1,
            **losses,
            **metrics,
            "lr": lr,
            "seconds": time.perf_counter() - start,
            "best": int(improved),
        }
        state = {
            "epoch": epoch,
            "best_score": score if improved else state["best_score"],
            "best_epoch": epoch + 1 if improved else state["best_epoch"],
            "stale": 0 if improved else state["stale"] + 1,
        }
        payload = {
            **_weights(model, ema),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "state": state,
            "config": to_dict(cfg),
            "n_landmarks": dataset.n_landmarks,
            "dmarker_scaler": scaler_tensors(scaler),
            "targets_digest": digest,
            **trained_on,
            "rng": rng_state(device),
        }
        rows.append(row)
        _write_metrics(out_dir / "metrics.csv", rows)
        for key in ("loss", "bce", "dmarker", "val_auc", "val_accuracy", "val_bce", "lr"):
            writer.add_scalar(key, row[key], epoch + 1)
        writer.flush()
        save_checkpoint(last, **payload)  # then best.pt: a kill between is mended on resume
        if improved:
            save_checkpoint(out_dir / "best.pt", **payload)
        log(_summary_line(cfg, row, improved))
    writer.close()

    threshold = 0.5
    if t.threshold == "val":  # validation scored as the test will be: windows every test_stride
        model.load_state_dict(load_checkpoint(out_dir / "best.pt")["model"])
        probs = predict(cfg, model, TestWindows(dataset, val, ccfg), len(val), device)
        threshold = best_threshold(val_labels, finite(probs, val, "validation"))
    summary = {
        "best_epoch": state["best_epoch"],
        "best_score": state["best_score"],
        "threshold": threshold,
    }
    atomic_write_json(
        out_dir / "selection.json", {**summary, "select_metric": t.select_metric, "val": val}
    )
    return summary
