"""One writer at a time: a job claims what it writes (a fold of a run, a demo folder) by holding an
exclusive lock (``fcntl.flock``) on a lock file, which also records its pid, host and start time
for the refusal's message. Two jobs started at once on one fold (a requeued cluster job beside
its first attempt, a sweep sharing an ``--out``) would otherwise write one folder with two
configs.

The kernel releases the lock when its process ends, however it ends (SIGKILL, a container's OOM
kill), so no pid has to be judged alive: a reused pid, another PID namespace or two jobs taking
over one stale lock at once cannot fool it. Forked children (DataLoader workers) close their
copies of the lock's descriptor, so the lock ends with its job, not with the last of them. Lock
files stay on disk: a file nobody holds stops nobody, and one never removed cannot be replaced
by a new file that a second job locks beside the first.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

#: flock's errors for a lock another job holds; others mean no locks on this file system.
HELD = (errno.EACCES, errno.EAGAIN, errno.EWOULDBLOCK)

#: Descriptors of the locks this process holds, closed in its forked children.
_HOLDING: set[int] = set()


def _close_in_child() -> None:
    for fd in _HOLDING:  # the child's copies only: the parent's lock stays
        os.close(fd)
    _HOLDING.clear()


os.register_at_fork(after_in_child=_close_in_child)


def _record(fd: int) -> str:
    """Who holds the lock file open at ``fd``, from its record."""
    try:
        owner = json.loads(os.pread(fd, 4096, 0))
        return f"pid {owner['pid']} on {owner['host']} since {owner['started']}"
    except (OSError, ValueError, KeyError, TypeError):  # being written
        return "another job"


def _lock(lock: Path, what: str, wait: bool) -> int | None:
    """An open descriptor of ``lock`` holding its exclusive lock (held by the open file, so a
    second claim in the same process is refused too), or None where the file system has no locks
    (warned). ValueError when another claim holds it."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        held = _record(fd) if e.errno in HELD else None
        os.close(fd)
        if held is None:
            warnings.warn(
                f"{lock}: this file system takes no file locks ({e.strerror}); parallel jobs on "
                f"{what} are not kept apart",
                stacklevel=5,
            )
            return None
        raise ValueError(
            f"{what} is being written by {held} ({lock}); wait for that job to end"
        ) from None
    return fd


@contextmanager
def claimed(lock: Path, what: str, wait: bool = False) -> Iterator[None]:
    """Hold the lock file ``lock`` while the block runs; ``what`` names the work in a refusal
    (ValueError: another job holds it), or, with ``wait``, wait for it (locks held briefly)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = _lock(lock, what, wait)
    if fd is None:
        yield
        return
    owner = os.getpid()
    _HOLDING.add(fd)
    try:
        me = {"pid": owner, "host": socket.gethostname()}
        me["started"] = time.strftime("%Y-%m-%d %H:%M:%S")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        yield
    finally:
        if os.getpid() == owner:  # not in a forked child, which closed its copy at the fork
            _HOLDING.discard(fd)
            os.close(fd)


def held(lock: Path) -> bool:
    """Whether a claim holds ``lock`` now (one of this process's too). It takes the lock for an
    instant where it is free, so a claim of ``lock`` at that instant would be refused: probe
    only under a lock that such claims also take (smile_point.py's run-level config lock)."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        return e.errno in HELD
    finally:
        os.close(fd)  # and with it the lock, where this took it
    return False


@contextmanager
def claimed_all(locks: list[tuple[Path, str]]) -> Iterator[None]:
    """:func:`claimed` for every (lock, what) in order; a refusal releases those taken."""
    with ExitStack() as stack:
        for lock, what in locks:
            stack.enter_context(claimed(lock, what))
        yield
