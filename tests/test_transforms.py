"""Mirror permutations, normalisation invariances and landmark augmentation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from landmark_synth import synth_video

from data.mesh import points_for, rigid_points_for
from data.mirror import ASSET, mirror_landmarks, mirror_permutation
from data.mirror_derive import derive_mirror, edge_report, face_meshes
from data.normalize import (
    PUBLISHED_MAX,
    PUBLISHED_MIN,
    apply_normalization,
    fit_normalization,
    mirror_center,
    normalize_video,
)
from data.pose import rotation_matrix, similarity_fit
from data.transforms import (
    AugmentConfig,
    RandomMirror,
    RandomRotation,
    RandomScale,
    SpeedJitter,
    build_augment,
)


@pytest.mark.parametrize("n", [478, 468, 68])
def test_mirror_permutation_is_an_involution(n):
    perm = mirror_permutation(n)
    assert sorted(perm) == list(range(n))
    np.testing.assert_array_equal(perm[perm], np.arange(n))
    x = synth_video(5, n)
    np.testing.assert_allclose(mirror_landmarks(mirror_landmarks(x, perm), perm), x, atol=1e-6)


def test_known_mirror_pairs():
    mp478 = mirror_permutation(478)
    for a, b in ((33, 263), (61, 291), (468, 473), (133, 362), (159, 386), (50, 280)):
        assert mp478[a] == b and mp478[b] == a
    assert mp478[1] == 1 and mp478[0] == 0  # nose tip, upper lip centre on the midline
    dlib = mirror_permutation(68)
    for a, b in ((36, 45), (39, 42), (48, 54), (0, 16), (31, 35)):
        assert dlib[a] == b
    assert dlib[30] == 30 and dlib[8] == 8 and dlib[51] == 51


def test_mirror_preserves_mesh_connectivity():
    conn = pytest.importorskip("mediapipe").solutions.face_mesh_connections
    perm = mirror_permutation(478)
    report = edge_report(perm, conn.FACEMESH_TESSELATION)
    assert report["broken"] == []
    assert report["kept"] + len(report["flipped_diagonals"]) == report["edges"]
    assert len(report["flipped_diagonals"]) <= 6  # asymmetric quads of the published tessellation
    for name in ("LIPS", "FACE_OVAL", "NOSE", "IRISES", "CONTOURS"):
        edges = {frozenset(e) for e in getattr(conn, f"FACEMESH_{name}")}
        assert {frozenset(perm[list(e)]) for e in edges} == edges, name
    for left, right in (
        ("LEFT_EYE", "RIGHT_EYE"),
        ("LEFT_EYEBROW", "RIGHT_EYEBROW"),
        ("LEFT_IRIS", "RIGHT_IRIS"),
    ):
        mapped = {frozenset(perm[list(e)]) for e in getattr(conn, f"FACEMESH_{left}")}
        assert mapped == {frozenset(e) for e in getattr(conn, f"FACEMESH_{right}")}
    stored = json.loads(ASSET.read_text())["tessellation"]
    assert stored["broken"] == [] and stored["flipped_diagonals"] == report["flipped_diagonals"]


def test_mirror_asset_regenerates_from_real_photos(pyfeat_data):
    pytest.importorskip("mediapipe")
    from PIL import Image

    images = {
        n: np.asarray(Image.open(pyfeat_data / n).convert("RGB"))
        for n in ("0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "single_face.jpg")
    }
    meshes = face_meshes(images)
    assert len(meshes) == 3
    np.testing.assert_array_equal(derive_mirror(list(meshes.values())), mirror_permutation(478))


def test_mirror_of_symmetric_face_is_itself():
    perm = mirror_permutation(478)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(478, 3))
    side = np.arange(478) < perm  # one point of every left/right pair
    x[perm[side]] = x[side] * np.array([-1.0, 1.0, 1.0])  # its partner is its reflection
    x[perm == np.arange(478), 0] = 0.0  # midline points
    x[:, 0] += 3.0  # about its own centre
    np.testing.assert_allclose(mirror_landmarks(x[None], perm)[0], x, atol=1e-5)


def _random_similarity(rng):
    r = rotation_matrix(*rng.uniform(-0.5, 0.5, 3))
    return r, rng.uniform(0.5, 2.0), rng.uniform(-200, 200, 3)


@pytest.mark.parametrize(
    "method,rotation",
    [
        ("face", False),
        ("face_frontal", True),
        ("face_frame", True),
        ("face_motion", True),
        ("rigid_motion", True),
    ],
)
def test_normalisation_invariance(method, rotation):
    rng = np.random.default_rng(1)
    video = synth_video(12, 478) * np.array([640, 480, 640], dtype=np.float32)
    r, s, t = _random_similarity(rng)
    if not rotation:
        r = np.eye(3)
    moved = (video @ r.T * s + t).astype(np.float32)
    np.testing.assert_allclose(
        normalize_video(moved, method), normalize_video(video, method), atol=2e-4
    )


def test_face_normalisation_units():
    video = synth_video(12, 478) * np.array([640, 480, 640], dtype=np.float32)
    out = normalize_video(video, "face_frame")
    right, left = out[:, [33, 133]].mean(1), out[:, [362, 263]].mean(1)
    np.testing.assert_allclose(right, [[-0.5, 0, 0]] * 12, atol=1e-5)  # eye centres on the x axis
    np.testing.assert_allclose(left, [[0.5, 0, 0]] * 12, atol=1e-5)  # 1 inter-ocular apart
    np.testing.assert_allclose(out[:, 263, 0] - out[:, 33, 0], 1.5, atol=2e-2)
    assert np.all(out[:, 61, 1] > 0)  # mouth below the eyes (+y down)
    face = normalize_video(video, "face")
    iod = np.linalg.norm(face[:, [362, 263]].mean(1) - face[:, [33, 133]].mean(1), axis=-1)
    assert abs(np.median(iod) - 1) < 1e-5


def test_a_degenerate_frame_is_named():
    video = synth_video(12, 478) * np.array([640, 480, 640], dtype=np.float32)
    video[3:6] = 0  # three frames whose landmarks all coincide
    with pytest.raises(ValueError, match=r"^degenerate face in frame 3 and 2 more: inter-ocular"):
        normalize_video(video, "face_motion")
    video[4:6] = video[2]
    with pytest.raises(ValueError, match=r"^degenerate face in frame 3: inter-ocular"):
        normalize_video(video, "face_frame")


def test_face_motion_keeps_the_expression_only():
    """A face that only moves rigidly gives zeros; an expression gives its displacement around
    the mean face, the same whatever the face shape (identity) it is drawn on."""
    rng = np.random.default_rng(2)
    face = synth_video(1, 478)[0] * np.array([640, 480, 640], dtype=np.float32)
    poses = [_random_similarity(rng) for _ in range(10)]
    rigid = np.stack([face @ r.T * s + t for r, s, t in poses]).astype(np.float32)
    np.testing.assert_allclose(normalize_video(rigid, "face_motion"), 0, atol=1e-4)
    smile = np.zeros((10, 478, 3), dtype=np.float32)
    smile[:, [61, 291], 1] = -np.linspace(0, 20, 10)[:, None]  # lip corners rise (pixels)
    smile[:, 61, 0], smile[:, 291, 0] = -smile[:, 61, 1] / 2, smile[:, 61, 1] / 2  # and go out
    other = face + rng.normal(0, 3, face.shape).astype(np.float32)  # another face shape
    other[[33, 133, 362, 263]] = face[[33, 133, 362, 263]]  # same eyes: same scale and axes
    other[[61, 291]] = face[[61, 291]]
    a = normalize_video(face + smile, "face_motion")
    b = normalize_video(other + smile, "face_motion")
    np.testing.assert_allclose(a.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert a[-1, 61, 1] < a[0, 61, 1] - 0.05  # the corner's rise survives (IOD units)


@pytest.mark.parametrize("n", [478, 68])
def test_rigid_motion_leaves_still_points_still(n):
    """Under head motion, lips that smile move the lips only; ``face_motion``, whose frame rests
    on the lip corners too, moves the whole face with them (the eyes included)."""
    rng = np.random.default_rng(5)
    face = synth_video(1, n)[0] * np.array([640, 480, 640], dtype=np.float32)
    p = points_for(n)
    lips = [p.right_lip_corner, p.left_lip_corner]
    smile = np.zeros((10, n, 3), dtype=np.float32)
    smile[:, lips, 1] = -np.linspace(0, 20, 10)[:, None]  # the lip corners rise, out of line
    smile[:, lips, 2] = -np.linspace(0, 10, 10)[:, None]  # with the cheeks: towards the camera
    poses = [_random_similarity(rng) for _ in range(10)]
    video = np.stack([(face + d) @ r.T * s + t for d, (r, s, t) in zip(smile, poses, strict=True)])
    still = np.setdiff1d(np.arange(n), lips)
    rigid = normalize_video(video.astype(np.float32), "rigid_motion")
    np.testing.assert_allclose(rigid[:, still], 0, atol=1e-4)
    assert rigid[-1, lips[0], 1] < rigid[0, lips[0], 1] - 0.05  # the rise, in IOD units
    frame = normalize_video(video.astype(np.float32), "face_motion")
    assert np.abs(frame[:, still]).max() > 0.01


def test_rigid_motion_of_a_window_and_of_flat_points():
    """A window of frames normalises as in the whole video (training clips are windows); dlib's
    flat points (z = 0) moved in the image plane keep their still points still; rigid points that
    coincide are named."""
    rng = np.random.default_rng(6)
    video = synth_video(20, 478, seed=6) * np.array([640, 480, 640], dtype=np.float32)
    params = fit_normalization(video, "rigid_motion")
    whole = apply_normalization(video, params)
    np.testing.assert_allclose(apply_normalization(video[10:20], params), whole[10:20], atol=1e-6)
    face = synth_video(1, 68)[0] * np.array([640, 480, 0], dtype=np.float32)
    smile = np.zeros((8, 68, 3), dtype=np.float32)
    smile[:, [48, 54], 1] = -np.linspace(0, 20, 8)[:, None]
    turns = [rotation_matrix(0, 0, a) for a in rng.uniform(-0.3, 0.3, 8)]  # in-plane roll only
    flat = np.stack(
        [
            (face + d) @ r.T * s
            for d, r, s in zip(smile, turns, rng.uniform(0.8, 1.2, 8), strict=True)
        ]
    )
    out = normalize_video(flat.astype(np.float32), "rigid_motion")
    np.testing.assert_allclose(out[:, np.setdiff1d(np.arange(68), [48, 54])], 0, atol=1e-4)
    video[3, list(rigid_points_for(478))] = video[3, 1]
    with pytest.raises(ValueError, match=r"^degenerate face in frame 3: the spread of its rigid"):
        normalize_video(video, "rigid_motion")


def test_similarity_fit_recovers_a_known_transform():
    rng = np.random.default_rng(7)
    src = rng.normal(size=(4, 25, 3))
    r = rotation_matrix(*rng.uniform(-1, 1, (3, 4)))
    s, t = rng.uniform(0.5, 2, 4), rng.normal(size=(4, 3))
    dst = s[:, None, None] * src @ np.swapaxes(r, -1, -2) + t[:, None, :]
    scale, rot, shift = similarity_fit(src, dst)
    np.testing.assert_allclose(scale, s, rtol=1e-9)
    np.testing.assert_allclose(rot, r, atol=1e-9)
    np.testing.assert_allclose(shift, t, atol=1e-9)
    _, rot, _ = similarity_fit(src[0], src[0] * np.array([-1, 1, 1]))  # a mirror image
    assert np.isclose(np.linalg.det(rot), 1.0)  # is fitted by a rotation, never a reflection
    rigid = src @ np.swapaxes(r, -1, -2) + t[:, None, :]
    scale, rot, shift = similarity_fit(src, 1.5 * rigid, scaled=False)  # no scale: a rigid motion
    np.testing.assert_array_equal(scale, np.ones(4))
    np.testing.assert_allclose(rot, r, atol=1e-9)
    np.testing.assert_allclose(shift, 1.5 * t + 0.5 * (rigid.mean(1) - t), atol=1e-9)


def test_minmax_reproduces_published_scaling():
    raw = synth_video(5, 478)
    video = raw * np.array([1920, 1080, 1920], dtype=np.float32)
    out = normalize_video(video, "minmax", frame_size=(1920, 1080))
    np.testing.assert_allclose(
        out, (raw - PUBLISHED_MIN) / (PUBLISHED_MAX - PUBLISHED_MIN), rtol=1e-5, atol=1e-5
    )
    with pytest.raises(ValueError, match="frame size"):
        normalize_video(video, "minmax")
    np.testing.assert_array_equal(normalize_video(video, "none"), video)


@pytest.mark.parametrize(
    "method", ["face", "face_frontal", "face_frame", "face_motion", "rigid_motion", "minmax"]
)
@pytest.mark.parametrize("n", [478, 68])
def test_mirrored_clip_is_the_clip_of_the_mirror_image(method, n):
    width, height = 640.0, 480.0
    video = synth_video(12, n, seed=4) * np.array([width, height, width], dtype=np.float32)
    perm = mirror_permutation(n)
    image = video[:, perm].copy()  # the video flipped left-right: x -> W - x, points swapped
    image[..., 0] = width - image[..., 0]
    clip = normalize_video(video, method, (width, height))
    mirror = RandomMirror(perm, 1.0, mirror_center(method))
    got = mirror(clip, np.random.default_rng(0))
    want = normalize_video(image, method, (width, height))
    np.testing.assert_allclose(got, want, atol=2e-5 * np.abs(want).max())


def test_augment_parts():
    x = normalize_video(synth_video(8, 478) * np.float32(500), "face")
    rng = np.random.default_rng(0)
    y = RandomRotation(10.0)(x, rng)
    d = np.linalg.norm(x[0, 1:] - x[0, :-1], axis=-1)
    np.testing.assert_allclose(np.linalg.norm(y[0, 1:] - y[0, :-1], axis=-1), d, rtol=1e-4)
    assert not np.allclose(x, y)
    flat_x, flat_y = x.reshape(-1, 3), y.reshape(-1, 3)
    centred = flat_x - flat_x.mean(0)
    r_t = np.linalg.lstsq(centred, flat_y - flat_y.mean(0), rcond=None)[0]  # y - c = (x - c) R^T
    assert np.isclose(np.linalg.det(r_t), 1.0, atol=1e-4)  # a rotation, not a reflection
    turned = np.degrees(np.arccos(np.clip((np.trace(r_t) - 1) / 2, -1, 1)))
    assert 0 < turned <= 30.0  # three turns of at most 10 degrees
    z = RandomScale(0.1)(x, rng)
    ratio = np.linalg.norm(z[0, 1:] - z[0, :-1], axis=-1) / d
    assert np.allclose(ratio, ratio[0], rtol=1e-4) and 0.9 <= ratio[0] <= 1.1
    factors = [SpeedJitter(0.2).factor(rng) for _ in range(200)]
    assert 0.8 <= min(factors) and max(factors) <= 1.2
    aug = build_augment(AugmentConfig(mirror=1.0), 478, "face")
    a = aug.apply(x, np.random.default_rng(5))[0]
    b = aug.apply(x, np.random.default_rng(5))[0]
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape and a.dtype == np.float32
    off = build_augment(
        AugmentConfig(rotate_degrees=0, scale=0, translate=0, speed=0, mirror=0), 68, "face"
    )
    assert off.transforms == () and off.speed_factor(rng) == 1.0
    np.testing.assert_array_equal(off.apply(x, rng)[0], x)
