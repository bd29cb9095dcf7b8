"""CPU allocator setting that makes training on the CPU markedly faster (glibc only)."""

from __future__ import annotations

import ctypes
import sys


def reuse_freed_memory() -> bool:
    """Keep freed memory in the heap for reuse: no mmap for large blocks, no trimming.

    PyTorch's CPU allocator does not cache; with glibc's defaults every large tensor is a fresh
    mapping whose page faults cost about as much as the arithmetic on it (published-size
    DeepMarkerNet step on 2 cores: 9.3 s -> 5.9 s). The process keeps its peak memory until it
    exits. Returns False where unsupported (non-glibc systems).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, -1))
