"""The synthetic demo dataset: measured assets, files as a real dataset, determinism, folds,
class statistics measured on the landmarks, and the reported Bayes ceiling."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from landmark_synth import tree_bytes

from data import demo_cues
from data.demo import generate
from data.demo_cues import motion_params
from data.demo_geometry import load_assets
from data.demo_motion import (
    CUES,
    LATENTS,
    MotionParams,
    bayes_ceiling,
    cue_log_ratios,
    posterior_spontaneous,
    sample_latents,
    sample_subject,
    sufficient_statistics,
)
from data.demo_render import fill_missing
from data.demo_stats import MEASURES, measure_smile
from data.fold_check import check_folds
from data.folds import read_folds
from data.io import META_KEYS, load_landmarks, to_isotropic
from data.mesh import MEDIAPIPE

REPO = Path(__file__).resolve().parents[1]
SEED = 7
NAME = re.compile(r"^s(\d{3})_(posed|spontaneous)_(\d+)$")


def _rows(root: Path, name: str) -> list[dict]:
    with open(root / name, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def demo_set(tmp_path_factory) -> tuple[Path, str]:
    """16 subjects through the CLI, as ``make demo`` runs it; (folder, stdout)."""
    out = tmp_path_factory.mktemp("demo") / "demo_data"
    cmd = [sys.executable, "-m", "data.demo", "--out", str(out), "--subjects", "16"]
    res = subprocess.run(
        [*cmd, "--seed", str(SEED)], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr
    return out, res.stdout


@pytest.fixture(scope="module")
def measured(demo_set) -> dict[int, dict[str, np.ndarray]]:
    """measure_smile on every generated file: {label: {measure: (n,)}}."""
    root, _ = demo_set
    assets = load_assets()
    out: dict[int, dict[str, list]] = {0: {k: [] for k in MEASURES}, 1: {k: [] for k in MEASURES}}
    for row in _rows(root, "labels.csv"):
        arr, meta = load_landmarks(root / "npy" / f"{row['video']}.npy")
        m = measure_smile(
            to_isotropic(arr, meta["width"], meta["height"]), meta["fps"], assets.stable
        )
        for k in MEASURES:
            out[int(row["label"])][k].append(m[k])
    return {c: {k: np.array(v) for k, v in d.items()} for c, d in out.items()}


# ------------------------------------------------------------------------------ assets


def test_assets_are_measured_faces_and_plausible_fields():
    a = load_assets()
    v = a.n_landmarks
    assert v == 478 and a.neutral.shape[1:] == (v, 3) and len(a.names) == len(a.neutral) >= 8
    assert {"astronaut", "grace_hopper", "single_face.mp4"} <= set(a.names)
    assert any(n.startswith("multi_face.jpg#") for n in a.names)
    p = MEDIAPIPE
    smile = a.fields["smile_right"] + a.fields["smile_left"]
    duch = a.fields["duchenne_right"] + a.fields["duchenne_left"]
    # lip corners go up (y down is +) and out; the subject's right corner is at image left
    assert smile[p.right_lip_corner, 1] < -0.05 and smile[p.left_lip_corner, 1] < -0.05
    assert smile[p.right_lip_corner, 0] < -0.05 < 0.05 < smile[p.left_lip_corner, 0]
    # Duchenne: cheeks up, upper eyelids down (eyes narrow); the smile field leaves the eyes alone
    assert duch[p.right_cheek, 1] < -0.02 and duch[p.left_cheek, 1] < -0.02
    assert duch[p.right_upper_lid, 1] > 0.01 and duch[p.left_upper_lid, 1] > 0.01
    assert abs(smile[p.right_upper_lid]).max() < 1e-3
    # right/left split: the right fields act on the subject's right half
    assert a.fields["smile_right"][p.left_lip_corner].max() < 1e-3
    # neutral faces: closed mouth (inner lips 13/14 close together), eyes open
    gap = np.linalg.norm(a.neutral[:, 13] - a.neutral[:, 14], axis=-1)
    lid = np.linalg.norm(a.neutral[:, 159] - a.neutral[:, 145], axis=-1)
    assert gap.max() < 0.1 and lid.min() > 0.08


def test_assets_rebuild_from_real_media(pyfeat_data):
    from data.demo_assets import build_assets

    arrays, log = build_assets(pyfeat_data)
    stored = np.load(REPO / "data" / "assets" / "demo_faces.npz")
    assert set(arrays) == set(stored.files)
    assert list(arrays["names"]) == list(stored["names"])
    for k in stored.files:
        if stored[k].dtype.kind == "f":
            np.testing.assert_allclose(arrays[k], stored[k], atol=2e-3, err_msg=k)
    assert any("45-m7-di-ph.jpg" in line and "skipped" in line for line in log)


# ------------------------------------------------------------------------------ motion


def test_exact_posterior_is_calibrated_and_ceiling_near_90():
    p = MotionParams()
    rng = np.random.default_rng(0)
    y = (rng.random(60_000) < 0.5).astype(int)
    post = posterior_spontaneous(sample_latents(rng, p, y, *sample_subject(rng, p, len(y))), p)
    bins = np.digitize(post, np.linspace(0.1, 0.9, 9))
    for b in np.unique(bins):
        sel = bins == b
        if sel.sum() > 500:
            assert abs(y[sel].mean() - post[sel].mean()) < 0.04
    ceiling = bayes_ceiling(p, np.random.default_rng(1), n=100_000)
    assert 0.87 < ceiling < 0.93
    assert abs(ceiling - ((post > 0.5) == y).mean()) < 0.01


def test_log_posterior_odds_are_affine_in_the_sufficient_statistics():
    """The latent reference classifier of demo.json is well specified: a logistic regression on
    these features can represent the exact Bayes rule."""
    p = MotionParams()
    rng = np.random.default_rng(2)
    y = (rng.random(5000) < 0.5).astype(int)
    latents = sample_latents(rng, p, y, *sample_subject(rng, p, len(y)))
    odds = sum(cue_log_ratios(latents, p).values())  # exact log posterior odds, prior 1/2
    design = np.column_stack([sufficient_statistics(latents, p), np.ones(len(y))])
    coef, *_ = np.linalg.lstsq(design, odds, rcond=None)
    assert np.abs(design @ coef - odds).max() < 1e-6 * np.abs(odds).max()


def test_fill_missing_interpolates_inside_and_holds_edges():
    x = np.arange(10, dtype=np.float64)[:, None, None] * np.ones((1, 2, 3))
    found = np.array([0, 0, 1, 1, 0, 0, 1, 1, 0, 0], dtype=np.uint8)
    filled = fill_missing(np.where(found[:, None, None] == 1, x, np.nan), found)
    np.testing.assert_allclose(filled[:, 0, 0], [2, 2, 2, 3, 4, 5, 6, 7, 7, 7])


# ------------------------------------------------------------------------------ files


def test_layout_files_and_metadata(demo_set):
    root, _ = demo_set
    rows = _rows(root, "labels.csv")
    assert list(rows[0]) == ["video", "label", "subject"]
    assert len(rows) >= 16 * 4 and {r["label"] for r in rows} == {"0", "1"}
    n_missing = 0
    for r in rows:
        m = NAME.match(r["video"])
        assert m and r["subject"] == f"s{m.group(1)}"
        assert int(r["label"]) == (m.group(2) == "spontaneous")
        arr, meta = load_landmarks(root / "npy" / f"{r['video']}.npy")
        assert arr.dtype == np.float32 and arr.ndim == 3 and arr.shape[1:] == (478, 3)
        assert np.isfinite(arr).all()
        assert set(META_KEYS) <= set(meta) and meta["backend"] == "demo"
        assert meta["video"] == r["video"] and meta["n_frames"] == len(arr)
        assert meta["n_landmarks"] == 478 and len(meta["face_found"]) == len(arr)
        assert meta["fps"] in (25.0, 30.0, 50.0)
        assert (meta["width"], meta["height"]) in ((1920, 1080), (1280, 720))
        assert 2.0 - 1 / meta["fps"] <= len(arr) / meta["fps"] <= 8.0 + 1 / meta["fps"]
        n_missing += meta["face_found"].count(0)
        # the published normalised format: the face lies inside the frame
        assert 0 < arr[..., 0].min() and arr[..., 0].max() < 1
        assert 0 < arr[..., 1].min() and arr[..., 1].max() < 1
    assert n_missing > 0
    latents = _rows(root, "latents.csv")
    assert [r["video"] for r in latents] == [r["video"] for r in rows]
    counts = {}
    for r in rows:
        counts.setdefault(r["subject"], []).append(int(r["label"]))
    assert len(counts) == 16
    assert all(len(v) >= 4 and 0 < sum(v) < len(v) for v in counts.values())


def test_folds_are_subject_independent(demo_set):
    root, _ = demo_set
    rows = _rows(root, "labels.csv")
    subjects = {r["video"]: r["subject"] for r in rows}
    labels = {r["video"]: int(r["label"]) for r in rows}
    folds = read_folds(root / "labels")
    assert len(folds) == 5 and check_folds(folds, subjects, labels) == []
    tested = [n for f in folds for n in f.test]
    assert sorted(tested) == sorted(labels)
    for f in folds:
        assert not {subjects[n] for n in f.train} & {subjects[n] for n in f.test}
        assert set(f.train) | set(f.test) == set(labels)


def test_deterministic_and_seed_dependent(demo_set, tmp_path):
    root, _ = demo_set
    a = generate(tmp_path / "a", subjects=3, seed=SEED, folds=3, dmarkers=False)
    generate(tmp_path / "b", subjects=3, seed=SEED, folds=3, dmarkers=False)
    generate(tmp_path / "c", subjects=3, seed=SEED + 1, folds=3, dmarkers=False)
    fa, fb, fc = (tree_bytes(tmp_path / k) for k in "abc")
    assert fa == fb
    npy = [k for k in fa if k.endswith(".npy")]
    assert npy and all(fa[k] != fc.get(k) for k in npy)
    # a subject's videos depend on (seed, subject) only: the big set starts with the same files
    big = tree_bytes(root)
    assert all(big[k] == fa[k] for k in npy)
    # rerunning into an existing demo folder replaces it exactly
    generate(tmp_path / "a", subjects=3, seed=SEED, folds=3, dmarkers=False)
    assert tree_bytes(tmp_path / "a") == fb
    assert a["videos"] == len(npy)


# ------------------------------------------------------------------------------ classes


def test_latents_follow_the_class_description(demo_set):
    root, _ = demo_set
    rows = _rows(root, "latents.csv")

    def mean(key, label, f=float):
        return np.mean([f(r[key]) for r in rows if r["label"] == str(label)])

    for key in ("onset_s", "apex_s", "offset_s", "eye_ratio"):
        assert mean(key, 0) < mean(key, 1), key
    for key in ("lip_amplitude", "eye_delay_s"):
        assert mean(key, 0) > mean(key, 1), key
    assert mean("asymmetry", 0, lambda v: abs(float(v))) > mean(
        "asymmetry", 1, lambda v: abs(float(v))
    )


def test_class_statistics_measured_on_landmarks(measured):
    posed, spont = measured[0], measured[1]
    assert np.mean(posed["rise_time_s"]) < 0.8 * np.mean(spont["rise_time_s"])
    assert np.mean(posed["onset_speed"]) > 1.3 * np.mean(spont["onset_speed"])
    assert np.mean(posed["lip_amplitude"]) > 1.1 * np.mean(spont["lip_amplitude"])
    assert np.mean(posed["asymmetry"]) > 1.3 * np.mean(spont["asymmetry"])
    assert np.mean(spont["eye_narrowing"]) > 1.3 * np.mean(posed["eye_narrowing"])
    assert np.nanmean(posed["eye_lag_s"]) > np.nanmean(spont["eye_lag_s"])
    # overlapping distributions: neither class is separable by one measure
    for k in ("rise_time_s", "lip_amplitude"):
        assert np.max(posed[k]) > np.min(spont[k]) and np.min(posed[k]) < np.max(spont[k])


def test_ceiling_reported(demo_set):
    root, stdout = demo_set
    info = json.loads((root / "demo.json").read_text())
    assert info["seed"] == SEED and info["subjects"] == 16 and info["folds"] == 5
    assert 0.87 < info["bayes_ceiling"] < 0.93
    assert 0.6 < info["latent_classifier_cv_accuracy"] <= 1.0
    assert 0.6 < info["bayes_rule_accuracy_on_this_set"] <= 1.0
    rule, n = info["bayes_rule_accuracy_on_this_set"], info["videos"]
    assert f"{rule:.3f}" == f"{round(rule * n) / n:.3f}"  # printed as the exact fraction rounds
    lo, hi = info["bayes_rule_interval_on_this_set"]  # 16 subjects: an interval by subject
    assert lo <= rule <= hi and hi - lo > 0.05
    latents = np.array(list(demo_cues.read_latents(root).values()))  # expected: mean max posterior
    post = posterior_spontaneous(latents, motion_params(info))
    expected = info["bayes_rule_expected_on_this_set"]
    assert expected == pytest.approx(np.maximum(post, 1 - post).mean(), abs=1e-4)
    shown = f"Bayes rule on this set {rule:.3f} [{lo:.3f}, {hi:.3f}], expected from its latents"
    assert f"{shown} {expected:.3f};" in stdout
    assert info["counts"]["posed"] + info["counts"]["spontaneous"] == info["videos"]
    stats = info["landmark_statistics"]
    assert stats["posed"]["rise_time_s"]["mean"] < stats["spontaneous"]["rise_time_s"]["mean"]
    assert f"Bayes ceiling {info['bayes_ceiling']:.3f}" in stdout
    if (root / "dmarkers.npz").exists():
        assert 0.5 < info["dmarker_classifier_cv_accuracy"] <= 1.0


def test_opens_as_a_demo_dataset(demo_set):
    from data.datasets import open_dataset

    root, _ = demo_set
    ds = open_dataset("demo", root)
    assert len(ds.videos) == len(_rows(root, "labels.csv")) and len(ds.folds) == 5
    video = next(iter(ds.videos.values()))
    assert ds.landmarks(video.name).shape[1:] == (478, 3)


# ------------------------------------------------------------------------------ errors


def test_cue_report_finds_the_cue_a_run_uses(demo_set, tmp_path, capsys):
    """A fake run whose logit is the durations' share of the exact odds: the report correlates it
    with durations (r = 1 in each class), not with the eye delay (independent given the class),
    and the durations alone score what the run scores."""
    root, _ = demo_set
    params = motion_params(json.loads((root / "demo.json").read_text()))
    rows = _rows(root, "latents.csv")
    lat = np.array([[float(r[k]) for k in LATENTS] for r in rows])
    shares = cue_log_ratios(lat, params)
    logit = np.log(posterior_spontaneous(lat, params)) - np.log1p(
        -posterior_spontaneous(lat, params)
    )
    np.testing.assert_allclose(sum(shares.values()), logit, atol=1e-6)  # the shares add up
    fake = {
        r["video"]: (int(r["label"]), s) for r, s in zip(rows, shares["durations"], strict=True)
    }
    for fold in read_folds(root / "labels"):
        videos = {
            n: {"label": fake[n][0], "probability": float(1 / (1 + np.exp(-fake[n][1])))}
            for n in fold.test
        }
        (tmp_path / f"fold_{fold.index:02d}").mkdir()
        (tmp_path / f"fold_{fold.index:02d}" / "test.json").write_text(
            json.dumps({"videos": videos})
        )
    assert demo_cues.main([str(tmp_path), "--demo", str(root)]) == 0
    text = capsys.readouterr().out
    table = {
        line.split()[0]: [float(x) for x in line.split()[1:]] for line in text.splitlines()[2:]
    }
    assert set(table) == {*CUES, "all"}
    assert table["durations"][:2] == pytest.approx([1, 1], abs=0.01)
    assert all(abs(r) < 0.5 for r in table["eye_delay_s"][:2])
    run_accuracy = float(re.search(r"accuracy at 0.5: ([0-9.]+)", text).group(1))
    assert table["durations"][2] == pytest.approx(run_accuracy)
    (tmp_path / "nothing").mkdir()
    assert demo_cues.main([str(tmp_path / "nothing"), "--demo", str(root)]) == 2
    assert "no fold_*/test.json" in capsys.readouterr().err
    assert demo_cues.main([str(tmp_path / "nothing")]) == 2
    assert "nothing: no config.yaml, so not a smile_point.py run" in capsys.readouterr().err
    assert demo_cues.main([str(tmp_path / "nope")]) == 2
    assert "nope: no such folder; give a finished smile_point.py run" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "fold_02")  # a run with a fold not finished
    assert demo_cues.main([str(tmp_path), "--demo", str(root)]) == 2
    assert "finish every fold (smile_point.py --fold all" in capsys.readouterr().err
    (tmp_path / "fold_01" / "test.json").write_text("[]")  # valid JSON of another kind
    assert demo_cues.main([str(tmp_path), "--demo", str(root)]) == 2
    err = capsys.readouterr().err
    assert "fold_01/test.json: not the expected file, a JSON object with videos" in err
    assert len(err.splitlines()) == 1
