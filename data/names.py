"""Video names and landmark files: Unicode-normalised names, names with or without their video
extension, and the landmark file each name means."""

from __future__ import annotations

import unicodedata
from pathlib import Path

from data.io import landmark_files
from data.video import VIDEO_EXTS


def nfc(name: str) -> str:
    """Unicode NFC form (file names from macOS come decomposed)."""
    return unicodedata.normalize("NFC", name)


def strip_video_ext(name: str) -> str:
    """``"a b.mp4"`` -> ``"a b"``; names without a known video extension are returned unchanged."""
    stem, dot, ext = name.rpartition(".")
    return stem if dot and f".{ext.lower()}" in VIDEO_EXTS else name


def landmark_index(landmarks_dir: str | Path) -> dict[str, Path | None]:
    """Keys under which each ``<dir>/<name>.npy`` can be found: its full stem (``x.mp4``) and the
    stem without video extension (``x``). A full stem always wins; a stripped key two files claim
    maps to None (ambiguous)."""
    paths = landmark_files(landmarks_dir)
    stems = {nfc(p.name[: -len(".npy")]): p for p in paths}
    index: dict[str, Path | None] = {}
    for stem, path in stems.items():
        key = strip_video_ext(stem)
        index[key] = None if key in index else path
    index.update(stems)
    return index


def match_names(names, index: dict[str, Path | None]) -> tuple[dict[str, Path], list[str]]:
    """Landmark file of each name (with or without video extension, spaces kept); (found, missing).

    Raises ValueError when a name fits two files (e.g. ``x.mp4.npy`` and ``x.avi.npy``).
    """
    found, missing = {}, []
    for name in names:
        key = nfc(name)
        if key not in index:
            missing.append(name)
        elif index[key] is None:
            files = sorted(str(p) for k, p in index.items() if p and strip_video_ext(k) == key)
            raise ValueError(
                f"{name!r} matches several landmark files ({', '.join(files)}); name it with its "
                "video extension in the fold files or labels.csv"
            )
        else:
            found[name] = index[key]
    return found, missing
