"""PNG contact sheet: the landmark mesh drawn on a few frames of a video, to check the tracking.

Face frames are drawn in green; frames without a face (filled by interpolation) in orange and
labelled so. Every landmark is drawn as a dot; lines join MediaPipe's contours (face oval, brows,
eyes, lips, nose, plus the iris rings with 478 points) or dlib-68's chains.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from data.files import atomic_write
from data.video import FrameSource

FACE_COLOUR = (60, 220, 60)  # RGB
FILLED_COLOUR = (255, 140, 0)
#: dlib-68 chains (jaw, brows, nose, eyes, lips) as (first, last, closed).
DLIB68_CHAINS = (
    (0, 16, False), (17, 21, False), (22, 26, False), (27, 30, False), (31, 35, False),
    (36, 41, True), (42, 47, True), (48, 59, True), (60, 67, True),
)  # fmt: skip


def mesh_edges(n_landmarks: int) -> np.ndarray:
    """(E, 2) landmark index pairs to draw for a landmark count."""
    if n_landmarks >= 468:
        from mediapipe.python.solutions import face_mesh_connections as fmc

        edges = set(fmc.FACEMESH_CONTOURS) | set(fmc.FACEMESH_NOSE) | set(fmc.FACEMESH_IRISES)
        return np.array(sorted(e for e in edges if max(e) < n_landmarks), dtype=np.int64)
    if n_landmarks == 68:
        pairs = []
        for first, last, closed in DLIB68_CHAINS:
            pairs += [(i, i + 1) for i in range(first, last)]
            pairs += [(last, first)] if closed else []
        return np.array(pairs, dtype=np.int64)
    return np.zeros((0, 2), dtype=np.int64)


def draw_mesh(rgb: np.ndarray, points: np.ndarray, found: bool, label: str) -> np.ndarray:
    """Copy of ``rgb`` (H, W, 3) with ``points`` (V, 3) (x/W, y/H) drawn on it and a label."""
    img = rgb.copy()
    h, w = img.shape[:2]
    xy = np.round(points[:, :2] * (w, h)).astype(np.int32)  # (v, 2) pixels
    colour = FACE_COLOUR if found else FILLED_COLOUR
    thick = max(1, round(w / 640))
    edges = mesh_edges(len(points))
    if len(edges):
        cv2.polylines(img, list(xy[edges]), False, colour, thick, cv2.LINE_AA)
    for x, y in xy:
        cv2.circle(img, (int(x), int(y)), thick, colour, -1)
    scale = w / 640
    org = (round(8 * scale), round(28 * scale))
    cv2.putText(img, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (0, 0, 0), 4 * thick)
    cv2.putText(img, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, colour, thick)
    return img


def sheet_rows(n_rows: int, n_tiles: int) -> list[int]:
    """Up to ``n_tiles`` array rows spread evenly over ``n_rows``, first and last included."""
    return sorted({int(r) for r in np.linspace(0, n_rows - 1, min(n_tiles, n_rows)).round()})


def contact_sheet(
    source: FrameSource,
    landmarks: np.ndarray,
    found: np.ndarray,
    path: str | os.PathLike,
    *,
    stride: int = 1,
    title: str = "",
    n_tiles: int = 8,
    columns: int = 4,
    tile_width: int = 480,
) -> Path:
    """Write a PNG grid of ``n_tiles`` frames with their landmarks drawn; returns its path.

    landmarks: (T, V, 3) normalised, row t = source frame t * stride; found: (T,) 0/1.
    """
    rows = sheet_rows(len(landmarks), n_tiles)
    wanted = {r * stride: r for r in rows}
    tiles = []
    for i, rgb in source.frames(indices=set(wanted)):
        r = wanted[i]
        ok = bool(found[r])
        state = "face" if ok else "no face: filled"
        label = f"row {r}  t={r * stride / source.fps:.2f}s  {state}"
        tile = draw_mesh(rgb, landmarks[r], ok, label)
        h = round(tile.shape[0] * tile_width / tile.shape[1])
        tiles.append(cv2.resize(tile, (tile_width, h), interpolation=cv2.INTER_AREA))
    if not tiles:
        raise ValueError(f"{source.path}: no frame could be read for the contact sheet")
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (-len(tiles) % columns)
    grid = np.vstack([np.hstack(tiles[k : k + columns]) for k in range(0, len(tiles), columns)])
    banner = np.full((40, grid.shape[1], 3), 255, dtype=np.uint8)
    # OpenCV's fonts draw ASCII only, and a name that is not valid UTF-8 would crash it
    title = title.encode("ascii", "replace").decode()
    cv2.putText(banner, title, (10, 27), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 1, cv2.LINE_AA)
    sheet = np.vstack([banner, grid])
    ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"{path}: PNG encoding failed")
    return atomic_write(path, lambda tmp: tmp.write_bytes(png.tobytes()))
