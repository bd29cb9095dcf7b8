"""Duchenne-marker (D-Marker) signals, smile phases and the 225 descriptors of one video.

Follows Dibeklioglu, Salah & Gevers (ECCV 2012; IEEE TMM 17(3), 2015) as summarised in
``shared/NOTES.md`` section 1, without the published code's defects (radians throughout, symmetric
lip corners 61/291, eyelid sign from the face's vertical, one phase segmentation from D_lip shared
by all regions, real fps, whole video, eyelid block kept).

Pipeline for a video (t, v, 3) in isotropic pixels (``data.io.to_isotropic``):

1. pose: the eleven D-Marker points are mapped into each frame's face frame (``data.pose``);
2. signals (t, 9), dimensionless, see :data:`SIGNAL_NAMES`; superscript 1 = first frame:
   ``lip_R = |mid(l10^1, l11^1) - l10^t| / |l10^1 - l11^1|``, ``lip_L`` likewise with l11,
   ``lip = (lip_R + lip_L) / 2`` (0.5 in the first frame); ``cheek*`` the same with l7, l8;
   ``eyelid_R = k * |mid(l1, l3) - l2| / |l1 - l3|`` and ``eyelid_L`` with l4, l5, l6 over the
   same right-eye width |l1 - l3| (so ``eyelid = (eyelid_R + eyelid_L) / 2`` as in the paper),
   all in frame t; k = -1 when the lid lies below the corner midpoint on the face's vertical
   axis, else +1 (``eyelid="paper"``). That axis is the first frame's face top -> chin line
   (MediaPipe 10 -> 152, dlib 27 -> 8) in the face frame, less its part along the eye line: the
   face frame's own y axis lies in the plane of the eyes and nose tip, which the nose tilts ~45
   degrees into depth on 3-D points (an open eye's lid then read below its corners on most
   faces). ``eyelid="vertical"`` (the default) uses the signed lid height above the corner
   midpoint on that axis instead of k * rho: with 3-D MediaPipe points the lid sits ~0.3 eye
   widths in front of its corners, so k * rho moves less as the eye closes (0.31 open, 0.20
   closed on the demo's reference mesh, against a height of 0.23 and 0.04). Either way, eye
   narrowing lowers it;
3. smoothing: 4253H,twice on each of the 9 signals (``data.smoothing``); videos of < 3 frames are
   not smoothed;
4. phases from the smoothed D_lip (``data.smile_phases``), shared by all three regions: onset =
   the longest continuous rise (``phase_rule="longest"``, the paper; ``"largest"`` picks the
   rise with the biggest amplitude instead, robust to long shallow drifts), offset = the
   longest (largest) continuous fall that starts at or after the onset's end, apex between;
   runs are measured by their steps between two frames with a face (``face_found``), so a gap
   filled by interpolation, a straight noise-free line, never makes a phase;
5. 25 descriptors per (region, phase) (:func:`phase_descriptors`), 3 x 3 x 25 = 225 values.

Frame conventions. Speed ``V[t] = (D[t] - D[t-1]) * fps`` (1/s) and acceleration
``A[t] = (V[t] - V[t-1]) * fps`` (1/s^2) exist from frames 1 and 2 on; the acceleration
descriptors leave frame 1 out (its A would compare V[1] with a speed before the video began,
inflating them when a video starts during the onset). A frame rises (in D+) when
``D[t] - D[t-1] > RISE_TOL`` and falls (in D-) when it is ``< -RISE_TOL``. Phase boundaries
``(b0, b1, b2, b3)`` are frame indices: onset is the rise from frame b0 to b1 and owns frames
b0+1..b1 (its last frame is the peak), apex owns b1+1..b2, offset owns b2+1..b3.
A phase's eta(D) is its number of owned frames, so its duration is eta(D) / fps.

Edge cases (never NaN, never an exception for a well-formed video; see :data:`STATUSES`):
no rise in D_lip -> onset has zero length at frame 0; no fall after the onset -> offset has zero
length at the last frame; flat signal -> the whole video is apex; 1-2 frames -> not smoothed, the
same rules (a 1-frame video has three empty phases); a descriptor over an empty set (empty
phase, no rising or no falling frame, zero total amplitude) is 0. All frames filled by
interpolation (``face_found`` all 0) -> no measurement: signals and features are 0, phases
(0, 0, 0, 0). dlib-68 has no cheek points: cheek signals and the cheek block are
:data:`CHEEK_FILL` and ``cheek_available`` is False.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.mesh import DLIB68, DLIB68_UPPER_LID_PAIRS, points_for
from data.pose import apply_frames, face_frames
from data.smile_phases import DEFAULT_PHASE_RULE, PHASE_RULES, RISE_TOL, find_phases
from data.smoothing import smooth_4253h_twice

REGIONS = ("lip", "eyelid", "cheek")
PHASES = ("onset", "apex", "offset")
#: The 25 descriptors of one (region, phase), in feature order. "inc" = over the rising frames
#: D+, "dec" = over the falling frames D- (absolute values). Units: durations s, speeds 1/s,
#: accelerations 1/s^2, amplitudes dimensionless (totals are sums over frames).
DESCRIPTORS = (
    "duration_inc",  # eta(D+) / fps
    "duration_dec",  # eta(D-) / fps
    "duration",  # eta(D) / fps
    "duration_ratio_inc",  # eta(D+) / eta(D)
    "duration_ratio_dec",  # eta(D-) / eta(D)
    "amplitude_max",  # max D
    "amplitude_mean",  # sum D / eta(D)
    "amplitude_mean_inc",  # sum D+ / eta(D+)
    "amplitude_mean_dec",  # sum |D-| / eta(D-)
    "amplitude_std",  # population std of D
    "amplitude_total_inc",  # sum D+
    "amplitude_total_dec",  # sum |D-|
    "amplitude_net",  # sum D+ - sum |D-|
    "amplitude_ratio_inc",  # sum |D+| / (sum |D+| + sum |D-|)  (= the paper's for D >= 0)
    "amplitude_ratio_dec",  # sum |D-| / (sum |D+| + sum |D-|)
    "speed_max_inc",  # max V over D+
    "speed_max_dec",  # max |V| over D-
    "speed_mean_inc",  # sum V over D+ / eta(D+)
    "speed_mean_dec",  # sum |V| over D- / eta(D-)
    "accel_max_inc",  # max A over D+
    "accel_max_dec",  # max |A| over D-
    "accel_mean_inc",  # sum A over D+ / eta(D+)
    "accel_mean_dec",  # sum |A| over D- / eta(D-)
    "net_amplitude_duration_ratio",  # (sum D+ - sum |D-|) * fps / eta(D)
    "lr_amplitude_diff",  # (sum D_L - sum D_R) / eta(D)
)
#: "<region>_<phase>_<descriptor>", region-major, then phase, then descriptor:
#: index = (region * 3 + phase) * 25 + descriptor.
FEATURE_NAMES = tuple(f"{r}_{p}_{d}" for r in REGIONS for p in PHASES for d in DESCRIPTORS)
N_DMARKERS = len(FEATURE_NAMES)  # 225
#: Columns of the per-frame signals (R / L = the subject's right / left half).
SIGNAL_NAMES = (
    "lip",
    "lip_R",
    "lip_L",
    "eyelid",
    "eyelid_R",
    "eyelid_L",
    "cheek",
    "cheek_R",
    "cheek_L",
)
#: Value of the cheek signals and of the 75 cheek descriptors when the landmark set has no cheeks.
CHEEK_FILL = 0.0
#: Eyelid distance: "paper" = k * rho as published (3-D distance, signed on the face's vertical);
#: "vertical" = signed lid height above the corner midpoint on the face's vertical (continuous
#: through 0, see README).
#: Default "vertical": on MediaPipe's 3-D mesh the lid sits ~0.3 eye widths in front of its
#: corners, so the 3-D distance is dominated by depth and k * rho jumps from +0.3 to -0.3 when the
#: lid crosses the corner line; the vertical component is the quantity the paper's k measures.
EYELID_MODES = ("paper", "vertical")
DEFAULT_EYELID = "vertical"
#: Smallest first-frame lip/cheek width and eye width (inter-ocular units) accepted.
MIN_WIDTH = 1e-6
#: ok: rise and later fall found; no_fall: no fall after the onset; no_rise: D_lip never rises;
#: flat: neither; short: < 3 frames (unsmoothed); no_face: every frame was filled, nothing measured.
STATUSES = ("ok", "no_fall", "no_rise", "flat", "short", "no_face")


@dataclass(frozen=True, eq=False)
class DMarkerResult:
    """D-Markers of one video."""

    features: np.ndarray  # (225,) float32, order FEATURE_NAMES
    signals: np.ndarray  # (t, 9) float32 smoothed, columns SIGNAL_NAMES
    raw_signals: np.ndarray  # (t, 9) float32 before smoothing
    phases: tuple[int, int, int, int]  # (onset_start, apex_start, offset_start, offset_end)
    cheek_available: bool
    status: str  # one of STATUSES


def feature_index(region: str, phase: str, descriptor: str) -> int:
    """Position of a descriptor in the 225-vector."""
    return (REGIONS.index(region) * len(PHASES) + PHASES.index(phase)) * len(DESCRIPTORS) + (
        DESCRIPTORS.index(descriptor)
    )


def _dmarker_points(landmarks: np.ndarray) -> tuple[np.ndarray, bool]:
    """The points l1..l11 of every frame (t, 11, 3) float64 and whether l7/l8 (cheeks) exist.

    Every point is the mean of two landmarks, the same one twice except the dlib-68 upper-lid
    centres (means of the two upper-lid points). Without cheeks the cheek slots repeat the nose
    tip as placeholders (never read). Only these landmarks are gathered and converted.
    """
    p = points_for(landmarks.shape[1])
    has_cheeks = p.right_cheek is not None
    cheeks = (p.right_cheek, p.left_cheek) if has_cheeks else (p.nose_tip, p.nose_tip)
    first = [
        p.right_eye_outer, p.right_upper_lid, p.right_eye_inner,
        p.left_eye_inner, p.left_upper_lid, p.left_eye_outer,
        *cheeks, p.nose_tip, p.right_lip_corner, p.left_lip_corner,
    ]  # fmt: skip
    second = list(first)
    if p is DLIB68:
        (first[1], second[1]), (first[4], second[4]) = DLIB68_UPPER_LID_PAIRS
    pts = landmarks[:, first].astype(np.float64) + landmarks[:, second].astype(np.float64)
    return 0.5 * pts, has_cheeks


def _corner_signal(right: np.ndarray, left: np.ndarray, what: str) -> np.ndarray:
    """[D, D_R, D_L] (t, 3) of a pair of points (t, 3) relative to their first-frame midpoint."""
    mid = 0.5 * (right[0] + left[0])
    width = np.linalg.norm(right[0] - left[0])
    if width <= MIN_WIDTH:
        raise ValueError(f"degenerate face geometry: the {what} coincide in the first frame")
    r = np.linalg.norm(right - mid, axis=-1) / width
    lft = np.linalg.norm(left - mid, axis=-1) / width
    return np.stack([0.5 * (r + lft), r, lft], axis=-1)


def _face_down(ends: np.ndarray) -> np.ndarray:
    """The face's vertical (3,), a unit vector towards the chin in face coordinates, from the
    first frame's face top and chin (2, 3) in its face frame, less their offset along the eye
    line (x). Not the face frame's own y axis: that lies in the plane of the eyes and nose tip,
    which the nose tilts ~45 degrees into depth on 3-D (MediaPipe) points."""
    down = ends[1] - ends[0]
    down[0] = 0.0
    norm = np.linalg.norm(down)
    if norm <= MIN_WIDTH:
        raise ValueError("degenerate face geometry: the face's top and chin coincide in frame 0")
    return down / norm


def _eyelid_signal(pts: np.ndarray, down: np.ndarray, eyelid: str) -> np.ndarray:
    """[D, D_R, D_L] (t, 3) of the eyelids from pose-normalised points l1..l11 (t, 11, 3) and
    the face's vertical ``down`` (3,) (:func:`_face_down`).

    ``eyelid="paper"``: k * rho (3-D distance, sign from the face's vertical);
    ``"vertical"``: the signed height of the lid above the corner midpoint on that axis.
    """
    l1, l2, l3, l4, l5, l6 = (pts[:, i] for i in range(6))
    width = np.linalg.norm(l1 - l3, axis=-1)  # (t,)
    if (width <= MIN_WIDTH).any():
        raise ValueError("degenerate face geometry: the right eye corners coincide in some frame")
    mid_r, mid_l = 0.5 * (l1 + l3), 0.5 * (l4 + l6)
    below_r, below_l = (l2 - mid_r) @ down, (l5 - mid_l) @ down  # (t,): > 0 below the midpoint
    if eyelid == "vertical":
        r, lft = -below_r / width, -below_l / width
    else:
        r = np.where(below_r > 0, -1.0, 1.0) * np.linalg.norm(l2 - mid_r, axis=-1) / width
        lft = np.where(below_l > 0, -1.0, 1.0) * np.linalg.norm(l5 - mid_l, axis=-1) / width
    return np.stack([0.5 * (r + lft), r, lft], axis=-1)


def amplitude_signals(
    landmarks: np.ndarray, eyelid: str = DEFAULT_EYELID
) -> tuple[np.ndarray, bool]:
    """Unsmoothed D-Marker signals of a video (t, v, 3) isotropic. -> ((t, 9) float64, cheeks?).

    ``eyelid`` is one of :data:`EYELID_MODES`.
    """
    if eyelid not in EYELID_MODES:
        raise ValueError(f"eyelid must be one of {EYELID_MODES}, got {eyelid!r}")
    landmarks = np.asarray(landmarks)
    pts, has_cheeks = _dmarker_points(landmarks)
    right_eye, left_eye = 0.5 * (pts[:, 0] + pts[:, 2]), 0.5 * (pts[:, 3] + pts[:, 5])
    frames = face_frames(right_eye, left_eye, pts[:, 8])
    pts = apply_frames(pts, *frames)
    p = points_for(landmarks.shape[1])
    ends = apply_frames(landmarks[:1, [p.face_top, p.chin]], *(f[:1] for f in frames))
    lip = _corner_signal(pts[:, 9], pts[:, 10], "lip corners")
    eyelid_sig = _eyelid_signal(pts, _face_down(ends[0]), eyelid)
    if has_cheeks:
        cheek = _corner_signal(pts[:, 6], pts[:, 7], "cheek points")
    else:
        cheek = np.full_like(lip, CHEEK_FILL)
    return np.concatenate([lip, eyelid_sig, cheek], axis=-1), has_cheeks


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, 0 where b == 0."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return np.divide(a, b, out=np.zeros(a.shape), where=b != 0)


def _masked_max(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Max of x over the last axis where mask, 0 where the mask is empty."""
    x, mask = np.broadcast_arrays(x, mask)
    return np.where(mask.any(-1), np.where(mask, x, -np.inf).max(-1, initial=-np.inf), 0.0)


def phase_descriptors(
    signals: np.ndarray, phases: tuple[int, int, int, int], fps: float
) -> np.ndarray:
    """The 25 descriptors of each (region, phase). signals (t, 9) -> (3, 3, 25) float64."""
    t = signals.shape[0]
    s = np.asarray(signals, dtype=np.float64).T.reshape(len(REGIONS), 3, t)
    d, d_r, d_l = s[:, 0], s[:, 1], s[:, 2]  # (3 regions, t)
    step = np.zeros_like(d)
    step[:, 1:] = np.diff(d, axis=-1)
    v = step * fps
    a = np.zeros_like(v)
    a[:, 2:] = np.diff(v[:, 1:], axis=-1) * fps
    frames = np.arange(t)
    b = phases
    in_phase = np.stack([(frames > b[k]) & (frames <= b[k + 1]) for k in range(3)])  # (3 phases, t)
    ph = in_phase[None]  # (1, 3, t)
    up = ph & (step > RISE_TOL)[:, None]  # rising frames of each phase (3 regions, 3 phases, t)
    dn = ph & (step < -RISE_TOL)[:, None]  # falling frames
    up_a, dn_a = up & (frames >= 2), dn & (frames >= 2)  # ... that have an acceleration
    d, d_r, d_l, v, a = (x[:, None] for x in (d, d_r, d_l, v, a))  # (3, 1, t)
    n = np.broadcast_to(ph.sum(-1), up.shape[:2]).astype(np.float64)  # (3, 3)
    n_up, n_dn = up.sum(-1).astype(np.float64), dn.sum(-1).astype(np.float64)
    sum_d = (ph * d).sum(-1)
    sum_up = (up * d).sum(-1)
    sum_dn = (dn * np.abs(d)).sum(-1)
    # ratio denominators use |D+| too: the paper's form for non-negative signals (lip, cheek),
    # bounded in [0, 1] for the signed eyelid signal instead of exploding near sum D+ = -sum|D-|
    total = (up * np.abs(d)).sum(-1) + sum_dn
    mean_d = _div(sum_d, n)
    std_d = np.sqrt(_div((ph * (d - mean_d[..., None]) ** 2).sum(-1), n))
    feats = [
        n_up / fps,
        n_dn / fps,
        n / fps,
        _div(n_up, n),
        _div(n_dn, n),
        _masked_max(d, ph),
        mean_d,
        _div(sum_up, n_up),
        _div(sum_dn, n_dn),
        std_d,
        sum_up,
        sum_dn,
        sum_up - sum_dn,
        _div(total - sum_dn, total),
        _div(sum_dn, total),
        _masked_max(v, up),
        _masked_max(np.abs(v), dn),
        _div((up * v).sum(-1), n_up),
        _div((dn * np.abs(v)).sum(-1), n_dn),
        _masked_max(a, up_a),
        _masked_max(np.abs(a), dn_a),
        _div((up_a * a).sum(-1), up_a.sum(-1)),
        _div((dn_a * np.abs(a)).sum(-1), dn_a.sum(-1)),
        _div((sum_up - sum_dn) * fps, n),
        _div((ph * (d_l - d_r)).sum(-1), n),
    ]
    return np.stack([np.broadcast_to(f, n.shape) for f in feats], axis=-1)


def check_options(eyelid: str, phase_rule: str) -> None:
    """ValueError unless ``eyelid`` is one of :data:`EYELID_MODES` and ``phase_rule`` one of
    :data:`PHASE_RULES`."""
    if eyelid not in EYELID_MODES:
        raise ValueError(f"eyelid must be one of {EYELID_MODES}, got {eyelid!r}")
    if phase_rule not in PHASE_RULES:
        raise ValueError(f"phase_rule must be one of {PHASE_RULES}, got {phase_rule!r}")


def _check(landmarks: np.ndarray, fps: float, face_found, eyelid: str, phase_rule: str) -> None:
    if landmarks.ndim != 3 or landmarks.shape[-1] != 3 or landmarks.shape[0] == 0:
        raise ValueError(f"expected landmarks (t >= 1, v, 3), got shape {landmarks.shape}")
    points_for(landmarks.shape[1])  # raises for an unsupported landmark count
    if not np.isfinite(landmarks).all():
        raise ValueError("landmarks contain NaN or inf; re-run extract_landmarks.py")
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    check_options(eyelid, phase_rule)
    if face_found is not None and len(face_found) != landmarks.shape[0]:
        raise ValueError(
            f"face_found has {len(face_found)} entries for {landmarks.shape[0]} frames"
        )


def video_descriptors(
    landmarks: np.ndarray,
    fps: float,
    *,
    face_found=None,
    smooth: bool = True,
    eyelid: str = DEFAULT_EYELID,
    phase_rule: str = DEFAULT_PHASE_RULE,
) -> DMarkerResult:
    """D-Markers of a whole video.

    Args:
        landmarks: (t, v, 3) isotropic units (pixels), v in {478, 468, 68}.
        fps: the frame rate of the rows (omega), frames per second.
        face_found: optional (t,) 0/1 per frame from the extraction sidecar; all 0 -> "no_face".
        smooth: 4253H,twice before phases and descriptors (False only for analysis and tests).
        eyelid: eyelid distance, one of :data:`EYELID_MODES` (default: :data:`DEFAULT_EYELID`).
        phase_rule: onset/offset choice, one of :data:`PHASE_RULES` (default: the paper's).
    Raises ValueError for malformed input (shape, landmark count, NaN, fps, degenerate faces).
    """
    landmarks = np.asarray(landmarks)
    fps = float(fps)
    _check(landmarks, fps, face_found, eyelid, phase_rule)
    t = landmarks.shape[0]
    has_cheeks = points_for(landmarks.shape[1]).right_cheek is not None
    if face_found is not None and not np.any(face_found):
        zeros = np.zeros((t, len(SIGNAL_NAMES)), dtype=np.float32)
        return DMarkerResult(
            features=np.zeros(N_DMARKERS, dtype=np.float32), signals=zeros, raw_signals=zeros,
            phases=(0, 0, 0, 0), cheek_available=has_cheeks, status="no_face",
        )  # fmt: skip
    raw, has_cheeks = amplitude_signals(landmarks, eyelid)
    sig = smooth_4253h_twice(raw.T).T if smooth else raw
    phases, status = find_phases(sig[:, 0], phase_rule, face_found)
    feats = phase_descriptors(sig, phases, fps)
    if not has_cheeks:
        feats[REGIONS.index("cheek")] = CHEEK_FILL
    return DMarkerResult(
        features=feats.reshape(-1).astype(np.float32),
        signals=sig.astype(np.float32),
        raw_signals=raw.astype(np.float32),
        phases=phases,
        cheek_available=has_cheeks,
        status=status,
    )
