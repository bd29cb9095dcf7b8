"""Where the videos of a dataset are: its published layout -> (source, output name) pairs.

Output names follow the published landmark files: ``<video file name>`` (UvA-NEMO, BBC, any
video), ``<session id>`` (MMI), ``<clip folder>`` (SPOS and other frame folders).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from data.video import VIDEO_EXTS, is_frame_folder, natural_key

DATASETS = ("uva", "bbc", "mmi", "spos", "folder")
OUTPUT_DIRNAME = "npy"


def _child(root: Path, name: str) -> Path | None:
    """The sub-folder of ``root`` called ``name``, compared case-insensitively."""
    if not root.is_dir():
        return None
    for p in sorted(root.iterdir()):
        if p.is_dir() and p.name.lower() == name.lower():
            return p
    return None


def _videos(folder: Path, exts: tuple[str, ...]) -> list[Path]:
    found = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in exts and not p.name.startswith(".") and p.is_file()
    ]  # hidden files: macOS "._x.mp4" resource forks are not videos
    return sorted(found, key=lambda p: natural_key(p.name))


def _video_entries(folder: Path, exts: tuple[str, ...]) -> list[tuple]:
    """(video, output name) of the videos in ``folder``, and (link, name, error) of each link to
    a video that is gone, so that a batch reports it failed instead of passing over it."""
    entries: list[tuple] = [(p, p.name) for p in _videos(folder, exts)]
    for p in sorted(folder.iterdir(), key=lambda p: natural_key(p.name)):
        if p.suffix.lower() in exts and p.is_symlink() and not p.exists():
            gone = f"{p}: a link to {os.readlink(p)}, which does not exist; fix or remove the link"
            entries.append((p, p.name, gone))
    return entries


def _subdirs(folder: Path) -> list[Path]:
    found = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(found, key=lambda p: natural_key(p.name))


#: Folders that file systems and archivers add: Synology thumbnails (JPEGs that would pass for
#: a clip's frames), macOS zip resource forks, Windows' recycle bin and volume data.
SYSTEM_DIRS = frozenset({"@eaDir", "__MACOSX", "$RECYCLE.BIN", "System Volume Information"})


def _skipped(name: str) -> bool:
    """A folder that walks leave out: hidden, a system folder (:data:`SYSTEM_DIRS`), or named
    like an output folder (``npy``)."""
    return name.startswith(".") or name in SYSTEM_DIRS or name == OUTPUT_DIRNAME


def _folders(root: Path, skip: Path | None = None) -> Iterator[Path]:
    """``root`` and every folder below it, in natural order; linked folders are followed, each
    real folder once (no link loops); the folders of :func:`_skipped` and ``skip`` left out.
    """
    seen = {Path(root).resolve(), *([skip.resolve()] if skip else [])}

    def new(folder: Path) -> bool:
        real = folder.resolve()
        if real in seen:
            return False
        seen.add(real)
        return True

    for folder, dirs, _ in os.walk(root, followlinks=True):
        folder = Path(folder)
        dirs[:] = [d for d in sorted(dirs, key=natural_key) if not _skipped(d) and new(folder / d)]
        yield folder


def walked(root: Path, folder: Path) -> bool:
    """Whether a folder walk of ``root`` reaches ``folder`` (which need not exist yet): it lies
    in ``root`` and no folder on the way there is left out (:func:`_skipped`)."""
    root, folder = Path(root).resolve(), Path(folder).resolve()
    if folder != root and root not in folder.parents:
        return False
    return not any(_skipped(part) for part in folder.relative_to(root).parts)


def is_clip_input(path: Path) -> bool:
    """A folder that is one clip's frames: a frame folder with no video in any folder below it
    (``ds/overview.jpg`` beside ``ds/posed/*.mp4`` is a stray image in a dataset)."""
    return is_frame_folder(path) and not any(_videos(f, tuple(VIDEO_EXTS)) for f in _folders(path))


def _walk(root: Path, output: Path) -> list[tuple]:
    """Every video file and clip folder (:func:`is_clip_input`) in or below ``root``, linked
    folders included (see :func:`_folders`; ``output`` left out), as (source, output name);
    broken links to videos as (link, name, error)."""
    found = []
    for folder in _folders(root, skip=output):
        if is_clip_input(folder):
            found.append((folder, folder.resolve().name))  # a linked clip keeps its own name
        found += _video_entries(folder, tuple(VIDEO_EXTS))
    return found


def _layout_error(kind: str, root: Path, layout: str) -> FileNotFoundError:
    if kind == "folder":  # the default: any layout
        return FileNotFoundError(f"{root}: no videos found; expected {layout}")
    return FileNotFoundError(
        f"{root}: no {kind} videos found; expected {layout} (point --dataset {kind} at the "
        "dataset root)"
    )


def bbc_folders(root: Path) -> list[tuple[Path, int]]:
    """BBC's label folders (``Genuine`` = 1, ``posed`` = 0, any case) with their labels, under
    ``root`` or else under ``root/videos``, as UvA-NEMO's videos may be."""
    for base in (root, _child(root, "videos")):
        found = [
            (f, label)
            for sub, label in (("Genuine", 1), ("posed", 0))
            if base and (f := _child(base, sub))
        ]
        if found:
            return found
    return []


def spos_clips(root: Path) -> list[tuple[Path, int]]:
    """SPOS's clip folders under ``{posed,spontaneous}/happy`` (any case), with their labels (0,
    1); hidden and system folders are not clips."""
    found = []
    for sub, label in (("posed", 0), ("spontaneous", 1)):
        happy = _child(_child(root, sub) or root / sub, "happy")
        clips = _subdirs(happy) if happy else []
        found += [(c, label) for c in clips if c.name not in SYSTEM_DIRS]
    return found


def missing_label_note(kind: str, root: str | os.PathLike) -> str | None:
    """For BBC and SPOS, whose folders give the labels: a note when the videos of one label are
    found and the other label's folder is not (misspelt, or elsewhere), else None."""
    root = Path(root)
    if kind == "bbc":
        found = {label for _, label in bbc_folders(root)}
        names, where = {1: "Genuine", 0: "posed"}, "{Genuine,posed}/"
    elif kind == "spos":
        found = {label for _, label in spos_clips(root)}
        names, where = {1: "spontaneous", 0: "posed"}, "{posed,spontaneous}/happy/<clip>/"
    else:
        return None
    if len(found) != 1:
        return None
    (have,) = found
    return (
        f"{root}: no {names[1 - have]} videos, only {names[have]} ones (expected {where}): "
        f"only those are extracted; name the other label's folder {names[1 - have]}"
    )


def dataset_sources(kind: str, root: str | os.PathLike, output: Path) -> list[tuple]:
    """(source, output name[, error]) for every video of a dataset laid out as published."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder (the {kind} dataset root)")
    if kind == "uva":
        folder = _child(root, "videos") or root
        found = _video_entries(folder, (".mp4",))
        layout = "<root>/videos/*.mp4 or <root>/*.mp4"
    elif kind == "bbc":
        found = [e for f, _ in bbc_folders(root) for e in _video_entries(f, (".mp4",))]
        layout = "<root>/{Genuine,posed}/*.mp4 or <root>/videos/{Genuine,posed}/*.mp4"
    elif kind == "mmi":
        sessions = _child(root, "Sessions")
        found = []
        for s in _subdirs(sessions) if sessions else []:
            avis = _videos(s, (".avi",))
            if len(avis) == 1:
                found.append((avis[0], s.name))
            elif avis:  # sessions with only still images have no .avi and are not videos
                names = ", ".join(p.name for p in avis)
                found.append((s, s.name, f"{s}: several .avi files ({names}); keep one"))
        layout = "<root>/Sessions/<id>/*.avi"
    elif kind == "spos":
        found = [(c, c.name) for c, _ in spos_clips(root) if is_frame_folder(c)]
        layout = "<root>/{posed,spontaneous}/happy/<clip>/*.bmp"
    elif kind == "folder":
        found = _walk(root, output)
        layout = "video files or frame-image folders anywhere below it"
    else:
        raise ValueError(f"unknown dataset {kind!r}: choose one of {', '.join(DATASETS)}")
    if not found:
        raise _layout_error(kind, root, layout)
    return found
