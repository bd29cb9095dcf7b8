"""The device path: `--device` names, the CUDA RNG state of checkpoints, bf16 autocast (where
it is used, and the whole path run with CPU autocast), and on a GPU a killed, resumed and
classified fold (skipped where torch sees none, as on this project's machines)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from tiny_run import metric_rows, tiny_config

import smile_point
from training.config import load_config
from training.loop import resolve_device


def test_bf16_autocast_path_end_to_end(tmp_path, demo_root, monkeypatch):
    """The CUDA path's autocast (bf16 activations, float32 weights) through training, selection,
    checkpoints and the test fold, run here with CPU autocast: this machine has no GPU."""
    import training.evaluate as evaluate
    import training.loop as loop

    used = []

    def cpu_autocast(cfg, device):
        used.append(cfg.train.amp)
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.train.amp)

    for module in (loop, evaluate):  # training steps; validation and test
        monkeypatch.setattr(module, "autocast", cpu_autocast)
    cfg = tiny_config(tmp_path, demo_root)
    for run, amp in (("bf16", "true"), ("fp32", "false")):
        args = ["--config", str(cfg), "--fold", "2", "--out", str(tmp_path / run)]
        assert smile_point.main([*args, "--set", f"train.amp={amp}"]) == 0
    assert True in used and False in used
    bf16, fp32 = (tmp_path / r / "fold_02" for r in ("bf16", "fp32"))
    losses = [[float(r["loss"]) for r in metric_rows(d)] for d in (bf16, fp32)]
    assert all(math.isfinite(v) for v in losses[0])
    assert losses[0] != losses[1]  # autocast was on: bf16 rounding moves the losses
    np.testing.assert_allclose(losses[0], losses[1], rtol=0.05)
    state = torch.load(bf16 / "best.pt", map_location="cpu", weights_only=False)["model"]
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float32}
    probs = [
        v["probability"] for v in json.loads((bf16 / "test.json").read_text())["videos"].values()
    ]
    assert probs and all(0.0 <= p <= 1.0 for p in probs)


def test_device_names(monkeypatch):
    """auto, cpu, cuda[:N]: a GPU that torch does not see is named in the error (checked here
    with the CUDA queries patched, as this machine has none)."""
    with pytest.raises(ValueError, match=r"--device mps: use auto, cpu or cuda\[:N\]"):
        resolve_device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="--device cuda:0: no CUDA device visible"):
        resolve_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    current = []
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    assert current == [torch.device("cuda:0")]  # made the current device: kernels' own buffers
    with pytest.raises(RuntimeError, match=r"--device cuda:1: torch sees 1 CUDA device\(s\)"):
        resolve_device("cuda:1")


def test_rng_state_holds_the_training_gpus_state_only(monkeypatch):
    """A resume on a machine that sees fewer GPUs (a cluster node, CUDA_VISIBLE_DEVICES) must
    not restore states of GPUs it lacks, and a CPU run must not start CUDA (checked with the
    CUDA queries patched, as this machine has none)."""
    from training.checkpoint import rng_state, set_rng_state

    def no_cuda(*args):
        raise AssertionError("CUDA touched")

    for name in ("get_rng_state", "set_rng_state", "get_rng_state_all", "set_rng_state_all"):
        monkeypatch.setattr(torch.cuda, name, no_cuda)
    cpu = torch.device("cpu")
    state = rng_state(cpu)
    assert state["cuda"] is None
    set_rng_state({**state, "cuda": torch.zeros(8, dtype=torch.uint8)}, cpu)
    gpu = torch.device("cuda:1")
    calls = []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda d: calls.append(("get", d)) or "s1")
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, d: calls.append(("set", s, d)))
    assert rng_state(gpu)["cuda"] == "s1"
    one = torch.ones(8, dtype=torch.uint8)
    set_rng_state({**state, "cuda": one}, gpu)
    set_rng_state({**state, "cuda": [one, one, one]}, gpu)  # an earlier version's list: skipped
    assert calls == [("get", gpu), ("set", one, gpu)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")
def test_cuda_fold_killed_resumed_and_classified(tmp_path, demo_root, monkeypatch):
    """On a GPU: a fold killed after its first epoch resumes and finishes; its checkpoint
    classifies its test videos as the test did, on the GPU and on the CPU (bf16 vs fp32: close,
    not equal)."""
    import training.loop as loop

    class Killed(Exception):
        pass

    real = loop.save_checkpoint

    def dies_after_epoch_1(path, **payload):
        real(path, **payload)
        if payload["state"]["epoch"] == 0:
            raise Killed

    out = tmp_path / "run"
    args = ["--config", str(tiny_config(tmp_path, demo_root)), "--fold", "1", "--out", str(out)]
    monkeypatch.setattr(loop, "save_checkpoint", dies_after_epoch_1)
    with pytest.raises(Killed):
        smile_point.main([*args, "--device", "cuda"])
    monkeypatch.setattr(loop, "save_checkpoint", real)
    assert smile_point.main([*args, "--device", "cuda", "--resume"]) == 0
    assert len(metric_rows(out / "fold_01")) == 3
    tested = json.loads((out / "fold_01" / "test.json").read_text())["videos"]
    files = [str(demo_root / "npy" / f"{n}.npy") for n in sorted(tested)]
    for device in ("cuda", "cpu"):
        report = tmp_path / f"{device}.json"
        cmd = ["--classify", *files, "--checkpoint", str(out), "--json", str(report)]
        assert smile_point.main([*cmd, "--device", device]) == 0
        for v in json.loads(report.read_text())["videos"]:
            expected = tested[v["name"][: -len(".npy")]]["probability"]
            assert v["probability"] == pytest.approx(expected, abs=0.02)


def test_bf16_only_on_gpus_with_bf16_cores(monkeypatch):
    """Older GPUs (V100, T4: compute capability 7.x) emulate bf16 more slowly than float32: they
    train in float32 (checked with the CUDA query patched)."""
    import training.evaluate as evaluate

    cfg = load_config(None)
    for capability, amp in (((7, 5), False), ((8, 0), True), ((9, 0), True)):
        evaluate._bf16_cores.cache_clear()
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d, c=capability: c)
        assert evaluate.uses_amp(cfg, torch.device("cuda:0")) is amp
    cfg.train.amp = False
    assert not evaluate.uses_amp(cfg, torch.device("cuda:0"))
    assert not evaluate.uses_amp(load_config(None), torch.device("cpu"))
    evaluate._bf16_cores.cache_clear()
