"""The benchmark scripts: sizes they cannot run are a one-line usage error (they printed
tracebacks: a fold error, StopIteration, ZeroDivisionError); what they print."""

from __future__ import annotations

import pytest
import torch

from benchmarks import dmarker_bench, interval_coverage, loader_bench, model_bench


@pytest.mark.parametrize(
    ("main", "args", "message"),
    [
        (loader_bench.main, ["--videos", "4"], "--videos: at least 8"),
        (loader_bench.main, ["--batches", "0"], "--batches: at least 1"),
        (loader_bench.main, ["--workers", "0", "-1"], "--workers: 0 (in this process) or more"),
        (dmarker_bench.main, ["--videos", "0"], "--videos: at least 1"),
        (interval_coverage.main, ["--subjects", "9"], "--subjects: at least 10"),
    ],
)
def test_unrunnable_sizes_are_usage_errors(main, args, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    assert f"error: {message}" in capsys.readouterr().err.splitlines()[-1]


def test_model_bench_times_batch_2_once(capsys):
    """--batch 2 is the published batch of 2 clips: its forward line is printed once."""
    small = ["point_encoder=linear", "dim=16", "depth=1", "temporal_depth=1", "mlp_dim=16"]
    args = ["--batch", "2", "--frames", "2", "--landmarks", "68", "--threads", "1"]
    threads = torch.get_num_threads()  # the benchmark sets it for the whole process
    try:
        model_bench.main(
            [*args, "--repeats", "1", "--default-malloc", *(f"--set={s}" for s in small)]
        )
    finally:
        torch.set_num_threads(threads)  # later tests compare runs in this process and others
    out = capsys.readouterr().out
    assert out.count("batch 2 x 2 frames x 68 landmarks") == 1 and "(published: ~12 s)" in out


def test_interval_coverage_prints_a_row_per_case_and_size(capsys):
    interval_coverage.main(["--sets", "3", "--subjects", "10", "12"])
    rows = capsys.readouterr().out.splitlines()[2:]
    cases = len(interval_coverage.ACCURACIES) + len(interval_coverage.RECALLED)
    assert len(rows) == 2 * cases
    shares = [float(x) for row in rows for x in row.strip("| ").split(" | ")[-2:]]
    assert all(round(3 * share, 2) in (0, 1, 2, 3) for share in shares)  # of 3 sets
