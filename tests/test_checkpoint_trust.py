"""Checkpoints load as weights only: a pickle that would run code is refused unrun, and a
checkpoint of an earlier version (numpy arrays in it) is refused until ``python -m
training.checkpoint trust`` rewrites it, after which it resumes to the uninterrupted result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_run import Killed, dies_at_line, metric_rows, reference_fit

import smile_point
from training import checkpoint
from training.checkpoint import UntrustedCheckpointError, load_checkpoint
from training.loop import fit


def _as_earlier_version(path: Path) -> None:
    """Rewrite a checkpoint as versions before weights-only loading saved it."""
    ckpt = load_checkpoint(path)
    name, key, *rest = ckpt["rng"]["numpy"]
    ckpt["rng"]["numpy"] = (name, key.numpy().astype(np.uint32), *rest)
    ckpt["dmarker_scaler"] = {k: v.numpy() for k, v in ckpt["dmarker_scaler"].items()}
    ckpt["state"]["best_score"] = np.float64(ckpt["state"]["best_score"])
    torch.save(ckpt, path)


class _Evaluates:
    """Unpickled as ``eval(expression)``: a lambda, which cannot be saved again."""

    def __init__(self, expression: str):
        self.expression = expression

    def __reduce__(self):
        return eval, (self.expression,)


class _Runs:
    """Unpickling it calls ``Path.touch`` on the file it names (any call a pickle may make)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_a_pickle_that_would_run_code_is_refused_unrun(tmp_path, capsys):
    marker, path = tmp_path / "ran", tmp_path / "best.pt"
    torch.save({"model": {}, "config": _Runs(marker)}, path)
    with pytest.raises(UntrustedCheckpointError, match="training.checkpoint trust"):
        load_checkpoint(path)
    assert not marker.exists()
    rc = smile_point.main(["--classify", str(path), "--checkpoint", str(path)])
    assert rc == 2 and not marker.exists()
    assert "could run code" in capsys.readouterr().err


def test_an_earlier_versions_checkpoint_resumes_once_trusted(tmp_path, demo_root, capsys):
    fit_args, cpu, ref = reference_fit(tmp_path, demo_root)
    cut = tmp_path / "cut"
    with pytest.raises(Killed):  # after two epochs
        fit(*fit_args, cut, cpu, log=dies_at_line(3))
    for name in ("last.pt", "best.pt"):
        _as_earlier_version(cut / name)
    with pytest.raises(UntrustedCheckpointError, match=f"trust {cut / 'last.pt'}"):
        fit(*fit_args, cut, cpu, resume=True, log=lambda line: None)

    assert checkpoint.main(["trust", str(cut)]) == 0
    out = capsys.readouterr().out
    assert f"{cut / 'best.pt'}: rewritten" in out and f"{cut / 'last.pt'}: rewritten" in out
    assert checkpoint.main(["trust", str(cut / "last.pt")]) == 0
    assert "already weights-only" in capsys.readouterr().out
    assert fit(*fit_args, cut, cpu, resume=True, log=lambda line: None) == ref
    assert metric_rows(cut) == metric_rows(tmp_path / "ref")


def test_trust_takes_a_runs_checkpoints_only_and_reports_each_file(tmp_path, capsys):
    """In a folder only best.pt and last.pt are unpickled (another .pt there could run code);
    a file that is no checkpoint of smile_point.py, or holds what none has, is left as it was,
    and the rest are still rewritten."""
    run = tmp_path / "my run"
    (run / "fold_01" / "tb").mkdir(parents=True)
    marker = tmp_path / "ran"
    torch.save({"model": {}, "x": _Runs(marker)}, run / "fold_01" / "tb" / "encoder.pt")
    keys = dict.fromkeys(("optimizer", "scheduler", "state", "config"), {})
    foreign = run / "fold_01" / "best.pt"
    torch.save({"model": {}, "extra": Path("x")}, foreign)
    odd = run / "fold_01" / "last.pt"
    torch.save({"model": {}, **keys, "names": np.array(["a", "b"])}, odd)
    old = run / "fold_02" / "best.pt"
    old.parent.mkdir()
    torch.save({"model": {"w": torch.ones(2)}, **keys, "scale": np.float64(2.0)}, old)
    with pytest.raises(UntrustedCheckpointError) as e:
        load_checkpoint(old)
    assert str(e.value).endswith(f"trust '{run}'")  # the whole run, quoted for a shell
    unsaveable = run / "fold_03" / "last.pt"
    unsaveable.parent.mkdir()
    torch.save({"model": {}, **keys, "f": _Evaluates("lambda: 1")}, unsaveable)
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(foreign.read_bytes()[:100])
    before = {f: f.read_bytes() for f in (foreign, odd, unsaveable)}
    empty = tmp_path / "empty"
    empty.mkdir()

    rc = checkpoint.main(["trust", str(run), str(damaged), str(empty), "nothing.pt"])
    out, err = capsys.readouterr()
    assert rc == 2 and not marker.exists()
    assert all(f.read_bytes() == b for f, b in before.items())
    assert out == f"{old}: rewritten\n" and load_checkpoint(old)["scale"] == 2.0
    assert err.splitlines() == [
        f"error: {foreign}: not a checkpoint of smile_point.py; not rewritten",
        f"error: {odd}: holds objects no checkpoint of smile_point.py has; not rewritten",
        f"error: {unsaveable}: holds objects no checkpoint of smile_point.py has; not rewritten",
        f"error: {damaged}: not a readable checkpoint (RuntimeError)",
        f"error: {empty}: no best.pt or last.pt in it",
        "error: nothing.pt: no such file",
    ]
