"""D-Marker signals, phases and descriptors (data/dmarker.py) on synthetic faces, known motion."""

from __future__ import annotations

import numpy as np
import pytest
from dmarker_synth import LIP_WIDTH, NEUTRAL, mirror, ramp, random_rotation, synthetic_video
from dmarker_synth import transform as move_face

from data.dmarker import (
    DESCRIPTORS,
    FEATURE_NAMES,
    N_DMARKERS,
    PHASES,
    REGIONS,
    SIGNAL_NAMES,
    amplitude_signals,
    feature_index,
    video_descriptors,
)
from data.smile_phases import find_phases

FPS = 25.0
T = 100
# lip corners: still until frame 20, out by 10 px over 10 frames, held 30, back over 15 frames
START, N_UP, HOLD, N_DOWN, SHIFT = 20, 10, 30, 15, 10.0


def feats(result) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, result.features.astype(np.float64), strict=True))


def smile(n_landmarks=478, *, left_gain=1.0, lid=0.0, cheek=0.0, seed=0, t=T):
    s = ramp(t, START, N_UP, HOLD, N_DOWN, SHIFT)
    return synthetic_video(
        n_landmarks, t, lip_right=s, lip_left=left_gain * s, lid=lid * s / SHIFT,
        cheek=cheek * s / SHIFT, seed=seed,
    )  # fmt: skip


def neutral_eyelid() -> float:
    """k * rho(mid(l1, l3), l2) / rho(l1, l3) of the neutral synthetic face, by hand: its lid
    lies above its corners on the face's vertical (face top -> chin, along y), not on the axis
    from the eyes towards the nose tip, which that tip (30 px out) tilts into depth."""
    names = ("right_eye_outer", "right_upper_lid", "right_eye_inner")
    l1, l2, l3 = (np.array(NEUTRAL[k]) for k in names)
    assert (l2 - 0.5 * (l1 + l3))[1] < 0  # above the corner midpoint: k = +1
    return np.linalg.norm(l2 - 0.5 * (l1 + l3)) / np.linalg.norm(l1 - l3)


def test_feature_names_and_order():
    assert N_DMARKERS == len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == 225
    assert len(DESCRIPTORS) == 25 and len(SIGNAL_NAMES) == 9
    assert FEATURE_NAMES[0] == "lip_onset_duration_inc"
    assert FEATURE_NAMES[25] == "lip_apex_duration_inc"
    assert FEATURE_NAMES[75] == "eyelid_onset_duration_inc"
    assert FEATURE_NAMES[-1] == "cheek_offset_lr_amplitude_diff"
    for r in REGIONS:
        for p in PHASES:
            for d in DESCRIPTORS:
                assert FEATURE_NAMES[feature_index(r, p, d)] == f"{r}_{p}_{d}"


