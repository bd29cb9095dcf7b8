"""One writer at a time (data.claim): a fold of a run and a demo folder are claimed by a lock
file; a live owner's claim is refused by name, a killed owner's taken over."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
from tiny_run import tiny_config

import smile_point
from data.claim import claimed, claimed_all


def dead_pid() -> int:
    """The pid of a process that has ended."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return int(proc.stdout)


def lock_of(pid: int, host: str | None = None) -> str:
    host = host or socket.gethostname()
    return json.dumps({"pid": pid, "host": host, "started": "2026-12-07 10:00:00"})


def test_a_claim_is_exclusive_released_and_taken_over_from_a_killed_owner(tmp_path):
    lock = tmp_path / "run" / ".fold_01.lock"
    with claimed(lock, "fold 1 of run"):
        owner = json.loads(lock.read_text())
        assert owner["host"] == socket.gethostname() and owner["pid"] > 0
        with pytest.raises(ValueError, match=r"fold 1 of run is being written by pid \d+ on "):
            with claimed(lock, "fold 1 of run"):
                pass
    assert not lock.exists()
    lock.write_text(lock_of(dead_pid()))  # a job killed with SIGKILL left it
    with claimed(lock, "fold 1 of run"):
        assert json.loads(lock.read_text())["started"] != "2026-12-07 10:00:00"
    lock.write_text(lock_of(dead_pid(), host="node17"))  # another host: its pid means nothing here
    with pytest.raises(ValueError) as e:
        with claimed(lock, "fold 1 of run"):
            pass
    assert str(e.value) == (
        f"fold 1 of run is being written by pid {json.loads(lock.read_text())['pid']} on node17 "
        f"since 2026-12-07 10:00:00 ({lock}); wait for that job, or, if it is no longer running, "
        f"delete {lock}"
    )
    lock.write_text("")  # being written by its owner, or cut short: held all the same
    with pytest.raises(ValueError, match="being written by another job"):
        with claimed(lock, "fold 1 of run"):
            pass
    first = tmp_path / "a.lock"
    with pytest.raises(ValueError):  # the second is held: the first is given back
        with claimed_all([(first, "a"), (lock, "b")]):
            pass
    assert not first.exists()


def test_a_fold_another_job_is_training_is_refused(tmp_path, demo_root, capsys):
    """Two jobs started together on one fold (a requeued cluster job beside its first attempt,
    a sweep sharing --out) passed every check until a checkpoint existed, then both wrote it."""
    cfg = str(tiny_config(tmp_path, demo_root, epochs=1))
    out = tmp_path / "run"
    with claimed(out / ".fold_02.lock", "fold 2 of run"):  # this process stands for the other job
        assert smile_point.main(["--config", cfg, "--fold", "2", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"fold 2 of {out} is being written by pid" in err and len(err.splitlines()) == 1
        assert not (out / "fold_02").exists()  # nothing written
        assert smile_point.main(["--config", cfg, "--fold", "1", "--out", str(out)]) == 0
        assert smile_point.main(["--config", cfg, "--fold", "all", "--out", str(out),
                                 "--resume"]) == 2  # fmt: skip
        assert not (out / "fold_03").exists()  # refused before fold 1 was claimed and kept
    (out / ".fold_03.lock").write_text(lock_of(dead_pid()))  # a killed job's
    assert smile_point.main(["--config", cfg, "--fold", "all", "--out", str(out), "--resume"]) == 0
    assert (out / "results.json").exists() and not list(out.glob(".*.lock"))
