"""Landmark augmentation for training clips: small callables ``t(x, rng) -> x`` on normalised clips
x (t, V, 3), plus a playback-speed jitter that the clip sampler applies when it picks frames.

Every random draw comes from the ``rng`` passed in (``numpy.random.Generator``), so a clip's
augmentation is a function of (seed, epoch, item) like its window. Rotation and scaling act about
the clip's centroid; translation is in the clip's units (inter-ocular distances after ``face``
normalisation). Test clips are never augmented.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from data.mirror import mirror_landmarks, mirror_permutation
from data.normalize import mirror_center
from data.pose import rotation_matrix


def _centroid(x: np.ndarray) -> np.ndarray:
    """Mean point (3,) of (..., 3) as a matrix product (much faster than .mean for (n, 3))."""
    flat = x.reshape(-1, 3)
    return np.full(len(flat), 1.0 / len(flat), dtype=np.float32) @ flat


@dataclass(frozen=True)
class RandomRotation:
    """One small 3-D rotation per clip, angles uniform in +-``max_degrees`` about each axis."""

    max_degrees: float = 10.0

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        r = rotation_matrix(*np.deg2rad(rng.uniform(-self.max_degrees, self.max_degrees, 3)))
        r = r.T.astype(np.float32)
        c = _centroid(x)
        return x @ r + (c - c @ r)  # (x - c) R^T + c


@dataclass(frozen=True)
class RandomScale:
    """Isotropic scale by a factor uniform in [1 - ``max_change``, 1 + ``max_change``]."""

    max_change: float = 0.1

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        s = np.float32(rng.uniform(1 - self.max_change, 1 + self.max_change))
        return x * s + _centroid(x) * (1 - s)  # (x - c) s + c


@dataclass(frozen=True)
class RandomTranslation:
    """Shift by a vector uniform in +-``max_shift`` per axis (clip units)."""

    max_shift: float = 0.05

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return x + rng.uniform(-self.max_shift, self.max_shift, 3).astype(np.float32)


@dataclass(frozen=True)
class RandomMirror:
    """Horizontal mirror with probability ``p``: x flipped about ``center`` (the normalisation's
    :func:`~data.normalize.mirror_center`, so that the clip becomes that of the video's mirror
    image, the one its mirrored D-Marker targets describe; None: the clip's mean x) and
    left/right points swapped with the mesh's permutation ``perm`` (see data/mirror.py)."""

    perm: np.ndarray = field(repr=False)
    p: float = 0.5
    center: float | None = None

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() < self.p:
            return mirror_landmarks(x, self.perm, self.center)
        return x


@dataclass(frozen=True)
class SpeedJitter:
    """Playback-rate factor uniform in [1 - ``max_change``, 1 + ``max_change``]; the sampler
    multiplies its frame step by it (>1 = faster smile)."""

    max_change: float = 0.1

    def factor(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(1 - self.max_change, 1 + self.max_change))


class Augment:
    """Spatial transforms applied in order, plus an optional speed jitter for the sampler."""

    def __init__(self, *transforms, speed: SpeedJitter | None = None):
        self.transforms = transforms
        self.speed = speed

    def speed_factor(self, rng: np.random.Generator) -> float:
        return 1.0 if self.speed is None else self.speed.factor(rng)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
        """Transform x (w, v, 3); also say whether it was mirrored (D-Marker targets follow)."""
        mirrored = False
        for t in self.transforms:
            y = t(x, rng)
            mirrored |= isinstance(t, RandomMirror) and y is not x
            x = y
        return x, mirrored

    def __repr__(self) -> str:
        return f"Augment({', '.join(map(repr, self.transforms))}, speed={self.speed!r})"


@dataclass
class AugmentConfig:
    """Training augmentation; 0 switches a part off."""

    rotate_degrees: float = 10.0
    scale: float = 0.1
    translate: float = 0.05
    speed: float = 0.1
    mirror: float = 0.5  # probability


def build_augment(cfg: AugmentConfig, n_landmarks: int, normalize: str) -> Augment:
    """The :class:`Augment` of a config for a landmark count and the clips' normalisation
    (order: mirror, rotate, scale, translate)."""
    parts = []
    if cfg.mirror > 0:
        perm = mirror_permutation(n_landmarks)
        parts.append(RandomMirror(perm, cfg.mirror, mirror_center(normalize)))
    if cfg.rotate_degrees > 0:
        parts.append(RandomRotation(cfg.rotate_degrees))
    if cfg.scale > 0:
        parts.append(RandomScale(cfg.scale))
    if cfg.translate > 0:
        parts.append(RandomTranslation(cfg.translate))
    return Augment(*parts, speed=SpeedJitter(cfg.speed) if cfg.speed > 0 else None)