def test_ramp_gives_hand_computed_descriptors():
    """Unsmoothed: D_lip = 0.5 + shift / lip width exactly, so every value is known."""
    res = video_descriptors(smile(), FPS, smooth=False, eyelid="paper")
    a = SHIFT / LIP_WIDTH  # 0.2: amplitude of D_lip above its first-frame 0.5
    assert res.phases == (START, START + N_UP, START + N_UP + HOLD, START + N_UP + HOLD + N_DOWN)
    assert res.status == "ok" and res.cheek_available
    f = feats(res)
    k = np.arange(1, N_UP + 1)
    onset = 0.5 + a * k / N_UP  # D of the onset frames
    speed = a / N_UP * FPS
    expected = {
        "duration_inc": N_UP / FPS, "duration_dec": 0.0, "duration": N_UP / FPS,
        "duration_ratio_inc": 1.0, "duration_ratio_dec": 0.0,
        "amplitude_max": 0.5 + a, "amplitude_mean": onset.mean(),
        "amplitude_mean_inc": onset.mean(), "amplitude_mean_dec": 0.0,
        "amplitude_std": onset.std(), "amplitude_total_inc": onset.sum(),
        "amplitude_total_dec": 0.0, "amplitude_net": onset.sum(),
        "amplitude_ratio_inc": 1.0, "amplitude_ratio_dec": 0.0,
        "speed_max_inc": speed, "speed_max_dec": 0.0,
        "speed_mean_inc": speed, "speed_mean_dec": 0.0,
        # at rest before the onset: the first onset frame accelerates by speed * fps, then none
        "accel_max_inc": speed * FPS, "accel_max_dec": 0.0,
        "accel_mean_inc": speed * FPS / N_UP, "accel_mean_dec": 0.0,
        "net_amplitude_duration_ratio": onset.sum() * FPS / N_UP, "lr_amplitude_diff": 0.0,
    }  # fmt: skip
    for name, value in expected.items():
        assert f[f"lip_onset_{name}"] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    # apex: held at 0.5 + a, no motion
    assert f["lip_apex_duration"] == pytest.approx(HOLD / FPS)
    assert f["lip_apex_amplitude_mean"] == pytest.approx(0.5 + a, rel=1e-6)
    assert f["lip_apex_amplitude_std"] == pytest.approx(0.0, abs=1e-6)
    for name in ("duration_inc", "duration_dec", "speed_max_inc", "speed_max_dec", "accel_max_dec"):
        assert f[f"lip_apex_{name}"] == 0.0
    # offset: back to 0.5 over N_DOWN frames
    offset = 0.5 + a * (1 - np.arange(1, N_DOWN + 1) / N_DOWN)
    down = a / N_DOWN * FPS
    assert f["lip_offset_duration_dec"] == pytest.approx(N_DOWN / FPS)
    assert f["lip_offset_duration_ratio_dec"] == pytest.approx(1.0)
    assert f["lip_offset_amplitude_total_dec"] == pytest.approx(offset.sum(), rel=1e-6)
    assert f["lip_offset_amplitude_net"] == pytest.approx(-offset.sum(), rel=1e-6)
    assert f["lip_offset_amplitude_ratio_dec"] == pytest.approx(1.0)
    assert f["lip_offset_speed_max_dec"] == pytest.approx(down, rel=1e-5)
    assert f["lip_offset_speed_mean_dec"] == pytest.approx(down, rel=1e-5)
    assert f["lip_offset_accel_max_dec"] == pytest.approx(down * FPS, rel=1e-5)
    assert f["lip_offset_net_amplitude_duration_ratio"] == pytest.approx(
        -offset.sum() * FPS / N_DOWN, rel=1e-6
    )
    # still eyes and cheeks: constant signals, known levels, no speed anywhere
    for p in PHASES:
        assert f[f"eyelid_{p}_amplitude_mean"] == pytest.approx(neutral_eyelid(), rel=1e-6)
        assert f[f"cheek_{p}_amplitude_mean"] == pytest.approx(0.5, rel=1e-6)
        assert f[f"eyelid_{p}_speed_max_inc"] == f[f"cheek_{p}_speed_max_dec"] == 0.0


def test_ramp_with_smoothing_stays_close():
    res = video_descriptors(smile(), FPS)  # 4253H,twice rounds the ramp's corners
    f = feats(res)
    b0, b1, b2, b3 = res.phases
    assert abs(b0 - START) <= 2 and abs(b1 - START - N_UP) <= 2
    assert abs(b3 - (START + N_UP + HOLD + N_DOWN)) <= 2
    assert abs((b1 - b0) - N_UP) <= 4
    assert f["lip_onset_duration"] == pytest.approx((b1 - b0) / FPS)
    assert f["lip_onset_speed_max_inc"] == pytest.approx(SHIFT / LIP_WIDTH / N_UP * FPS, rel=0.05)
    assert f["lip_apex_amplitude_mean"] == pytest.approx(0.5 + SHIFT / LIP_WIDTH, abs=0.005)


def test_left_right_difference():
    """The left corner moves twice as far: lr difference = mean(D_L - D_R) over the onset."""
    res = video_descriptors(smile(left_gain=2.0), FPS, smooth=False)
    a = SHIFT / LIP_WIDTH
    assert feats(res)["lip_onset_lr_amplitude_diff"] == pytest.approx(
        a * (N_UP + 1) / (2 * N_UP), rel=1e-5
    )
    assert feats(res)["lip_apex_lr_amplitude_diff"] == pytest.approx(a, rel=1e-5)


def test_mirrored_face_has_no_left_right_difference():
    res = video_descriptors(smile(lid=2.0, cheek=3.0), FPS)
    sig = res.signals
    for region in range(3):
        np.testing.assert_allclose(sig[:, 3 * region + 1], sig[:, 3 * region + 2], atol=1e-7)
    lr = [feature_index(r, p, "lr_amplitude_diff") for r in REGIONS for p in PHASES]
    np.testing.assert_allclose(res.features[lr], 0.0, atol=1e-7)


