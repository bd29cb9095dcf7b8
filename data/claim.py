"""One writer at a time: a job claims what it writes (a fold of a run, a demo folder) with a lock
file made exclusively (``O_CREAT | O_EXCL``), holding its pid, host and start time, and removed
when the job ends. Two jobs started at once on one fold (a requeued cluster job beside its first
attempt, a sweep sharing an ``--out``) would otherwise write one folder with two configs.

A lock whose owner is gone from this host (killed with SIGKILL) is taken over; one held by a live
process, or by a process of another host (whose state cannot be seen from here), is refused,
naming the owner and the file to delete if that job is gone.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _owner(lock: Path) -> dict | None:
    """The lock's record, or None where it is unreadable (being written, or cut short)."""
    try:
        owner = json.loads(lock.read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) and {"pid", "host", "started"} <= owner.keys() else None


@contextmanager
def claimed(lock: Path, what: str) -> Iterator[None]:
    """Hold the lock file ``lock`` while the block runs; ``what`` names the work in a refusal
    (ValueError: another job holds it)."""
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            break
        except FileExistsError:
            owner = _owner(lock)
            if owner and owner["host"] == me["host"] and not _alive(owner["pid"]):
                lock.unlink(missing_ok=True)  # its job was killed: take it over
                continue
            held = (
                f"pid {owner['pid']} on {owner['host']} since {owner['started']}"
                if owner
                else "another job"
            )
            raise ValueError(
                f"{what} is being written by {held} ({lock}); wait for that job, or, if it is "
                f"no longer running, delete {lock}"
            ) from None
    with os.fdopen(fd, "w") as f:
        json.dump(me, f)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


@contextmanager
def claimed_all(locks: list[tuple[Path, str]]) -> Iterator[None]:
    """:func:`claimed` for every (lock, what) in order; a refusal releases those taken."""
    with ExitStack() as stack:
        for lock, what in locks:
            stack.enter_context(claimed(lock, what))
        yield
