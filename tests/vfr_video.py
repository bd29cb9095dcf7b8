"""MP4 files with rewritten headers for the extraction tests: OpenCV writes a constant-rate file,
then its boxes are edited. Variable frame rate: the sample timing table (the ``stts`` box) is
rewritten so the first frames last longer; the rewritten table is larger, which is safe only
because OpenCV puts the ``moov`` box after the media data, so no sample offset moves. Rotation:
the track's display matrix (``tkhd``) says "turn 90 degrees clockwise", as phones store portrait
video."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

#: Boxes that hold other boxes on the way from ``moov`` to ``stts``.
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}


def write_vfr_mp4(path: Path, frames: list[np.ndarray], fps: float, slow: int) -> None:
    """Write RGB ``frames`` at ``fps``, then make the first ``slow`` frames last twice as long
    (2 / fps each) and the others 1 / fps (``slow`` = 0: a constant-rate file)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for rgb in frames:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    if not slow:
        return
    data = path.read_bytes()
    stretch = (len(frames) + slow) / len(frames)  # new duration / old duration
    path.write_bytes(_rewrite(data, slow, stretch))


def write_rotated_mp4(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """Write upright RGB ``frames`` as a phone does: coded turned 90 degrees counter-clockwise
    (portrait stored as landscape), with a display matrix that turns them back."""
    write_vfr_mp4(path, [np.ascontiguousarray(np.rot90(f)) for f in frames], fps, slow=0)
    path.write_bytes(_rotate(path.read_bytes()))


def _rotate(buf: bytes) -> bytes:
    out, off = b"", 0
    while off < len(buf):
        size, kind = struct.unpack(">I4s", buf[off : off + 8])
        body = bytearray(buf[off + 8 : off + size])
        if kind in _CONTAINERS:
            body = bytearray(_rotate(bytes(body)))
        elif kind == b"tkhd":  # version 0: the 3x3 matrix (16.16 / 2.30 fixed point) at byte 40
            body[40:76] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
        out += struct.pack(">I4s", 8 + len(body), kind) + bytes(body)
        off += size
    return out


def _rewrite(buf: bytes, slow: int, stretch: float) -> bytes:
    out, off = b"", 0
    while off < len(buf):
        size, kind = struct.unpack(">I4s", buf[off : off + 8])
        body = bytearray(buf[off + 8 : off + size])
        if kind in _CONTAINERS:
            body = bytearray(_rewrite(bytes(body), slow, stretch))
        elif kind == b"stts":  # version/flags, entry count, (sample count, sample delta)...
            (count, delta) = struct.unpack(">II", body[8:16])
            body = body[:4] + struct.pack(">IIIII", 2, slow, 2 * delta, count - slow, delta)
        else:  # durations of the movie, the track and its edit (version 0 layouts)
            field = {b"mvhd": 16, b"tkhd": 20, b"mdhd": 16, b"elst": 8}.get(kind)
            if field is not None:
                (duration,) = struct.unpack(">I", body[field : field + 4])
                body[field : field + 4] = struct.pack(">I", round(duration * stretch))
        out += struct.pack(">I4s", 8 + len(body), kind) + bytes(body)
        off += size
    return out