def test_mirroring_swaps_left_and_right():
    video = smile(left_gain=1.7, lid=2.0, cheek=3.0)
    res, mir = video_descriptors(video, FPS), video_descriptors(mirror(video), FPS)
    swap = [0, 2, 1, 3, 5, 4, 6, 8, 7]
    np.testing.assert_allclose(mir.signals, res.signals[:, swap], atol=1e-6)
    lr = np.array([n.endswith("lr_amplitude_diff") for n in FEATURE_NAMES])
    np.testing.assert_allclose(mir.features[lr], -res.features[lr], atol=1e-6)
    np.testing.assert_allclose(mir.features[~lr], res.features[~lr], rtol=1e-5, atol=1e-6)
    assert np.abs(res.features[lr]).max() > 0.01


@pytest.mark.parametrize("seed", range(12))
def test_apex_lies_between_onset_and_offset(seed):
    rng = np.random.default_rng(seed)
    t = int(rng.integers(40, 200))
    start, n_up, hold, n_down = (int(rng.integers(1, t // 4)) for _ in range(4))
    s = ramp(t, start, n_up, hold, n_down, rng.uniform(3, 15))
    video = synthetic_video(478, t, lip_right=s, lip_left=s * rng.uniform(0.5, 1.5), seed=seed)
    video += rng.normal(0, 0.2, video.shape)  # tracking jitter
    res = video_descriptors(video, 30.0)
    b0, b1, b2, b3 = res.phases
    assert 0 <= b0 <= b1 <= b2 <= b3 <= t - 1
    lip = res.signals[:, 0].astype(np.float64)
    assert np.all(np.diff(lip[b0 : b1 + 1]) > 0)  # onset: a continuous rise
    assert np.all(np.diff(lip[b2 : b3 + 1]) < 0)  # offset: a continuous fall after it
    f = feats(res)
    durations = [f[f"lip_{p}_duration"] for p in PHASES]
    np.testing.assert_allclose(durations, np.diff(res.phases) / 30.0, rtol=1e-6)
    assert np.isfinite(res.features).all()


def _relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b).max(axis=0), 1e-3)))


@pytest.mark.parametrize("seed", range(4))
def test_signals_invariant_to_pose_translation_and_scale(seed):
    rng = np.random.default_rng(seed)
    video = smile(left_gain=1.3, lid=2.5, cheek=3.0, seed=seed)
    video += rng.normal(0, 0.3, video.shape)
    # a different random rotation (up to 30 degrees), translation and scale in every frame
    rots = np.stack([random_rotation(rng, np.pi / 6) for _ in range(T)])
    moved = move_face(video, rots, rng.normal(0, 50, (T, 3)), rng.uniform(0.5, 3.0, T))
    raw0, _ = amplitude_signals(video)
    raw1, _ = amplitude_signals(moved)
    assert _relative_error(raw1, raw0) < 1e-9
    a, b = video_descriptors(video, FPS), video_descriptors(moved, FPS)
    assert _relative_error(b.raw_signals, a.raw_signals) < 1e-6
    assert _relative_error(b.signals, a.signals) < 1e-6
    assert a.phases == b.phases
    np.testing.assert_allclose(b.features, a.features, rtol=1e-5, atol=1e-5)
    # one global transform too
    glob = move_face(video, random_rotation(rng, np.pi / 6), [100.0, -40.0, 7.0], 0.37)
    assert _relative_error(video_descriptors(glob, FPS).signals, a.signals) < 1e-6


def test_duchenne_eyes_and_cheeks_follow_the_smile():
    res = video_descriptors(smile(lid=3.0, cheek=4.0), FPS, smooth=False)
    f = feats(res)
    assert f["eyelid_onset_duration_dec"] == pytest.approx(N_UP / FPS)  # lid lowers all onset
    assert f["eyelid_apex_amplitude_mean"] < neutral_eyelid() - 0.05
    assert f["eyelid_offset_duration_inc"] == pytest.approx(N_DOWN / FPS)
    assert f["cheek_onset_duration_inc"] == pytest.approx(N_UP / FPS)
    half_width = -NEUTRAL["right_cheek"][0]  # cheeks move up: |(half width, 4)| / width
    expected = np.hypot(half_width, 4.0) / (2 * half_width)
    assert f["cheek_apex_amplitude_mean"] == pytest.approx(expected, rel=1e-6)


