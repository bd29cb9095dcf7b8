"""One writer at a time (data.claim): a fold of a run and a demo folder are claimed by a lock
held while its job lives; a second claim is refused by name."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_run import tiny_config

import smile_point
from data.claim import claimed, claimed_all, held
from data.folds import GeneratedFolds
from training import cross_validation
from training.config import load_config, save_config

HOLD = """
import sys, time
from pathlib import Path
from data.claim import claimed
with claimed(Path(sys.argv[1]), "fold 1 of run"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_claim_is_exclusive_while_its_job_lives_and_no_longer(tmp_path, repo_root):
    """The lock is the kernel's (flock): held by a live job, whatever its pid or host; gone with
    it however it ended (SIGKILL too), so a lock file left on disk stops nobody."""
    lock = tmp_path / "run" / ".fold_01.lock"
    with claimed(lock, "fold 1 of run"):
        owner = json.loads(lock.read_text())
        assert owner["host"] == socket.gethostname() and owner["pid"] == os.getpid()
        with pytest.raises(ValueError) as e:  # a second claim, even in this process
            with claimed(lock, "fold 1 of run"):
                pass
        assert str(e.value) == (
            f"fold 1 of run is being written by pid {os.getpid()} on {owner['host']} since "
            f"{owner['started']} ({lock}); wait for that job to end"
        )
    assert lock.exists() and not held(lock)  # the file stays, the lock is given back
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], cwd=repo_root,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(ValueError, match=rf"being written by pid {holder.pid} on "):
            with claimed(lock, "fold 1 of run"):
                pass
    finally:
        holder.kill()  # SIGKILL: no finally of its own runs
        holder.wait()
    assert held(lock) is False  # its file left on disk, held by nobody
    with claimed(lock, "fold 1 of run"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    lock.write_text("")  # a record cut short: a file, no lock
    with claimed(lock, "fold 1 of run"):
        pass
    first = tmp_path / "a.lock"
    with claimed(lock, "b"), pytest.raises(ValueError):  # the second is held: the first given back
        with claimed_all([(first, "a"), (lock, "b")]):
            pass
    assert not held(first)


def test_a_lock_ends_with_its_job_not_with_its_forked_children(tmp_path):
    """DataLoader workers are forked while the fold's lock is held: their copies of its
    descriptor kept the lock for seconds after the job was killed (until they noticed)."""
    lock = tmp_path / ".fold_01.lock"
    read, write = os.pipe()
    with claimed(lock, "fold 1 of run"):
        child = os.fork()
        if child == 0:  # a worker outliving its parent a while, then leaving without unwinding
            os.write(write, b"started")
            time.sleep(3)
            os._exit(0)
        assert os.read(read, 7) == b"started" and held(lock)
    assert not held(lock)  # given back at once, the child still running
    os.waitpid(child, 0)


def test_a_file_system_without_locks_is_warned_not_refused(tmp_path, monkeypatch):
    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.warns(UserWarning, match="takes no file locks .No locks available.; parallel jobs"):
        with claimed(tmp_path / ".fold_01.lock", "fold 1 of run"):
            pass


def test_a_fold_another_job_is_training_is_refused(tmp_path, demo_root, capsys):
    """Two jobs started together on one fold (a requeued cluster job beside its first attempt,
    a sweep sharing --out) passed every check until a checkpoint existed, then both wrote it;
    another fold of the run joins only with the config of the job training it."""
    cfg = str(tiny_config(tmp_path, demo_root, epochs=1))
    out = tmp_path / "run"
    with claimed(out / ".fold_02.lock", "fold 2 of run"):  # this process stands for the other job
        save_config(load_config(Path(cfg)), out / "config.yaml")  # which it saved on starting
        assert smile_point.main(["--config", cfg, "--fold", "2", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"fold 2 of {out} is being written by pid" in err and len(err.splitlines()) == 1
        assert not (out / "fold_02").exists()  # nothing written
        other = ["--config", cfg, "--fold", "1", "--out", str(out), "--lr", "0.01"]
        assert smile_point.main(other) == 2  # no fold finished yet: the job's config.yaml says
        assert "was started with another config (train.lr" in capsys.readouterr().err
        assert not (out / "fold_01").exists()
        assert smile_point.main(["--config", cfg, "--fold", "1", "--out", str(out)]) == 0
        assert smile_point.main(["--config", cfg, "--fold", "all", "--out", str(out),
                                 "--resume"]) == 2  # fmt: skip
        assert not (out / "fold_03").exists()  # refused before fold 1 was claimed and kept
    (out / ".fold_03.lock").write_text("{}")  # a killed job's file: no lock
    assert smile_point.main(["--config", cfg, "--fold", "all", "--out", str(out), "--resume"]) == 0
    assert (out / "results.json").exists()
    assert not any(held(f) for f in out.glob(".*.lock"))


def test_a_run_another_job_started_meanwhile_is_checked_again_once_held(
    tmp_path, demo_root, monkeypatch, capsys
):
    """The checks ran before the locks were taken: a job of another config that finished a fold
    of the run in between makes it a started run, which this config must not join."""
    cfg = str(tiny_config(tmp_path, demo_root, epochs=1))
    out = tmp_path / "run"
    real = cross_validation.claimed  # the run's config lock, taken before the folds' locks

    def after_another_job(*args, **kwargs):
        monkeypatch.setattr(cross_validation, "claimed", real)
        other = ["--config", cfg, "--epochs", "2", "--fold", "2", "--out", str(out)]
        assert smile_point.main(other) == 0
        capsys.readouterr()
        return real(*args, **kwargs)

    monkeypatch.setattr(cross_validation, "claimed", after_another_job)
    assert smile_point.main(["--config", cfg, "--fold", "1", "--out", str(out)]) == 2
    assert "was started with another config (train.epochs" in capsys.readouterr().err
    assert not (out / "fold_01").exists()


def test_a_run_refused_for_another_runs_folds_writes_no_config(
    tmp_path, demo_root, monkeypatch, capsys
):
    """Folds generated by another run meanwhile refuse this one: before anything of it is
    written (its config.yaml used to replace the run's first)."""
    root = tmp_path / "nofolds"
    root.mkdir()
    for item in demo_root.iterdir():
        if item.name != "labels":  # folds are generated
            (root / item.name).symlink_to(item)

    def theirs_first(self, stacklevel=1):
        raise ValueError(f"{self.folds_dir}: another run generated other folds there meanwhile")

    monkeypatch.setattr(GeneratedFolds, "save", theirs_first)
    cfg = str(tiny_config(tmp_path, root, epochs=1))
    out = tmp_path / "run"
    assert smile_point.main(["--config", cfg, "--fold", "1", "--out", str(out)]) == 2
    assert "another run generated other folds there meanwhile" in capsys.readouterr().err
    assert not (out / "config.yaml").exists()
