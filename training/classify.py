"""Classify new videos with trained checkpoints: P(spontaneous) per video.

A checkpoint is a fold's ``best.pt``; a run folder stands for every ``fold_NN/best.pt`` in it, and
their probabilities (and thresholds) are averaged: each fold's model was selected on its own
validation split and never saw its test fold, so together they use all the labelled subjects.

Inputs are landmark files (``.npy``, with the sidecar extract_landmarks.py writes) or video files,
whose landmarks are extracted here with the backend the checkpoint's landmark count implies
(478 -> mediapipe, 68 -> dlib); a folder stands for the videos and ``.npy`` files in it (a
video's own landmark file beside it is left out where the video can be extracted: see
:func:`list_inputs`). Windows,
frame rate and normalisation come from each checkpoint's config, exactly as its test fold was
scored. An input that cannot be read is reported and the others are still classified. The
checkpoints a run folder stands for, and their thresholds: :mod:`training.scorers`.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch

from data.clips import TestWindows, n_target_frames
from data.datasets import Video
from data.extraction import check_backend, extract_video, make_backend
from data.frame_info import frame_info
from data.io import check_whole_video, load_landmarks, to_isotropic
from data.normalize import fit_normalization
from data.smoothing import MIN_FRAMES
from data.video import IMAGE_EXTS, is_frame_folder, is_video, natural_key, open_source
from training.evaluate import clip_config, predict
from training.scorers import Scorer, find_checkpoints, load_scorer

#: Why and fix of a landmark file whose frame rate or size is unknown.
NO_RATE = (
    "sidecar missing or incomplete",
    "extract it with extract_landmarks.py, or classify the video itself",
)
#: Extraction backend for a checkpoint trained on landmarks of this many points.
BACKEND_FOR = {478: "mediapipe", 68: "dlib"}


@dataclass
class Verdict:
    """A classified input: mean probability over the checkpoints, their mean threshold, the call."""

    name: str
    source: str
    probability: float
    threshold: float
    spontaneous: bool
    per_checkpoint: dict[str, float]  # checkpoint path -> its probability
    n_frames: int
    fps: float
    face_frames: int | None  # None for landmark files without a face mask


def list_inputs(paths: list[str | Path], skip_extracted: bool = False) -> list[Path]:
    """Video files and ``.npy`` files: the paths given, a folder replaced by those in it; with
    ``skip_extracted``, less the landmark file ``x.mp4.npy`` of a video ``x.mp4`` beside it (the
    video is scored once, its landmarks extracted afresh: a stale or quick-run file cannot stand
    in for it)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir() and not is_frame_folder(p):
            inside = [
                q
                for q in p.iterdir()
                if (is_video(q) or q.suffix == ".npy") and not q.name.startswith(".")
            ]
            if skip_extracted:
                videos = {q.name for q in inside if is_video(q)}
                inside = [q for q in inside if not (q.suffix == ".npy" and q.stem in videos)]
            out += sorted(inside, key=lambda q: natural_key(q.name)) or [p]  # [p]: reported
        else:
            out.append(p)
    return out


class NewVideos:
    """Landmarks of unlabelled videos held in memory, with the interface :class:`TestWindows`
    reads from a dataset (``root``, ``videos``, ``landmarks(name)``); labels are -1."""

    def __init__(self) -> None:
        self.root = Path("classify")
        self.videos: dict[str, Video] = {}
        self._arrays: dict[str, np.ndarray] = {}

    def add(self, name: str, file: Path, landmarks: np.ndarray, meta: dict) -> None:
        """``landmarks`` (T, V, 3) as extraction writes them (x/W, y/H, z/W); ``meta`` with fps,
        width, height."""
        w, h = int(meta["width"]), int(meta["height"])
        self.videos[name] = Video(name, file, -1, name, float(meta["fps"]), w, h, len(landmarks))
        self._arrays[name] = to_isotropic(landmarks, w, h)

    def landmarks(self, name: str) -> np.ndarray:
        """(T, V, 3) float32 isotropic pixels."""
        return self._arrays[name]

    def remove(self, name: str) -> None:
        self.videos.pop(name, None)
        self._arrays.pop(name, None)


@cache
def _backend(name: str):
    """One extraction backend per name for the process (loading a face-mesh graph takes time)."""
    return make_backend(name)


