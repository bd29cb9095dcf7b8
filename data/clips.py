"""Clips of W frames for training and testing, at a common frame rate.

Every video is sampled at ``target_fps``: output frame k of a window starting at source frame s
lies at source position ``s + k * fps / target_fps`` (linear interpolation between the two nearest
frames; exact frames when the ratio is an integer, e.g. UvA-NEMO 50 -> 25 takes every other frame).

- Training (:class:`TrainClips`): one window per video per epoch, its start uniform over the
  integer source frames that keep the window inside the video; the draw (and the augmentation) is a
  function of (seed, epoch, item), so runs are deterministic and resumable.
- Test (:class:`TestWindows`): deterministic windows covering the whole video: starts 0, S, 2S, ...
  (S = ``test_stride``, default W) plus one window ending on the last frame; the scores of a
  video's windows are averaged by :func:`video_scores`.
- A video shorter than W target frames gives one window; the frames after its end repeat the last
  frame and are marked ``mask = False`` (padding is never zeros without a mask).

Normalisation (data/normalize.py) is fitted on the whole video (once per video and process) and
applied to the window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from data.dmarker import N_DMARKERS
from data.normalize import NORMALIZATIONS, NormParams, apply_normalization, fit_normalization
from data.transforms import Augment


@dataclass
class ClipConfig:
    window: int = 16  # W frames per clip
    target_fps: float = 25.0  # every video is resampled to this rate before windowing
    normalize: str = "face"  # one of data.normalize.NORMALIZATIONS
    test_stride: int | None = None  # default W (windows covering the whole video)

    def __post_init__(self):
        if self.window < 1 or self.target_fps <= 0:
            raise ValueError(
                f"clip window {self.window} and target_fps {self.target_fps} must be > 0"
            )
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(
                f"normalize={self.normalize!r}: use one of {', '.join(NORMALIZATIONS)}"
            )
        if self.test_stride is not None and self.test_stride < 1:
            raise ValueError(f"test_stride must be >= 1, got {self.test_stride}")


def n_target_frames(n_frames: int, fps: float, target_fps: float) -> int:
    """Frames of a video of ``n_frames`` at ``fps`` once resampled to ``target_fps``."""
    step = fps / target_fps
    return int(math.floor((n_frames - 1) / step + 1e-9)) + 1


def window_positions(
    start: float, window: int, step: float, n_frames: int
) -> tuple[np.ndarray, np.ndarray]:
    """Source positions (W,) of a window and its mask (W,) bool (False past the last frame)."""
    pos = start + np.arange(window) * step
    mask = pos <= n_frames - 1 + 1e-6
    return np.clip(pos, 0, n_frames - 1), mask


def sample_frames(video: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Linear interpolation of (T, V, 3) at fractional frame positions (W,) -> (W, V, 3)."""
    lo = np.floor(positions + 1e-6).astype(np.int64).clip(0, len(video) - 1)
    hi = np.minimum(lo + 1, len(video) - 1)
    w = (positions - lo).clip(0, 1).astype(np.float32)[:, None, None]
    if not np.any(w > 1e-6):
        return np.array(video[lo], dtype=np.float32)
    return ((1 - w) * video[lo] + w * video[hi]).astype(np.float32)


def window_starts(n_out: int, window: int, stride: int) -> list[int]:
    """Window starts (target frames) covering ``n_out`` frames: 0, S, 2S, ... and n_out - W."""
    if n_out <= window:
        return [0]
    starts = list(range(0, n_out - window + 1, stride))
    if starts[-1] != n_out - window:
        starts.append(n_out - window)
    return starts


