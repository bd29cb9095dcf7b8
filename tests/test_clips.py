"""Training windows, deterministic test windows, masks, per-video scores, D-Marker targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dmarker_synth import synthetic_video
from landmark_synth import make_folder_dataset, write_csv, write_video

from data.clips import (
    ClipConfig,
    TestWindows,
    TrainClips,
    n_target_frames,
    video_scores,
    window_starts,
)
from data.datasets import open_dataset
from data.dmarker import FEATURE_NAMES, video_descriptors
from data.dmarker_table import DMarkerTable
from data.mirror import mirror_permutation
from data.targets import DMarkerScaler
from data.transforms import Augment, AugmentConfig, RandomMirror, build_augment


def _ramp_dataset(root, lengths_fps):
    """Videos whose frame t holds the value t everywhere (so sampled positions can be read back)."""
    rows = []
    for i, (n_frames, fps) in enumerate(lengths_fps):
        arr = np.broadcast_to(
            np.arange(n_frames, dtype=np.float32)[:, None, None], (n_frames, 68, 3)
        ).copy()
        write_video(root / "npy", f"v{i}.mp4", arr, fps=fps, width=1, height=1)
        rows.append((f"v{i}.mp4", i % 2, f"s{i}"))
    write_csv(root / "labels.csv", rows)
    return open_dataset("folder", root)


def _frames(item):
    return item["x"][:, 0, 0].numpy()


def test_resampling_to_target_fps(tmp_path):
    ds = _ramp_dataset(tmp_path, [(100, 50.0), (60, 30.0), (40, 25.0)])
    cfg = ClipConfig(window=8, target_fps=25.0, normalize="none")
    tw = TestWindows(ds, ["v0.mp4", "v1.mp4", "v2.mp4"], cfg)
    np.testing.assert_allclose(_frames(tw[0]), np.arange(0, 16, 2))  # 50 fps: every other frame
    v1 = tw[[j for j, _ in tw.windows].index(1)]
    np.testing.assert_allclose(_frames(v1), np.arange(8) * 1.2, atol=1e-5)  # 30 -> 25 interpolated
    assert {j for j, _ in tw.windows} == {0, 1, 2}
    train = TrainClips(ds, ["v0.mp4"], cfg, seed=0)
    for epoch in range(5):
        train.set_epoch(epoch)
        f = _frames(train[0])
        assert f[0] == int(f[0]) and np.all(np.diff(f) == 2)  # real frames, step 2


def test_test_windows_cover_whole_video_deterministically(tmp_path):
    ds = _ramp_dataset(tmp_path, [(77, 25.0), (16, 25.0), (33, 25.0)])
    cfg = ClipConfig(window=16, target_fps=25.0, normalize="none")
    names = ["v0.mp4", "v1.mp4", "v2.mp4"]
    tw = TestWindows(ds, names, cfg)
    again = TestWindows(ds, names, cfg)
    assert [j for j, _ in tw.windows] == [0] * 5 + [1] + [2] * 3
    for i in range(len(tw)):
        a, b = tw[i], again[i]
        assert torch.equal(a["x"], b["x"]) and torch.equal(a["mask"], b["mask"])
        assert a["mask"].all()
    seen = np.concatenate([_frames(tw[i]) for i in range(5)])
    assert set(seen.astype(int)) == set(range(77))
    assert _frames(tw[4])[-1] == 76  # last window ends on the last frame
    assert window_starts(77, 16, 8) == [0, 8, 16, 24, 32, 40, 48, 56, 61]
    assert n_target_frames(250, 50.0, 25.0) == 125


def test_short_video_is_padded_and_masked(tmp_path):
    ds = _ramp_dataset(tmp_path, [(5, 25.0), (12, 50.0)])
    cfg = ClipConfig(window=10, target_fps=25.0, normalize="none")
    for clips in (
        TestWindows(ds, ["v0.mp4", "v1.mp4"], cfg),
        TrainClips(ds, ["v0.mp4", "v1.mp4"], cfg),
    ):
        a, b = clips[0], clips[1]
        assert a["mask"].tolist() == [True] * 5 + [False] * 5
        np.testing.assert_array_equal(_frames(a), [0, 1, 2, 3, 4, 4, 4, 4, 4, 4])  # not zeros
        assert b["mask"].tolist() == [True] * 6 + [False] * 4
    assert len(TestWindows(ds, ["v0.mp4"], cfg)) == 1


def test_train_clips_deterministic_and_resumable(tmp_path):
    make_folder_dataset(tmp_path, n_subjects=2, per_subject=2, n_frames=60)
    ds = open_dataset("folder", tmp_path)
    names = sorted(ds.videos)
    cfg = ClipConfig(window=8)
    aug = build_augment(AugmentConfig(), ds.n_landmarks, cfg.normalize)
    a = TrainClips(ds, names, cfg, augment=aug, seed=3)
    b = TrainClips(ds, names, cfg, augment=aug, seed=3)
    a.set_epoch(7)
    b.set_epoch(7)
    assert torch.equal(a[1]["x"], b[1]["x"])
    b.set_epoch(8)
    assert not torch.equal(a[1]["x"], b[1]["x"])
    c = TrainClips(ds, names, cfg, augment=aug, seed=4)
    c.set_epoch(7)
    assert not torch.equal(a[1]["x"], c[1]["x"])
    item = a[2]
    assert item["x"].shape == (8, 478, 3) and item["x"].dtype == torch.float32
    assert item["label"].item() == ds.videos[names[2]].label and item["index"] == 2
    assert not item["has_dmarker"] and torch.all(item["dmarker"] == 0)


def test_training_never_reads_test_videos(tmp_path):
    make_folder_dataset(tmp_path, n_subjects=4, per_subject=2)
    ds = open_dataset("folder", tmp_path)
    split = ds.split(1, val_fraction=0.34)

    class Guarded(type(ds)):
        def landmarks(self, name):
            if name in split.test:
                raise AssertionError(f"test video {name} read during training")
            return super().landmarks(name)

    ds.__class__ = Guarded
    clips = TrainClips(ds, split.train, ClipConfig(window=8), seed=0)
    loader = torch.utils.data.DataLoader(clips, batch_size=3, num_workers=2)
    batches = list(loader)
    assert sum(len(b["index"]) for b in batches) == len(split.train)
    assert batches[0]["x"].shape == (3, 8, 478, 3) and batches[0]["mask"].dtype == torch.bool
    for name in split.val:
        TestWindows(ds, [name], ClipConfig(window=8))[0]
    with pytest.raises(AssertionError, match="test video"):
        TestWindows(ds, list(split.test), ClipConfig(window=8))[0]


def test_video_scores():
    scores = video_scores(np.array([0.2, 0.4, 1.0, 0.0, 0.5]), np.array([0, 0, 1, 2, 2]), 3)
    np.testing.assert_allclose(scores, [0.3, 1.0, 0.25])
    with pytest.raises(ValueError, match="at least one window"):
        video_scores([0.1, 0.2], [0, 2], 3)


def _table(n=10, seed=0):
    rng = np.random.default_rng(seed)
    feats = rng.normal(5.0, 3.0, (n, 225)).astype(np.float32)
    feats[:, 10] = 7.0  # a constant feature
    mirrored = feats + rng.normal(0.0, 1.0, feats.shape).astype(np.float32)
    return DMarkerTable(names=[f"v{i}.mp4" for i in range(n)], features=feats, mirrored=mirrored)


def test_dmarker_scaler_uses_training_part_only():
    table = _table()
    train = [f"v{i}" for i in range(6)]  # fold names without extension
    table.features[6:] += 1000.0  # test rows far off: must not move the statistics
    scaler = DMarkerScaler.fit(table, train)
    z = np.stack(list(scaler.targets(table, train).values()))[:, 0]  # the videos, not mirrored
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z[:, [0, 50]].std(0), 1, atol=1e-4)
    assert np.all(z[:, 10] == 0)
    test = scaler.targets(table, ["v7", "missing"])
    assert list(test) == ["v7"] and test["v7"][0].mean() > 100


def test_dmarker_targets_hold_the_video_and_its_mirror_image():
    table = _table()
    scaler = DMarkerScaler.fit(table, [f"v{i}" for i in range(6)])
    z = scaler.targets(table, ["v1"])["v1"]
    assert z.shape == (2, 225)
    np.testing.assert_allclose(z[0] * scaler.std + scaler.mean, table.get("v1"), rtol=1e-5)
    np.testing.assert_allclose(z[1] * scaler.std + scaler.mean, table.mirrored[1], rtol=1e-5)
    np.testing.assert_allclose(scaler.at_speed(z[0], 1.0), z[0], atol=1e-6)


def test_mirrored_clips_take_the_mirror_images_targets(tmp_path):
    make_folder_dataset(tmp_path, n_subjects=2, per_subject=2)
    ds = open_dataset("folder", tmp_path)
    names = sorted(ds.videos)
    targets = {n: np.stack([np.zeros(225), np.ones(225)]).astype(np.float32) for n in names}
    cfg = ClipConfig(window=4)
    for p, want in ((0.0, 0.0), (1.0, 1.0)):
        augment = Augment(RandomMirror(mirror_permutation(ds.n_landmarks), p))
        clips = TrainClips(ds, names, cfg, augment=augment, targets=targets)
        assert all(torch.all(clips[i]["dmarker"] == want) for i in range(len(names)))


def _smile_video(speed: float, fps: float = 50.0) -> np.ndarray:
    """An 8 s smile (smooth rises and falls of lips, lids and cheeks) played ``speed`` x faster."""
    t = np.arange(int(8 * fps / speed)) * speed / fps  # content time of each frame, s

    def bump(rise0, rise1, fall0, fall1, amplitude):
        ease = lambda u: 0.5 - 0.5 * np.cos(np.pi * np.clip(u, 0, 1))  # noqa: E731
        return amplitude * (
            ease((t - rise0) / (rise1 - rise0)) - ease((t - fall0) / (fall1 - fall0))
        )

    lip = bump(1.0, 2.0, 4.0, 5.5, 8.0)
    return synthetic_video(
        478,
        len(t),
        lip_right=lip,
        lip_left=0.8 * lip,
        lid=bump(1.3, 2.1, 4.2, 5.0, 3.0),
        cheek=bump(1.1, 2.2, 4.0, 5.6, 4.0),
    )


def test_speed_adjusted_targets_match_a_faster_video():
    """at_speed(2) predicts the D-Markers of the same smile played twice as fast (every
    descriptor of the strong onset/offset movements; the mean accelerations are left out: they
    are sums of second differences that nearly cancel, dominated by discretisation)."""
    slow, fast = (
        video_descriptors(_smile_video(s), 50.0, smooth=False).features for s in (1.0, 2.0)
    )
    identity = DMarkerScaler(np.zeros(len(FEATURE_NAMES)), np.ones(len(FEATURE_NAMES)))
    predicted = identity.at_speed(slow, 2.0)
    checked = [
        i
        for i, name in enumerate(FEATURE_NAMES)
        if name.split("_")[0] in ("lip", "cheek")
        and name.split("_")[1] in ("onset", "offset")
        and "accel_mean" not in name
    ]
    assert len(checked) == 2 * 2 * 23
    for i in checked:
        assert predicted[i] == pytest.approx(fast[i], rel=0.1, abs=1e-3), FEATURE_NAMES[i]
    totals = [i for i in checked if "amplitude_total" in FEATURE_NAMES[i] and slow[i] > 1]
    assert len(totals) == 4 and np.allclose(fast[totals] / slow[totals], 0.5, atol=0.02)


def test_degenerate_face_names_the_file(tmp_path):
    make_folder_dataset(tmp_path, n_subjects=2, per_subject=1)
    write_video(tmp_path / "npy", "subj 1 clip 0.mp4", np.zeros((24, 478, 3)))
    ds = open_dataset("folder", tmp_path)
    windows = TestWindows(ds, sorted(ds.videos), ClipConfig(window=4))
    assert windows[0]["x"].shape == (4, 478, 3)  # a real face
    with pytest.raises(ValueError, match=r"subj 1 clip 0.mp4.npy: degenerate face.*re-extract"):
        windows[len(windows) - 1]


def test_videos_without_a_face_give_no_target():
    table = _table()
    table.status = ["ok"] * 9 + ["no_face"]
    scaler = DMarkerScaler.fit(table, [f"v{i}" for i in range(10)])
    assert "v9" not in scaler.targets(table, ["v8", "v9"])


def test_clips_carry_dmarker_targets(tmp_path):
    make_folder_dataset(tmp_path, n_subjects=2, per_subject=2)
    ds = open_dataset("folder", tmp_path)
    names = sorted(ds.videos)
    ones = np.ones((3, 225), np.float32)
    table = DMarkerTable(names=names[:3], features=ones, mirrored=ones)
    targets = {n: np.full((2, 225), i, np.float32) for i, n in enumerate(names[:3])}
    assert DMarkerScaler.fit(table, names).targets(table, names).keys() == targets.keys()
    clips = TrainClips(ds, names, ClipConfig(window=4), targets=targets)
    assert clips[2]["has_dmarker"] and torch.all(clips[2]["dmarker"] == 2)
    assert not clips[3]["has_dmarker"]


def test_clip_config_validation():
    with pytest.raises(ValueError, match="normalize"):
        ClipConfig(normalize="global")
    with pytest.raises(ValueError, match="window"):
        ClipConfig(window=0)
