"""Per-frame pose normalisation (data/pose.py): rotation tests in radians, invariance, errors."""

from __future__ import annotations

import numpy as np
import pytest
from dmarker_synth import CENTRE, NEUTRAL, random_rotation, synthetic_video, transform

from data.mesh import MEDIAPIPE
from data.pose import IOD, face_frames, normalize_pose, rotation_matrix


def test_rotation_matrix_uses_radians():
    # a quarter turn in radians must really turn: x -> -z for yaw pi/2 (Ry), y -> z for pitch
    np.testing.assert_allclose(rotation_matrix(np.pi / 2, 0, 0) @ [1, 0, 0], [0, 0, -1], atol=1e-12)
    np.testing.assert_allclose(rotation_matrix(0, np.pi / 2, 0) @ [0, 1, 0], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(rotation_matrix(0, 0, np.pi / 2) @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    r = rotation_matrix(0.3, -0.2, 0.1)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)


def test_rotation_matrix_broadcasts_over_frames():
    angles = np.random.default_rng(0).uniform(-1, 1, (3, 5))
    batched = rotation_matrix(*angles)
    assert batched.shape == (5, 3, 3)
    for t in range(5):
        np.testing.assert_array_equal(batched[t], rotation_matrix(*angles[:, t]))
    assert rotation_matrix(angles[0], 0.0, 0.0).shape == (5, 3, 3)


def test_canonical_frame_of_a_face():
    video = synthetic_video(478, 3)
    out = normalize_pose(video)
    right_eye = 0.5 * (out[:, MEDIAPIPE.right_eye_outer] + out[:, MEDIAPIPE.right_eye_inner])
    left_eye = 0.5 * (out[:, MEDIAPIPE.left_eye_outer] + out[:, MEDIAPIPE.left_eye_inner])
    nose = out[:, MEDIAPIPE.nose_tip]
    np.testing.assert_allclose(right_eye, [[-IOD / 2, 0, 0]] * 3, atol=1e-12)
    np.testing.assert_allclose(left_eye, [[IOD / 2, 0, 0]] * 3, atol=1e-12)
    # the eye-nose plane faces the camera (z = 0), the nose is straight "down" (+y)
    np.testing.assert_allclose(nose[:, [0, 2]], 0, atol=1e-12)
    eye_mid = 0.5 * (np.array(NEUTRAL["right_eye_outer"]) + NEUTRAL["right_eye_inner"])
    eye_mid[0] = 0.0  # the midpoint of both eye centres
    expected_y = np.linalg.norm(np.array(NEUTRAL["nose_tip"]) - eye_mid) / 60.0  # / IOD (px)
    np.testing.assert_allclose(nose[:, 1], expected_y, rtol=1e-12)


@pytest.mark.parametrize(
    "angles", [(0.4, 0.0, 0.0), (0.0, -0.35, 0.0), (0.0, 0.0, 0.5), (0.3, 0.2, -0.4)]
)
def test_known_rotation_is_undone(angles):
    """A face turned by known angles (radians) normalises to the unturned face's coordinates."""
    video = synthetic_video(478, 4, lip_right=np.linspace(0, 5, 4), lip_left=np.linspace(0, 3, 4))
    turned = transform(video, rotation_matrix(*angles), [12.0, -7.0, 3.0], 1.7)
    np.testing.assert_allclose(normalize_pose(turned), normalize_pose(video), atol=1e-9)

    # and the recovered rotation differs from the unturned one by exactly the applied rotation
    def frames(v):
        p = MEDIAPIPE
        right = 0.5 * (v[:, p.right_eye_outer] + v[:, p.right_eye_inner])
        left = 0.5 * (v[:, p.left_eye_outer] + v[:, p.left_eye_inner])
        return face_frames(right, left, v[:, p.nose_tip])

    _, rot0, s0 = frames(video)
    _, rot1, s1 = frames(turned)
    np.testing.assert_allclose(rot1, rot0 @ rotation_matrix(*angles).T, atol=1e-12)
    np.testing.assert_allclose(s0 / s1, 1.7, rtol=1e-12)


def test_per_frame_random_pose_is_removed():
    rng = np.random.default_rng(3)
    t = 20
    video = synthetic_video(478, t, lip_right=np.linspace(0, 8, t), lid=np.linspace(0, 3, t))
    rots = np.stack([random_rotation(rng, np.pi / 6) for _ in range(t)])
    moved = transform(video, rots, rng.normal(0, 30, (t, 3)), rng.uniform(0.5, 2.0, t))
    out = normalize_pose(moved)
    np.testing.assert_allclose(out, normalize_pose(video), atol=1e-9)
    assert np.linalg.det(face_frames(out[:, 33], out[:, 263], out[:, 1])[1]).min() > 0.999


def test_degenerate_frames_raise():
    eyes = np.zeros((2, 3))
    with pytest.raises(ValueError, match="degenerate face geometry in 2 frame"):
        face_frames(eyes, eyes, eyes + 1)
    right, left = CENTRE - [30, 0, 0], CENTRE + [30, 0, 0]
    with pytest.raises(ValueError, match="nose tip lies on the eye line"):
        face_frames(right[None], left[None], CENTRE[None] + [10, 0, 0])