class _Clips(torch.utils.data.Dataset):
    def __init__(
        self, dataset, names: Sequence[str], cfg: ClipConfig, targets=None, target_adjust=None
    ):
        self.dataset = dataset
        self.names = list(names)
        self.cfg = cfg
        self.targets = targets or {}
        self.target_adjust = target_adjust  # (z, speed) -> z, see DMarkerScaler.at_speed
        self._norm: dict[str, NormParams] = {}  # fitted once per video (face_motion's is costly)
        unknown = [n for n in self.names if n not in dataset.videos]
        if unknown:
            raise KeyError(f"videos not in dataset {dataset.root}: {unknown[:5]}")

    def _item(
        self,
        name: str,
        video: np.ndarray,
        positions,
        mask,
        index: int,
        rng=None,
        augment: Augment | None = None,
        speed: float = 1.0,
    ) -> dict:
        v = self.dataset.videos[name]
        try:
            if name not in self._norm:
                self._norm[name] = fit_normalization(video, self.cfg.normalize, (v.width, v.height))
            params = self._norm[name]
            x = apply_normalization(sample_frames(video, positions), params)  # (w, v, c)
        except ValueError as e:
            raise ValueError(
                f"{v.file}: {e}; re-extract the video or remove it from the dataset"
            ) from e
        mirrored = False
        if augment is not None:
            x, mirrored = augment.apply(x, rng)
        target = self.targets.get(name)  # (2, d): the video's, its mirror image's
        if target is not None:
            target = target[int(mirrored)]
            if self.target_adjust is not None and speed != 1.0:
                target = self.target_adjust(target, speed)
        return {
            "x": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
            "mask": torch.from_numpy(mask),
            "label": torch.tensor(float(v.label), dtype=torch.float32),
            "dmarker": torch.from_numpy(np.asarray(target, dtype=np.float32))
            if target is not None
            else torch.zeros(N_DMARKERS, dtype=torch.float32),
            "has_dmarker": torch.tensor(target is not None),
            "index": index,
        }


class TrainClips(_Clips):
    """One random window per video per epoch; items are dicts (see the module docstring):
    x (W, V, 3) float32, mask (W,) bool, label float32, dmarker (225,), has_dmarker, index.

    ``augment`` transforms the normalised window and jitters its speed (the frame step is
    multiplied by ``augment.speed_factor``). ``targets``: name -> standardised D-Markers (2, 225)
    of the video and of its mirror image (:meth:`DMarkerScaler.targets`).
    """

    def __init__(
        self,
        dataset,
        names,
        cfg: ClipConfig,
        *,
        augment: Augment | None = None,
        targets=None,
        seed=0,
        target_adjust=None,
    ):
        super().__init__(dataset, names, cfg, targets, target_adjust)
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Windows and augmentation of epoch ``epoch`` (a function of seed, epoch, item)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> dict:
        name = self.names[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        v = self.dataset.videos[name]
        video = self.dataset.landmarks(name)
        speed = self.augment.speed_factor(rng) if self.augment is not None else 1.0
        step = v.fps / self.cfg.target_fps * speed
        room = len(video) - 1 - (self.cfg.window - 1) * step
        start = int(rng.integers(0, math.floor(room + 1e-6) + 1)) if room >= 0 else 0
        positions, mask = window_positions(start, self.cfg.window, step, len(video))
        return self._item(name, video, positions, mask, i, rng, self.augment, speed)


class TestWindows(_Clips):
    """Deterministic windows covering each whole video; items as in :class:`TrainClips` (no
    D-Marker targets) with ``index`` = the video's position in ``names``; ``windows`` lists
    (that position, start in target frames) per window."""

    __test__ = False  # not a pytest class

    def __init__(self, dataset, names, cfg: ClipConfig):
        super().__init__(dataset, names, cfg)
        stride = cfg.test_stride or cfg.window
        self.windows: list[tuple[int, int]] = []  # (video position, start in target frames)
        for j, name in enumerate(self.names):
            v = dataset.videos[name]
            n_out = n_target_frames(v.n_frames, v.fps, cfg.target_fps)
            self.windows += [(j, s) for s in window_starts(n_out, cfg.window, stride)]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        j, start = self.windows[i]
        name = self.names[j]
        v = self.dataset.videos[name]
        video = self.dataset.landmarks(name)
        step = v.fps / self.cfg.target_fps
        positions, mask = window_positions(start * step, self.cfg.window, step, len(video))
        return self._item(name, video, positions, mask, j)


def video_scores(window_scores, window_index, n_videos: int) -> np.ndarray:
    """Mean of the window scores of each video: (n_windows,), (n_windows,) -> (n_videos,)."""
    scores = np.asarray(window_scores, dtype=np.float64).reshape(-1)
    index = np.asarray(window_index, dtype=np.int64).reshape(-1)
    if scores.shape != index.shape:
        raise ValueError(f"{scores.shape[0]} window scores for {index.shape[0]} window indices")
    counts = np.bincount(index, minlength=n_videos)
    if len(counts) > n_videos or np.any(counts[:n_videos] == 0):
        raise ValueError("every video needs at least one window and indices must be < n_videos")
    return np.bincount(index, weights=scores, minlength=n_videos) / counts
