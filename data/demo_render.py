"""Render one synthetic smile video as landmark tracks, in the published normalised format.

A video = an identity (a neutral mesh mixed from the measured faces) + measured deformation fields
driven by the smile time courses of :mod:`data.demo_motion` + blinks + head pose with slow drift
+ tracking jitter + occasional lost-face frames filled by interpolation, as extraction does.
Canonical meshes are in IOD units (eye midpoint origin, x image right, y down, z away from the
camera); the renderer maps them to pixels with a weak-perspective camera and writes x/W, y/H, z/W.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from einops import einsum

from data.demo_geometry import DemoAssets
from data.demo_motion import phase_curve
from data.pose import rotation_matrix

FRAME_SIZES = ((1920, 1080), (1280, 720))
FRAME_RATES = (25.0, 30.0, 50.0)
LENGTH_S = (2.0, 8.0)


@dataclass(frozen=True)
class Rendered:
    """One video: normalised landmarks (T, V, 3) float32, face-found mask (T,), nuisance latents."""

    landmarks: np.ndarray
    face_found: np.ndarray
    fps: float
    width: int
    height: int
    nuisance: dict[str, float]


def make_identity(assets: DemoAssets, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A subject's neutral mesh (V, 3): a sparse random mixture of the measured faces, plus small
    shape noise along their principal modes and a random change of proportions.

    Returns (mesh, index of the face with the largest mixture weight).
    """
    faces = assets.neutral  # (K, V, 3)
    k = len(faces)
    weights = rng.dirichlet(np.full(k, 0.3))
    mesh = einsum(weights, faces, "k, k v c -> v c")
    dev = (faces - faces.mean(0)).reshape(k, -1)
    _, sv, modes = np.linalg.svd(dev, full_matrices=False)
    mesh = mesh + (rng.normal(0, 0.5, k) * sv / np.sqrt(k) @ modes).reshape(mesh.shape)
    mesh = mesh * (1 + rng.normal(0, [0.03, 0.04, 0.05]))
    return mesh, int(np.argmax(weights))


def _drift(rng: np.random.Generator, t: np.ndarray, amplitude: float) -> np.ndarray:
    """Slow random drift (T,): two sinusoids of 0.05-0.4 Hz with random phases."""
    f = rng.uniform(0.05, 0.4, 2)
    a = rng.uniform(0, amplitude, 2)
    return (
        a[:, None] * np.sin(2 * np.pi * f[:, None] * t + rng.uniform(0, 2 * np.pi, (2, 1)))
    ).sum(0)


