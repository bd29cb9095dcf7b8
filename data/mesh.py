"""Landmark index tables for the two landmark sets the toolkit reads.

Side names are the subject's: "right" is the subject's right (image left in a frontal view).
The eleven D-Marker points follow Dibeklioglu et al. (ECCV 2012): eye corners l1, l3 (right eye)
and l4, l6 (left eye), upper-eyelid centres l2, l5, cheek centres l7, l8, nose tip l9, lip corners
l10 (right), l11 (left).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DMarkerPoints:
    """Indices of the D-Marker points in one landmark set; ``None`` where the set has none."""

    right_eye_outer: int  # l1
    right_upper_lid: int  # l2
    right_eye_inner: int  # l3
    left_eye_inner: int  # l4
    left_upper_lid: int  # l5
    left_eye_outer: int  # l6
    right_cheek: int | None  # l7
    left_cheek: int | None  # l8
    nose_tip: int  # l9
    right_lip_corner: int  # l10
    left_lip_corner: int  # l11
    face_top: int  # top of the face's midline: with chin, its vertical axis (not a paper point)
    chin: int


#: MediaPipe face mesh (468 points, or 478 with the refined iris points 468-477).
MEDIAPIPE = DMarkerPoints(
    right_eye_outer=33,
    right_upper_lid=159,
    right_eye_inner=133,
    left_eye_inner=362,
    left_upper_lid=386,
    left_eye_outer=263,
    right_cheek=50,
    left_cheek=280,
    nose_tip=1,
    right_lip_corner=61,
    left_lip_corner=291,
    face_top=10,
    chin=152,
)

#: dlib / iBUG 68-point layout (0-based). No cheek points; the upper-lid centre is the mean of
#: the two upper-lid points (37, 38 and 43, 44), see :data:`DLIB68_UPPER_LID_PAIRS`.
DLIB68 = DMarkerPoints(
    right_eye_outer=36,
    right_upper_lid=37,
    right_eye_inner=39,
    left_eye_inner=42,
    left_upper_lid=44,
    left_eye_outer=45,
    right_cheek=None,
    left_cheek=None,
    nose_tip=30,
    right_lip_corner=48,
    left_lip_corner=54,
    face_top=27,
    chin=8,
)
DLIB68_UPPER_LID_PAIRS = ((37, 38), (43, 44))

#: Eye centres used for face-centred normalisation (mean of the two eye corners).
MEDIAPIPE_EYES = ((33, 133), (362, 263))
DLIB68_EYES = ((36, 39), (42, 45))


# fmt: off
#: Points that an expression hardly moves, for aligning frames (``rigid_motion`` normalisation):
#: MediaPipe's nose ridge, forehead and upper face oval (mirror-symmetric), ...
RIGID_MEDIAPIPE = (1, 4, 5, 6, 168, 195, 197, 10, 151, 9, 8, 109, 67, 103, 54, 21, 162, 127, 338,
                   297, 332, 284, 251, 389, 356)
#: ... and dlib's upper nose ridge and inner eye corners: dlib's points are flat (z = 0), so only
#: points at one depth keep still when the head turns (the nose tip and the face outline do not).
RIGID_DLIB68 = (27, 28, 39, 42)
# fmt: on


def points_for(n_landmarks: int) -> DMarkerPoints:
    """The index table for a landmark count: 468/478 -> MediaPipe, 68 -> dlib."""
    if n_landmarks in (468, 478):
        return MEDIAPIPE
    if n_landmarks == 68:
        return DLIB68
    raise ValueError(
        f"unsupported landmark count {n_landmarks}: expected 478 or 468 (MediaPipe) or 68 (dlib)"
    )


def eye_pairs_for(n_landmarks: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(right eye corners, left eye corners) for a landmark count."""
    return DLIB68_EYES if points_for(n_landmarks) is DLIB68 else MEDIAPIPE_EYES


def rigid_points_for(n_landmarks: int) -> tuple[int, ...]:
    """The rigid points (:data:`RIGID_MEDIAPIPE` or :data:`RIGID_DLIB68`) for a landmark count."""
    return RIGID_DLIB68 if points_for(n_landmarks) is DLIB68 else RIGID_MEDIAPIPE
