"""The D-Marker point tables (data/mesh.py) against the meshes themselves: each right point's
mirror image is its left partner, midline points mirror to themselves, the lip corners lie on
MediaPipe's lip contour (the published code's 62 does not) and every point sits where its name
says on a measured face."""

from __future__ import annotations

import numpy as np
import pytest
from mediapipe.python.solutions.face_mesh_connections import FACEMESH_LIPS

from data.demo_geometry import ASSET_PATH
from data.mesh import DLIB68, MEDIAPIPE
from data.mirror import mirror_permutation

PAIRS = [
    ("right_eye_outer", "left_eye_outer"),
    ("right_eye_inner", "left_eye_inner"),
    ("right_upper_lid", "left_upper_lid"),
    ("right_cheek", "left_cheek"),
    ("right_lip_corner", "left_lip_corner"),
]
MIDLINE = ("nose_tip", "face_top", "chin")


@pytest.mark.parametrize(("points", "n"), [(MEDIAPIPE, 478), (DLIB68, 68)])
def test_right_and_left_points_are_mirror_pairs(points, n):
    perm = mirror_permutation(n)
    for right, left in PAIRS:
        a, b = getattr(points, right), getattr(points, left)
        if a is None:  # dlib has no cheek points
            continue
        assert perm[a] == b and perm[b] == a, (right, left)
    for name in MIDLINE:
        assert perm[getattr(points, name)] == getattr(points, name), name


def test_mediapipe_points_lie_where_their_names_say():
    lips = {i for edge in FACEMESH_LIPS for i in edge}
    assert {MEDIAPIPE.right_lip_corner, MEDIAPIPE.left_lip_corner} <= lips and 62 not in lips
    with np.load(ASSET_PATH) as z:
        face = z["reference"]  # a measured frontal face: x to the image's right, y down
    p = MEDIAPIPE
    x, y = face[:, 0], face[:, 1]
    for right, left in PAIRS:  # the subject's right is the image's left
        assert x[getattr(p, right)] < x[p.nose_tip] < x[getattr(p, left)], right
    for side in ("right", "left"):
        eye, lid = getattr(p, f"{side}_eye_outer"), getattr(p, f"{side}_upper_lid")
        cheek, lip = getattr(p, f"{side}_cheek"), getattr(p, f"{side}_lip_corner")
        assert y[p.face_top] < y[lid] < y[eye] < y[cheek] < y[lip] < y[p.chin], side
        assert abs(x[cheek]) > abs(x[lip])  # the cheek lies outside the lip corner
