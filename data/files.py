"""Files written whole and read back with errors that name them: atomic writes (temp file +
rename, so a kill loses nothing), JSON in one format, and file names that are not valid UTF-8
(printed and written as given)."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

UMASK = os.umask(0)  # the process umask (read by setting it; set back at once)
os.umask(UMASK)


def temp_prefix(path: str | os.PathLike) -> str:
    """Start of the temp names that write ``path``: ``.<16 hex digits of a hash of its name>.``
    (a random part and ``.tmp`` follow): 30 bytes in all for any name, so every name that the
    file system takes can be written."""
    return f".{hashlib.sha256(os.fsencode(Path(path).name)).hexdigest()[:16]}."


def check_folder(path: str | os.PathLike, flag: str) -> None:
    """Raise ValueError when ``path``, a folder to write into, is empty (an unset shell variable
    would make it the current folder), a file, or lies below a file."""
    if not str(path).strip():
        raise ValueError(f"{flag} {str(path)!r}: empty; give a folder")
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                what = "is a file" if p == path else f"lies below the file {p}"
                raise ValueError(f"{flag} {path}: {what}; it must be a folder (new or existing)")
            return


class WriteError(OSError):
    """A file could not be written (a full disk, say); the message names it and the fix."""


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp)`` on a temp file in the target folder, then rename it over ``path``.

    An OSError (of ``write``, or making the folder, the temp file or the rename) becomes a
    :class:`WriteError` naming ``path``, not the temp file (numpy's own message on a full disk is
    "103248 requested and 48096 written")."""
    path, tmp = Path(path), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        write(tmp)
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except WriteError:
        raise
    except OSError as e:  # its folder, the temp file, the write or the rename
        raise _write_error(path, "not written", e) from e
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return path


def check_writable(path: str | os.PathLike) -> None:
    """:class:`WriteError` now, before the work whose result goes to ``path``, when ``path``
    cannot be written: a temp file is created and removed in its folder, or, where that is still
    to be made, in the folder it would be made in (nothing is left behind)."""
    path = Path(path)
    folder = next(p for p in (path.parent, *path.parent.parents) if p.exists())
    try:
        fd, name = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise _write_error(path, "cannot be written", e) from e


def _write_error(path: Path, what: str, e: OSError) -> WriteError:
    return WriteError(
        f"{path}: {what} ({e.strerror or e}); free space on its disk, or check that its folder "
        "can be written and takes a name that long"
    )


def atomic_write_dir(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Make a folder appear whole: ``write(tmp)`` fills a temp sibling folder that is renamed to
    ``path`` (replacing it when empty). Into a folder that holds other files the new entries are
    moved one by one, in name order: only that case is not atomic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~UMASK)  # mkdtemp makes 0700; give the folder the usual mode
    try:
        write(tmp)
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        if not path.exists():
            os.replace(tmp, path)
            return path
        for entry in sorted(tmp.iterdir()):
            os.replace(entry, path / entry.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """``np.save`` that never leaves a partial file behind (temp file + rename)."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    return atomic_write(path, write)


def atomic_save_npz(path: str | os.PathLike, **arrays: Any) -> Path:
    """``np.savez`` (uncompressed) written atomically; ``path`` keeps its name as given."""

    def write(tmp: Path) -> None:
        buffer = io.BytesIO()  # np.savez leaves its zip open when a write fails
        np.savez(buffer, **arrays)
        tmp.write_bytes(buffer.getbuffer())

    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


#: A lone surrogate: what a file name that is not valid UTF-8 holds after ``os.fsdecode``.
_SURROGATE = re.compile("[\ud800-\udfff]")


def is_valid_unicode(name: str) -> bool:
    """Whether a name holds no lone surrogate (it was valid UTF-8 on disk)."""
    return _SURROGATE.search(name) is None


def print_names_as_given() -> None:
    """Let standard output print file names that are not valid UTF-8 as their bytes, as ``ls``
    does (``surrogateescape``, the C locale's default), instead of failing mid-report."""
    if reconfigure := getattr(sys.stdout, "reconfigure", None):
        reconfigure(errors="surrogateescape")


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt


def run_cli(main: Callable[[], int]) -> None:
    """``sys.exit(main())``; a reader that stopped early (``... | head``) ends it with status 1
    and no BrokenPipeError traceback, as the Python docs advise for SIGPIPE. SIGTERM (``kill``,
    ``timeout``, a cluster's ``scancel`` or preemption) stops it as Ctrl-C does: the command
    says so, and what it holds is given back (temp files, fold and folder locks); a command
    without words of its own for that ends with "interrupted" and status 130."""
    signal.signal(signal.SIGTERM, _stop)
    try:
        code = main()
        sys.stdout.flush()  # the flush at exit would fail outside this handler
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        code = 130
    sys.exit(code)


def _strict(obj: Any) -> Any:
    """``obj`` with every float that is NaN or infinite replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    return obj


def json_text(obj: Any) -> str:
    """The JSON files' format: indented, UTF-8 as is, a final newline; strict JSON, which jq, R
    and JavaScript read: a NaN or infinite float (an undefined metric) is written as null. Lone
    surrogates (file names that are not valid UTF-8) are written as ``\\u`` escapes, which UTF-8
    can hold and ``json.loads`` reads back as the same name."""
    text = json.dumps(_strict(obj), indent=2, ensure_ascii=False, allow_nan=False)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", text) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write JSON (indented, UTF-8) atomically."""
    return atomic_write_text(path, json_text(obj))


def read_json(path: str | os.PathLike, fix: str, keys: tuple[str, ...] = ()) -> Any:
    """The JSON content of ``path``; a file that is not valid JSON is a ValueError naming it and
    ``fix`` (what to do about it), and so, given ``keys``, is one that is not an object holding
    them (valid JSON of another kind)."""
    path = Path(path)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e}); {fix}") from e
    missing = [k for k in keys if not isinstance(content, dict) or k not in content]
    if missing:
        raise ValueError(
            f"{path}: not the expected file, a JSON object with {', '.join(keys)} "
            f"({', '.join(missing)} missing); {fix}"
        )
    return content