def read_input(path: Path, scorer: Scorer) -> tuple[np.ndarray, dict, bool]:
    """Landmarks (T, V, 3) and their metadata (fps, width, height, face_found) of one input, and
    whether its frame rate or size is the training dataset's default (a file without sidecar).

    Raises ValueError / OSError with a one-line message naming the file and the fix.
    """
    if not path.exists():
        link = " (a link to nothing, or a loop of links)" if path.is_symlink() else ""
        raise FileNotFoundError(f"{path}: no such file{link}")
    if not (path.is_file() or path.is_dir()):  # a pipe or device: reading it would block
        raise ValueError(f"{path}: not a regular file or folder; give a video or a .npy file")
    if path.suffix == ".npy":
        landmarks, meta = load_landmarks(path)
        check_whole_video(path, meta)
        if meta and meta.get("face_found") and not any(meta["face_found"]):
            raise ValueError(
                f"{path}: no face in any of its {len(landmarks)} frames (its sidecar's "
                "face_found); give a video that shows a face"
            )
        info = frame_info(path, [meta], scorer.cfg.data.dataset, *NO_RATE)
        assumed = any(not (meta or {}).get(key) for key in info)  # a published file of the kind
        meta = {**(meta or {}), **info}
    elif is_video(path):
        backend = BACKEND_FOR.get(scorer.n_landmarks)
        if backend is None:
            raise ValueError(
                f"{path}: the checkpoint was trained on {scorer.n_landmarks}-point landmarks, "
                "which no backend here extracts; extract them as for training and give the .npy"
            )
        ext = extract_video(open_source(path), _backend(backend))
        landmarks, meta, assumed = ext.landmarks, ext.meta, False
    elif is_frame_folder(path):
        raise ValueError(
            f"{path}: a frame folder has no frame rate; run extract_landmarks.py {path} "
            "--frame-fps F and classify the .npy"
        )
    elif path.is_dir():
        raise ValueError(
            f"{path}: no videos or .npy landmark files in this folder (its sub-folders are not "
            "searched: give them as inputs too)"
        )
    elif path.suffix.lower() in IMAGE_EXTS:
        raise ValueError(
            f"{path}: a still image; a smile's class is in its motion: give a video, or extract a "
            "folder of its frames with extract_landmarks.py --frame-fps F and give the .npy"
        )
    else:
        raise ValueError(
            f"{path}: not a video file or a .npy landmark file; give a video (.mp4, .avi, .mov, "
            "...) or the .npy extract_landmarks.py writes"
        )
    if len(landmarks) == 0:
        raise ValueError(f"{path}: no frames; re-extract the video")
    if landmarks.shape[1] != scorer.n_landmarks:
        raise ValueError(
            f"{path}: {landmarks.shape[1]} landmarks per frame, but {scorer.path} was trained on "
            f"{scorer.n_landmarks}; extract with the backend it was trained with"
        )
    return landmarks, meta, assumed


def check_length(path: Path, n_frames: int, fps: float, scorers: list[Scorer]) -> None:
    """ValueError when an input gives a checkpoint fewer than ``MIN_FRAMES`` frames at its frame
    rate: no motion to classify (a one-frame video would get a confident-looking call)."""
    rate = min(s.cfg.data.target_fps for s in scorers)
    if n_target_frames(n_frames, fps, rate) < MIN_FRAMES:
        raise ValueError(
            f"{path}: {n_frames} frame(s), {n_frames / fps:.2f} s: too short to hold a smile (the "
            f"model reads {rate:g} fps and needs {MIN_FRAMES} frames, "
            f"{(MIN_FRAMES - 1) / rate:.2f} s); give the whole video"
        )


def warn_assumed(videos: list[Video], kind: str) -> None:
    """One warning naming the landmark files that took ``kind``'s default rate or size, grouped
    by the values they ended with (a sidecar may have given some of them)."""
    groups: dict[str, list[str]] = {}
    for v in videos:
        groups.setdefault(f"{v.fps:g} fps, {v.width}x{v.height}", []).append(v.name)
    listed = "; ".join(
        f"{', '.join(names[:3])}{', ...' if len(names) > 3 else ''} at {values}"
        for values, names in groups.items()
    )
    warnings.warn(
        f"{len(videos)} landmark file(s) without a (complete) sidecar, completed with {kind}'s "
        f"defaults: {listed}; if that is wrong, classify their videos",
        stacklevel=3,
    )