def test_vertical_eyelid_mode_is_the_signed_height():
    still = video_descriptors(smile(), FPS, smooth=False, eyelid="vertical")
    l1, l3 = np.array(NEUTRAL["right_eye_outer"]), np.array(NEUTRAL["right_eye_inner"])
    lid = np.array(NEUTRAL["right_upper_lid"])
    height = -(lid - 0.5 * (l1 + l3))[1] / np.linalg.norm(l1 - l3)  # the face's vertical: y
    assert feats(still)["eyelid_apex_amplitude_mean"] == pytest.approx(height, rel=1e-6)
    closing = video_descriptors(smile(lid=3.0), FPS, smooth=False, eyelid="vertical")
    assert feats(closing)["eyelid_apex_amplitude_mean"] < height - 0.05
    with pytest.raises(ValueError, match="eyelid must be one of"):
        video_descriptors(smile(), FPS, eyelid="depth")


def test_phase_rules_longest_and_largest():
    # a short big rise, then a long shallow drift down, then a short big fall
    rise = np.linspace(0, 1, 6)[1:]  # frames 5..9
    drift = 1 - 0.001 * np.arange(1, 21)  # frames 10..29
    fall = np.linspace(drift[-1], 0.3, 6)[1:]  # frames 32..36, after two still frames
    lip = 0.5 + np.r_[np.zeros(5), rise, drift, drift[-1], drift[-1], fall]
    (b0, b1, b2, b3), _ = find_phases(lip, "longest")
    assert (b0, b1) == (4, 9) and (b2, b3) == (9, 29)  # the paper: most frames = the drift
    (b0, b1, b2, b3), _ = find_phases(lip, "largest")
    assert (b0, b1) == (4, 9) and (b2, b3) == (31, 36)  # biggest fall
    with pytest.raises(ValueError, match="phase rule"):
        find_phases(lip, "median")


@pytest.mark.parametrize("n_landmarks", [468, 68])
def test_other_landmark_sets(n_landmarks):
    ref = video_descriptors(smile(478, lid=2.0, cheek=3.0), FPS)
    res = video_descriptors(smile(n_landmarks, lid=2.0, cheek=3.0), FPS)
    lip_eyes = slice(0, 150)  # lip and eyelid blocks
    np.testing.assert_allclose(res.features[lip_eyes], ref.features[lip_eyes], rtol=1e-5, atol=1e-6)
    if n_landmarks == 68:
        assert not res.cheek_available
        assert np.all(res.features[150:] == 0.0) and np.all(res.signals[:, 6:] == 0.0)
    else:
        assert res.cheek_available
        np.testing.assert_array_equal(res.features, ref.features)


# ---- edge cases: a defined outcome, finite values, never an exception -------------------------


def _check_finite(res, t):
    assert res.features.shape == (N_DMARKERS,) and res.features.dtype == np.float32
    assert res.signals.shape == (t, 9) and res.raw_signals.shape == (t, 9)
    assert np.isfinite(res.features).all() and np.isfinite(res.signals).all()


def test_one_frame_video():
    res = video_descriptors(smile(t=1), FPS)
    _check_finite(res, 1)
    assert res.status == "short" and res.phases == (0, 0, 0, 0)
    assert np.all(res.features == 0.0)  # three empty phases


def test_two_frame_video():
    video = synthetic_video(478, 2, lip_right=np.array([0.0, 2.0]), lip_left=np.array([0.0, 2.0]))
    res = video_descriptors(video, FPS)
    _check_finite(res, 2)
    assert res.status == "short" and res.phases == (0, 1, 1, 1)  # one rising frame = onset
    assert feats(res)["lip_onset_duration"] == pytest.approx(1 / FPS)
    assert feats(res)["lip_onset_speed_max_inc"] == pytest.approx(2.0 / LIP_WIDTH * FPS, rel=1e-5)


def test_flat_signal_is_all_apex():
    res = video_descriptors(synthetic_video(478, 50), FPS)
    _check_finite(res, 50)
    assert res.status == "flat" and res.phases == (0, 0, 49, 49)
    f = feats(res)
    assert f["lip_onset_duration"] == f["lip_offset_duration"] == 0.0
    assert f["lip_apex_duration"] == pytest.approx(49 / FPS)
    assert f["lip_apex_amplitude_mean"] == pytest.approx(0.5)
    assert np.all(res.features[:25] == 0) and np.all(res.features[50:75] == 0)


