"""The benchmark scripts refuse sizes they cannot run with a one-line usage error (they printed
tracebacks: a fold error, StopIteration, ZeroDivisionError)."""

from __future__ import annotations

import pytest

from benchmarks import dmarker_bench, loader_bench


@pytest.mark.parametrize(
    ("main", "args", "message"),
    [
        (loader_bench.main, ["--videos", "4"], "--videos: at least 8"),
        (loader_bench.main, ["--batches", "0"], "--batches: at least 1"),
        (loader_bench.main, ["--workers", "0", "-1"], "--workers: 0 (in this process) or more"),
        (dmarker_bench.main, ["--videos", "0"], "--videos: at least 1"),
    ],
)
def test_unrunnable_sizes_are_usage_errors(main, args, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    assert f"error: {message}" in capsys.readouterr().err.splitlines()[-1]
