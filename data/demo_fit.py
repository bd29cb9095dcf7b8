"""The demo generator's own model fitted to a demo set's landmark files: what the landmarks allow.

    python -m data.demo_fit DEMO_DIR

A reference for tuning on the demo, between the Bayes ceiling (computed on the latents, which no
landmark classifier sees) and a trained network. For each video the ``face_motion`` landmarks are
projected by least squares on the generator's five deformation fields (each passed through the
same per-frame alignment) and on the small shifts, rotations and scalings that alignment leaves,
which gives every field's gain per frame; the mean lip gain is fitted with the generator's phase
curve (start, three durations, amplitude), the mean Duchenne gain with the same curve delayed
(delay, gain), and each side's lip gain with that curve (asymmetry = (left - right) / (left +
right)). The estimates go through :func:`data.demo_motion.sufficient_statistics` to the same
logistic regression (C = 1, fitted on each fold's training part) as ``demo.json``'s
``latent_classifier_cv_accuracy``. A smile cut by the end of its video (the generator caps videos
at 8 s) leaves its apex and offset underdetermined; the fit takes what the frames show.

The fit knows the generator's fields and time courses, which no model is given: it measures what
the landmarks' noise leaves of the latents, not what a learner should be expected to reach.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from data.datasets import open_dataset
from data.demo import cv_accuracy
from data.demo_cues import motion_params, read_latents
from data.demo_geometry import DemoAssets, load_assets
from data.demo_motion import LATENTS, MotionParams, phase_curve, sufficient_statistics
from data.files import run_cli
from data.normalize import normalize_video

FIELDS = ("smile_right", "smile_left", "duchenne_right", "duchenne_left", "blink")


@dataclass(frozen=True)
class FieldProjection:
    """Least-squares gains of the deformation fields, as they look after per-frame alignment."""

    pinv: np.ndarray  # (5 + 7, V * 3): the fields, then 3 shifts, 3 rotations and a scale

    @classmethod
    def of(cls, assets: DemoAssets, step: float = 0.05) -> FieldProjection:
        """The fields through ``face_frame``, linearised at the reference face by finite
        differences, plus the similarity motions that the per-frame alignment leaves (it is
        estimated from six noisy points, so every frame keeps a small shift, rotation and scale)."""
        ref = assets.reference[None]  # (1, V, 3)

        def frame(x):
            return normalize_video(x, "face_frame")[0].astype(np.float64)  # (V, 3)

        face = frame(ref)
        aligned = [(frame(ref + step * assets.fields[k]) - face) / step for k in FIELDS]
        axes = np.eye(3)
        shifts = [np.broadcast_to(e, face.shape) for e in axes]
        rotations = [np.cross(e, face) for e in axes]
        basis = np.stack([*aligned, *shifts, *rotations, face]).reshape(12, -1)  # (12, V * 3)
        return cls(np.linalg.pinv(basis.T))

    def gains(self, video: np.ndarray) -> np.ndarray:
        """Field gains (T, 5) of a video (T, V, 3) in isotropic pixels, each up to an offset."""
        motion = normalize_video(video, "face_motion").reshape(len(video), -1)
        return (motion.astype(np.float64) @ self.pinv.T)[:, : len(FIELDS)]


def fit_video(gains: np.ndarray, fps: float, p: MotionParams) -> np.ndarray:
    """The informative latents (7,) in :data:`LATENTS` order estimated from field gains (T, 5)."""
    t = np.arange(len(gains)) / fps
    lips, eyes = gains[:, :2].mean(1), gains[:, 2:4].mean(1)

    def residuals(q):
        start, log_on, log_apex, log_off, amp, lip0, delay, eye_amp, eye0 = q
        on, apex, off = np.exp([log_on, log_apex, log_off])
        return np.concatenate(
            [
                amp * phase_curve(t, start, on, apex, off) + lip0 - lips,
                eye_amp * phase_curve(t, start + delay, on, apex, off) + eye0 - eyes,
            ]
        )

    lo = [-1.0, np.log(0.05), np.log(0.05), np.log(0.05), 0.0, -5.0, -1.5, -5.0, -5.0]
    hi = [t[-1], np.log(10.0), np.log(20.0), np.log(10.0), 10.0, 5.0, 1.5, 5.0, 5.0]
    best = None
    for start in (0.3, 0.7, 1.1):  # the generator's lead-in is 0.3-1.2 s
        for speed in (0.7, 1.0, 1.5):
            q0 = [start, *np.log(np.array([0.5, 1.1, 0.65]) * speed)]
            q0 += [np.ptp(lips), lips.min(), 0.1, np.ptp(eyes), eyes.min()]
            fit = least_squares(residuals, q0, bounds=(lo, hi))
            if best is None or fit.cost < best.cost:
                best = fit
    start, log_on, log_apex, log_off, amp, _, delay, eye_amp, _ = best.x
    on, apex, off = np.exp([log_on, log_apex, log_off])
    curve = np.column_stack([phase_curve(t, start, on, apex, off), np.ones_like(t)])
    (right, _), (left, _) = (np.linalg.lstsq(curve, g, rcond=None)[0] for g in gains[:, :2].T)
    asymmetry = (left - right) / max(left + right, 1e-9)
    edge = 0.01 * p.eye_ratio_max
    eye_ratio = np.clip(eye_amp / max(amp, 1e-9), edge, p.eye_ratio_max - edge)
    return np.array([on, apex, off, amp, asymmetry, eye_ratio, delay])


def report(root: Path) -> str:
    """Per-latent recovery and the accuracies, as printed by the CLI."""
    demo = json.loads((root / "demo.json").read_text())
    p = motion_params(demo)
    ds = open_dataset("demo", root)
    truth = read_latents(root)
    names = sorted(ds.videos)
    projection = FieldProjection.of(load_assets())
    est = np.array(
        [
            fit_video(projection.gains(np.asarray(ds.landmarks(n))), ds.videos[n].fps, p)
            for n in names
        ]
    )
    true = np.array([truth[n] for n in names])
    labels = np.array([ds.videos[n].label for n in names])
    fitted = cv_accuracy(sufficient_statistics(est, p), labels, names, ds.folds, 1.0)
    latent = cv_accuracy(sufficient_statistics(true, p), labels, names, ds.folds, 1.0)
    size = LATENTS.index("asymmetry")  # its sign carries no class: compare sizes
    est[:, size], true[:, size] = np.abs(est[:, size]), np.abs(true[:, size])
    lines = [f"{root}: {len(names)} videos, {len(ds.folds)} folds", "latent         r(fit, true)"]
    for i, k in enumerate(LATENTS):
        lines.append(f"{k:14s} {np.corrcoef(est[:, i], true[:, i])[0, 1]:12.3f}")
    rows = (
        ("Bayes ceiling", demo["bayes_ceiling"]),
        ("optimal rule on this set's latents", demo["bayes_rule_accuracy_on_this_set"]),
        ("logistic regression on the latents", latent),
        ("... on the latents fitted to landmarks", fitted),
    )
    lines += [f"{name:40s}{value:.3f}" for name, value in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data.demo_fit", description=__doc__.split("\n")[0])
    ap.add_argument("demo", type=Path, help="a demo set written by python -m data.demo")
    args = ap.parse_args(argv)
    if not (args.demo / "demo.json").exists():
        print(
            f"error: {args.demo}: no demo.json; give a folder written by python -m data.demo",
            file=sys.stderr,
        )
        return 2
    print(report(args.demo))
    return 0


if __name__ == "__main__":
    run_cli(main)
