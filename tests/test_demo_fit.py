"""data.demo_fit: the demo generator's own model fitted to landmark files recovers the latents."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from data import demo_fit
from data.demo import generate
from data.demo_geometry import load_assets
from data.demo_motion import LATENTS, MotionParams, sample_latents
from data.demo_render import make_identity, render_video
from data.io import to_isotropic


@pytest.fixture(scope="module")
def demo_set(tmp_path_factory) -> Path:
    """16 subjects, 5 folds, seed 7 (the landmarks of test_demo.py's set; no D-Markers)."""
    root = tmp_path_factory.mktemp("demo") / "demo_data"
    generate(root, subjects=16, seed=7, folds=5, dmarkers=False)
    return root


def test_generator_fit_recovers_the_latents_from_landmarks():
    """data.demo_fit on rendered videos of known latents: every latent comes back closely (the
    delay too: the projection also absorbs the per-frame alignment's noise)."""
    assets, p = load_assets(), MotionParams()
    rng = np.random.default_rng(3)
    latents = sample_latents(rng, p, np.arange(16) % 2)
    projection = demo_fit.FieldProjection.of(assets)
    est = []
    for row in latents:
        identity, _ = make_identity(assets, rng)
        video = render_video(assets, identity, dict(zip(LATENTS, row, strict=True)), rng)
        pixels = to_isotropic(video.landmarks, video.width, video.height)
        est.append(demo_fit.fit_video(projection.gains(pixels), video.fps, p))
    est = np.array(est)
    rel = np.abs(np.log(est[:, :4] / latents[:, :4]))  # durations and amplitude
    assert np.median(rel) < 0.05, rel
    assert np.abs(est[:, 4] - latents[:, 4]).max() < 0.03  # asymmetry, signed
    assert np.corrcoef(est[:, 5], latents[:, 5])[0, 1] > 0.99  # eye ratio
    assert np.median(np.abs(est[:, 6] - latents[:, 6])) < 0.06  # eye delay (s)


def test_generator_fit_cli(demo_set, tmp_path, capsys):
    """The report: each latent's recovery, and the fitted latents classify about as well as the
    true ones over the same folds."""
    root = demo_set
    assert demo_fit.main([str(root)]) == 0
    out = capsys.readouterr().out
    r = {k: float(v) for k, v in re.findall(r"^(\w+)\s+(-?[0-9.]+)$", out, flags=re.M)}
    assert set(r) == set(LATENTS), out
    assert min(r[k] for k in LATENTS if k != "offset_s") > 0.9, out
    fitted = float(re.search(r"fitted to landmarks\s+([0-9.]+)", out).group(1))
    latent = float(re.search(r"regression on the latents\s+([0-9.]+)", out).group(1))
    assert latent > 0.7 and abs(fitted - latent) < 0.06, out
    assert demo_fit.main([str(tmp_path)]) == 2
    assert "no demo.json; give a folder written by python -m data.demo" in capsys.readouterr().err