def classify(
    inputs: list[str | Path], checkpoints: list[str | Path], device: torch.device
) -> tuple[list[Verdict], dict[str, str]]:
    """Score every input with every checkpoint found in ``checkpoints`` (files or run folders).

    Returns the verdicts (input order) and the failures {input: reason}.
    """
    scorers = [load_scorer(p, device) for p in find_checkpoints(checkpoints)]
    if len({s.n_landmarks for s in scorers}) > 1:
        raise ValueError(
            "the checkpoints were trained on different landmark sets ("
            + ", ".join(f"{s.path}: {s.n_landmarks}" for s in scorers)
            + "); classify with one set at a time"
        )
    backend = BACKEND_FOR.get(scorers[0].n_landmarks)  # None: landmark files only
    unique: dict[Path, Path] = {}  # an input named twice counts once
    for p in list_inputs(inputs, skip_extracted=backend is not None):
        try:
            key = p.resolve()
        except (OSError, RuntimeError):  # a loop of links: reported as that input's failure
            key = p.absolute()
        unique.setdefault(key, p)
    paths = list(unique.values())
    shared = {n for n, c in Counter(p.name for p in paths).items() if c > 1}
    if backend and any(is_video(p) for p in paths):
        check_backend(backend)  # a missing package: one error now, not one per video
    videos, failures, sources, face_frames, assumed = NewVideos(), {}, {}, {}, []
    for path in paths:
        name = str(path) if path.name in shared else path.name  # smile.mp4 of two folders
        try:
            landmarks, meta, default_rate = read_input(path, scorers[0])
            check_length(path, len(landmarks), float(meta["fps"]), scorers)
            videos.add(name, path, landmarks, meta)
            size = (meta["width"], meta["height"])
            for method in {s.cfg.data.normalize for s in scorers}:  # refuse a degenerate face now
                fit_normalization(videos.landmarks(name), method, size)
        except Exception as e:  # the other inputs go on; the reason is reported
            videos.remove(name)
            known = isinstance(e, (OSError, ValueError))
            failures[str(path)] = str(e) if known else f"{path}: {type(e).__name__}: {e}"
            continue
        sources[name] = str(path)
        found = meta.get("face_found")
        face_frames[name] = int(np.sum(found)) if found is not None else None
        if default_rate:
            assumed.append(name)
    if assumed:
        warn_assumed([videos.videos[n] for n in assumed], scorers[0].cfg.data.dataset)
    names = list(videos.videos)
    if not names:
        return [], failures
    probs = np.stack(
        [
            predict(
                s.cfg, s.model, TestWindows(videos, names, clip_config(s.cfg)), len(names), device
            )
            for s in scorers
        ]
    )  # (checkpoints, videos)
    threshold = float(np.mean([s.threshold for s in scorers]))
    verdicts = []
    for j, name in enumerate(names):
        v, p = videos.videos[name], float(probs[:, j].mean())
        verdicts.append(
            Verdict(
                name=name,
                source=sources[name],
                probability=p,
                threshold=threshold,
                spontaneous=p >= threshold,
                per_checkpoint={
                    str(s.path): float(x) for s, x in zip(scorers, probs[:, j], strict=True)
                },
                n_frames=v.n_frames,
                fps=v.fps,
                face_frames=face_frames[name],
            )
        )
    return verdicts, failures


def verdicts_json(
    checkpoints: list[str], verdicts: list[Verdict], failures: dict[str, str]
) -> dict:
    """What ``--json`` writes: the checkpoints as given, a verdict per input, the failures."""
    return {"checkpoints": checkpoints, "videos": [asdict(v) for v in verdicts], "failed": failures}


def check_json_target(path: Path) -> None:
    """``--json`` creates a file or replaces an earlier verdicts file, never another file (an
    input's sidecar, a run's results.json ...): ValueError naming it otherwise."""
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
        old = None
    if not (isinstance(old, dict) and old.keys() == verdicts_json([], [], {}).keys()):
        raise ValueError(
            f"--json {path}: an existing file that is not a verdicts file of --classify; give a "
            "new file name"
        )


def format_verdicts(verdicts: list[Verdict], failures: dict[str, str]) -> str:
    """A table of the verdicts (none without verdicts), then the failures with their reasons."""
    width = max([len(v.name) for v in verdicts] + [5])
    head = f"call (P >= {verdicts[0].threshold:.3f})" if verdicts else ""  # one threshold for all
    lines = [f"{'input':<{width}}  P(spontaneous)  {head}  frames  face"] if verdicts else []
    for v in verdicts:
        call = "spontaneous" if v.spontaneous else "posed"
        face = "-" if v.face_frames is None else f"{100 * v.face_frames / v.n_frames:.0f}%"
        lines.append(
            f"{v.name:<{width}}  {v.probability:>14.3f}  {call:<{len(head)}}  {v.n_frames:>6}  "
            f"{face:>4}"
        )
    lines += [
        f"failed: {reason}" if path in reason else f"failed: {path}: {reason}"
        for path, reason in failures.items()
    ]
    return "\n".join(lines)