def _blinks(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Eye closure (T,) in [0, ~1]: blinks at a Poisson rate of ~0.3 /s, 0.15-0.3 s each."""
    closure = np.zeros_like(t)
    duration = t[-1] + (t[1] - t[0])
    for start in rng.uniform(0, duration, rng.poisson(0.3 * duration)):
        width = rng.uniform(0.15, 0.3)
        phase = np.clip((t - start) / width, 0, 1)
        closure = np.maximum(closure, rng.uniform(0.7, 1.0) * np.sin(np.pi * phase) ** 2)
    return closure


def fill_missing(x: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Replace rows of x (T, ...) where ``found`` (T,) is 0 by linear interpolation between the
    nearest found rows (edges: the nearest found row), as extraction fills lost frames."""
    good = np.flatnonzero(found)
    miss = np.flatnonzero(~found.astype(bool))
    if len(miss) == 0:
        return x
    right = np.clip(np.searchsorted(good, miss), 0, len(good) - 1)
    left = np.clip(right - 1, 0, len(good) - 1)
    left = np.where(good[left] > miss, right, left)  # before the first found row: nearest
    span = np.maximum(good[right] - good[left], 1)
    w = np.clip((miss - good[left]) / span, 0, 1).reshape(-1, *[1] * (x.ndim - 1))
    x = x.copy()
    x[miss] = (1 - w) * x[good[left]] + w * x[good[right]]
    return x


def render_video(
    assets: DemoAssets, identity: np.ndarray, latents: dict[str, float], rng: np.random.Generator
) -> Rendered:
    """Landmark tracks of one smile. ``latents``: the informative latents of
    :data:`data.demo_motion.LATENTS` (durations in s, gains). Nuisance factors are drawn here."""
    fps = float(rng.choice(FRAME_RATES))
    width, height = FRAME_SIZES[rng.integers(len(FRAME_SIZES))]
    pre, post = rng.uniform(0.3, 1.2, 2)
    smile = latents["onset_s"] + latents["apex_s"] + latents["offset_s"]
    length = float(np.clip(pre + smile + post, *LENGTH_S))
    t = np.arange(int(round(length * fps))) / fps  # (T,)

    # time courses: lips, Duchenne (delayed), apex wobble, blinks
    lips = phase_curve(t, pre, latents["onset_s"], latents["apex_s"], latents["offset_s"])
    eyes = phase_curve(
        t, pre + latents["eye_delay_s"], latents["onset_s"], latents["apex_s"], latents["offset_s"]
    )
    lips = lips * (1 + _drift(rng, t, 0.03))
    amp, asym = latents["lip_amplitude"], latents["asymmetry"]
    eye_amp = amp * latents["eye_ratio"]
    f = assets.fields
    gains = np.stack(
        [
            lips * amp * (1 - asym),
            lips * amp * (1 + asym),
            eyes * eye_amp * (1 - asym),
            eyes * eye_amp * (1 + asym),
            _blinks(rng, t),
        ],
        axis=1,
    )  # (T, 5)
    basis = np.stack(
        [f["smile_right"], f["smile_left"], f["duchenne_right"], f["duchenne_left"], f["blink"]]
    )  # (5, V, 3)
    mesh = identity + np.tensordot(gains, basis, axes=1)  # (T, V, 3)
    mesh[..., 2] -= identity[:, 2].mean()

    # head pose: base angles + slow drift; weak-perspective camera
    base = np.radians(rng.normal(0, [8.0, 6.0, 4.0]))
    angles = [base[i] + np.radians(_drift(rng, t, 2.0)) for i in range(3)]
    iod0 = rng.uniform(0.16, 0.28) * height  # face size; the face spans ~-1..+1.9 IOD in y
    iod_px = iod0 * (1 + _drift(rng, t, 0.02))  # (T,)
    centre = np.stack(
        [
            width / 2 + rng.normal(0, 0.04) * width + _drift(rng, t, 0.1) * iod_px,
            height / 2 - 0.45 * iod0 + rng.normal(0, 0.03) * height + _drift(rng, t, 0.1) * iod_px,
            np.zeros_like(t),
        ],
        axis=1,
    )  # (T, 3) pixels: where the eye midpoint is
    rot = rotation_matrix(*angles)  # (T, 3, 3)
    px = mesh @ rot.transpose(0, 2, 1) * iod_px[:, None, None] + centre[:, None]  # (T, V, 3)

    # tracking jitter (depth noisier), common per-frame shake, lost frames
    jitter = rng.uniform(0.004, 0.01)
    noise_sd = jitter * iod_px[:, None, None] * np.array([1.0, 1.0, 2.0])
    px += rng.standard_normal(px.shape, dtype=np.float32) * noise_sd
    px[..., :2] += rng.normal(0, 0.5 * jitter, (len(t), 1, 2)) * iod_px[:, None, None]
    found = np.ones(len(t), dtype=np.uint8)
    if rng.random() < 0.25:
        for _ in range(rng.integers(1, 3)):
            gap = rng.integers(1, max(2, int(0.25 * fps)) + 1)
            start = rng.integers(0, max(1, len(t) - gap))
            found[start : start + gap] = 0
    if not found.any():
        found[0] = 1
    px = fill_missing(px, found)
    arr = (px / np.array([width, height, width])).astype(np.float32)
    nuisance = {
        "pre_s": float(pre),
        "yaw_deg": float(np.degrees(base[0])),
        "pitch_deg": float(np.degrees(base[1])),
        "roll_deg": float(np.degrees(base[2])),
        "iod_px": float(iod_px.mean()),
        "jitter_iod": float(jitter),
        "blink_frames": int((gains[:, 4] > 0.3).sum()),
        "missing_frames": int((found == 0).sum()),
    }
    return Rendered(arr, found, fps, int(width), int(height), nuisance)
