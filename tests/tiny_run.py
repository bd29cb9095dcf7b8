"""A tiny model config for end-to-end runs of smile_point.py in tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml

import smile_point

TINY_MODEL = {
    "k": 4,
    "lpfa_dim": 8,
    "cic_dims": [8, 8],
    "cic_bottlenecks": [2, 2],
    "cic_curves": [4, 0],
    "curve_length": 2,
    "virtual_landmarks": 4,
    "dim": 8,
    "depth": 2,
    "temporal_depth": 1,
    "heads": 2,
    "dim_head": 4,
    "mlp_dim": 16,
}


def tiny_config(tmp_path: Path, root: Path, epochs: int = 3, **train) -> Path:
    cfg = {
        "data": {"dataset": "demo", "root": str(root), "window": 8, "target_fps": 12.5},
        "model": TINY_MODEL,
        "train": {"epochs": epochs, "batch_size": 8, "warmup_epochs": 1, **train},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def reference_fit(tmp_path: Path, root: Path, **train) -> tuple[tuple, object, dict]:
    """Fold 1 of the demo set at ``root`` under a 4-epoch tiny config (``train`` overrides): the
    arguments ``fit`` takes before its output folder, the CPU device, and the summary of an
    uninterrupted fit into ``tmp_path / "ref"``."""
    from data.datasets import open_dataset
    from training.config import load_config
    from training.loop import fit, resolve_device

    dataset = open_dataset("demo", root)
    split = dataset.split(1, seed=0)
    cfg = load_config(tiny_config(tmp_path, root, epochs=4, **train))
    fit_args = (cfg, dataset, list(split.train), list(split.val))
    cpu = resolve_device("cpu")
    return fit_args, cpu, fit(*fit_args, tmp_path / "ref", cpu, log=lambda line: None)


class Killed(Exception):
    """Raised by a test to stop a fit where a kill would."""


def dies_at_line(n: int, lines: list[str] | None = None):
    """A ``log`` for ``training.loop.fit`` that raises :class:`Killed` at its ``n``-th line
    (line 1: the parameter count or the resume, then one per epoch), keeping them in ``lines``."""
    lines = [] if lines is None else lines

    def log(line: str) -> None:
        lines.append(line)
        if len(lines) == n:
            raise Killed

    return log


def metric_rows(fold_dir: Path) -> list[dict]:
    """metrics.csv without the wall-clock column."""
    with open(fold_dir / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


def classify(args: list[str], tmp_path: Path) -> tuple[int, dict]:
    """``smile_point.py --classify ARGS --json FILE`` -> (exit code, the verdicts written)."""
    report = tmp_path / "verdicts.json"
    rc = smile_point.main(["--classify", *args, "--json", str(report)])
    return rc, json.loads(report.read_text())
