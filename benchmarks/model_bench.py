"""Time DeepMarkerNet / MeshSmileNet at the published size on the CPU.

    python benchmarks/model_bench.py [--batch 16] [--frames 16] [--landmarks 478] [--threads 2]
        [--repeats 3] [--amp] [--default-malloc] [--set KEY=VALUE ...]

Prints the parameter counts (both models and the ablations), the forward time of a batch of 2
clips (the published code needs ~12 s for that on 2 CPU cores), the forward time (unless --batch
is 2) and the full training step (forward + backward + AdamW step) at --batch, and the step split
into the point encoder (k-NN graph, CurveNet) and the rest. Each figure is the median of
--repeats runs after a warm-up, as wall time and as this process's CPU time: CPU time well below
threads x wall means that other processes shared the cores. ``--amp`` adds the training step
under bfloat16 autocast; ``--set dim=64 --set depth=2`` times a smaller ModelConfig instead of
the published one.

Unless --default-malloc is given, freed memory stays in the process heap (``reuse_freed_memory``):
with glibc's default, every large tensor is a fresh mapping whose page faults cost as much as the
arithmetic on it here.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.dmarker import N_DMARKERS
from models import ModelConfig, build_model, count_parameters
from models.curvenet import geometry
from training.config import Config, load_config
from training.loop import compute_loss
from training.memory import reuse_freed_memory

PUBLISHED_FORWARD_B2_S = 12.0  # published DeepMarkerNet forward, 2 clips, 2 CPU cores


def face_clips(batch: int, frames: int, landmarks: int, seed: int = 0) -> torch.Tensor:
    """(batch, frames, landmarks, 3) face-sized clouds (a fixed shape per clip, small motion)."""
    g = torch.Generator().manual_seed(seed)
    shape = torch.randn(batch, 1, landmarks, 3, generator=g) * torch.tensor([1.0, 1.3, 0.5])
    return shape + 0.02 * torch.randn(batch, frames, landmarks, 3, generator=g)


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU seconds of fn() over ``repeats`` runs after one warm-up."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def show(label: str, wall: float, cpu: float, note: str = "") -> None:
    print(f"  {label:44s} {wall:7.2f} s wall  {cpu:7.2f} s CPU  {note}", flush=True)


def config_from(overrides: list[str]) -> Config:
    """The default training config with ``--set`` overrides of its model section (``dim=64`` is
    ``model.dim=64`` of ``smile_point.py``; same parsing and checks)."""
    try:
        return load_config(None, [f"model.{item}" for item in overrides])
    except ValueError as e:
        raise SystemExit(str(e)) from None


def parameter_counts(landmarks: int) -> None:
    print(f"parameters ({landmarks} landmarks):")
    variants = {
        "deepmarkernet (published size)": ModelConfig(),
        "meshsmilenet": ModelConfig(name="meshsmilenet"),
        "deepmarkernet, linear point embedding": ModelConfig(point_encoder="linear"),
        "deepmarkernet, attention over time only": ModelConfig(attention="time"),
        "deepmarkernet, attention over landmarks only": ModelConfig(attention="landmarks"),
    }
    for label, cfg in variants.items():
        print(f"  {label:44s} {count_parameters(build_model(cfg, landmarks)):>10,}")


def train_step(cfg: Config, model, optimizer, x, batch: dict, amp: bool) -> None:
    """One optimizer step with the training loss (``training.loop.compute_loss``)."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        loss, _ = compute_loss(cfg, model(x), batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--landmarks", type=int, default=478)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--amp", action="store_true", help="also time the step under bf16 autocast")
    p.add_argument("--default-malloc", action="store_true", help="keep glibc's default malloc")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="ModelConfig field for the timed model, e.g. dim=64 (repeatable)",
    )
    args = p.parse_args(argv)
    run_cfg = config_from(args.set)
    cfg = run_cfg.model

    reused = False if args.default_malloc else reuse_freed_memory()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {args.threads} threads, freed memory reused: {reused}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    parameter_counts(args.landmarks)

    model = build_model(cfg, args.landmarks)
    if args.set:
        print(f"timed model: {', '.join(args.set)}: {count_parameters(model):,} parameters")
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=run_cfg.train.lr, weight_decay=run_cfg.train.weight_decay
    )
    b, t, v = args.batch, args.frames, args.landmarks

    print("forward, eval mode, no gradient:")
    model.eval()
    for batch in dict.fromkeys((2, b)):  # --batch 2: one line
        x = face_clips(batch, t, v)
        with torch.no_grad():
            wall, cpu = timed(lambda x=x: model(x), args.repeats)
        note = f"(published: ~{PUBLISHED_FORWARD_B2_S:.0f} s)" if batch == 2 else ""
        show(f"batch {batch} x {t} frames x {v} landmarks", wall, cpu, note)

    print(f"training step, batch {b} x {t} x {v} (forward + backward + AdamW):")
    model.train()
    x = face_clips(b, t, v)
    batch = {
        "label": torch.randint(0, 2, (b,)).float(),
        "dmarker": torch.randn(b, N_DMARKERS),
        "has_dmarker": torch.ones(b, dtype=torch.bool),
    }
    step_wall, step_cpu = timed(
        lambda: train_step(run_cfg, model, optimizer, x, batch, False), args.repeats
    )
    show("float32", step_wall, step_cpu)
    if args.amp:
        wall, cpu = timed(
            lambda: train_step(run_cfg, model, optimizer, x, batch, True), args.repeats
        )
        show("bfloat16 autocast", wall, cpu)

    print("  of which (float32):")
    frames = x.flatten(0, 1)
    if cfg.point_encoder == "curvenet":
        show("k-NN graph of all clouds", *timed(lambda: geometry(frames, cfg.k), args.repeats))

    def encoder_step() -> None:
        out = model.encoder(frames)
        out.backward(torch.ones_like(out) / out.numel())

    enc_wall, enc_cpu = timed(encoder_step, args.repeats)
    show("point encoder fwd + bwd (incl. k-NN)", enc_wall, enc_cpu)
    show("the rest: mix, transformers, heads, AdamW", step_wall - enc_wall, step_cpu - enc_cpu)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak memory {peak:.1f} GiB, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