def test_rise_without_fall():
    s = ramp(60, 10, 12, 100, 0, 8.0)  # never comes back
    res = video_descriptors(synthetic_video(478, 60, lip_right=s, lip_left=s), FPS, smooth=False)
    _check_finite(res, 60)
    assert res.status == "no_fall" and res.phases == (10, 22, 59, 59)
    f = feats(res)
    assert f["lip_offset_duration"] == 0.0 and f["lip_apex_duration"] == pytest.approx(37 / FPS)


def test_fall_without_rise():
    s = 8.0 - ramp(60, 30, 10, 100, 0, 8.0)  # starts smiling, relaxes
    res = video_descriptors(synthetic_video(478, 60, lip_right=s, lip_left=s), FPS, smooth=False)
    _check_finite(res, 60)
    assert res.status == "no_rise" and res.phases == (0, 0, 30, 40)
    assert feats(res)["lip_onset_duration"] == 0.0


def test_every_frame_filled_by_interpolation():
    video = smile()
    res = video_descriptors(video, FPS, face_found=np.zeros(T, dtype=int))
    _check_finite(res, T)
    assert res.status == "no_face" and res.phases == (0, 0, 0, 0)
    assert np.all(res.features == 0) and np.all(res.signals == 0)
    # a partly filled video is measured as usual
    partly = np.ones(T, dtype=int)
    partly[40:50] = 0
    assert video_descriptors(video, FPS, face_found=partly).status == "ok"


def test_a_gap_filled_by_interpolation_never_makes_a_phase():
    """A filled gap is a straight line: its 20 rising steps would outrun a tracked onset that
    jitter breaks into runs of 5 (the paper's longest rise). Measured by the steps between frames
    with a face, the onset is the tracked one, and the offset after it."""
    dips = np.r_[np.tile([1.0, 1, 1, 1, 1, -0.5], 4)]  # 24 steps: runs of 5 rising steps
    onset = np.cumsum(dips) * 10.0 / dips.sum()  # 0 -> 10 px over frames 20-43
    jitter = np.tile([0.05, -0.05], 8)
    shift = np.r_[np.zeros(20), onset, 10 + jitter, np.linspace(10, 10.2, 20), 10.2 + jitter[:6]]
    shift = np.r_[shift, np.linspace(10.2, 0, 10), np.zeros(100 - len(shift) - 10)]
    found = np.ones(100, dtype=int)
    found[60:80] = 0  # frames 60-79: the straight line of the filled gap
    video = synthetic_video(478, 100, lip_right=shift, lip_left=shift)
    blind = video_descriptors(video, FPS, smooth=False)
    b0, b1, _, _ = blind.phases
    assert 59 <= b0 and b1 >= 79  # the gap taken for the onset
    res = video_descriptors(video, FPS, smooth=False, face_found=found)
    assert res.phases == (19, 24, 86, 95) and res.status == "ok"  # the first 5-step rise


def test_bad_input_raises_a_clear_error():
    video = smile()
    with pytest.raises(ValueError, match="NaN"):
        bad = video.copy()
        bad[3, 61, 0] = np.nan
        video_descriptors(bad, FPS)
    with pytest.raises(ValueError, match="unsupported landmark count 100"):
        video_descriptors(np.zeros((5, 100, 3)), FPS)
    with pytest.raises(ValueError, match="fps must be a positive number"):
        video_descriptors(video, 0.0)
    with pytest.raises(ValueError, match=r"expected landmarks \(t >= 1, v, 3\)"):
        video_descriptors(np.zeros((0, 478, 3)), FPS)
    with pytest.raises(ValueError, match="degenerate face geometry"):
        video_descriptors(np.zeros((5, 478, 3)), FPS)
    with pytest.raises(ValueError, match="face_found has 3 entries for 100 frames"):
        video_descriptors(video, FPS, face_found=[1, 1, 1])


def test_a_video_starting_during_the_onset_has_no_start_up_acceleration():
    """A smile already rising at frame 0 at a constant speed: the onset's accelerations are 0 (the
    first speed, at frame 1, has no earlier speed to differ from; it used to count as a jump from
    rest, V[1] * fps)."""
    s = ramp(60, 0, 20, 20, 15, 10.0)
    res = video_descriptors(synthetic_video(478, 60, lip_right=s, lip_left=s), FPS, smooth=False)
    assert res.phases[0] == 0
    f = feats(res)
    assert f["lip_onset_speed_max_inc"] > 0.1
    assert f["lip_onset_accel_max_inc"] == pytest.approx(0.0, abs=1e-6)
    assert f["lip_onset_accel_mean_inc"] == pytest.approx(0.0, abs=1e-6)
