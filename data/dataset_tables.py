"""Which D-Marker table a dataset reads (:meth:`data.datasets.SmileDataset.dmarkers`), and
whether it still describes the dataset's landmark files."""

from __future__ import annotations

import filecmp
from collections.abc import Mapping
from pathlib import Path

from data.dmarker_table import DMarkerTable, fingerprint, load_dmarker_table


def find_table(root: Path, landmarks_dir: Path) -> Path | None:
    """The ``dmarkers.npz`` under ``root`` or ``landmarks_dir`` (where both hold one, they must
    be copies: which one describes the landmarks is not for us to guess); None when neither."""
    candidates = (root / "dmarkers.npz", landmarks_dir / "dmarkers.npz")
    found = {p.resolve(): p for p in candidates if p.is_file()}
    if len(found) > 1 and not filecmp.cmp(*found.values(), shallow=False):
        a, b = found.values()
        raise ValueError(
            f"two D-Marker tables, {a} and {b}: name the one made from {landmarks_dir} with "
            "--set data.dmarkers=FILE, or delete the other"
        )
    return next(iter(found.values()), None)


def checked_table(
    path: Path, videos: Mapping, landmarks_dir: Path, command: str, named: bool, guessed: bool
) -> DMarkerTable:
    """The table at ``path`` for ``videos`` ({name: data.datasets.Video}), refused when stale:
    built from other landmark files, a video's file or sidecar changed since, or measured at
    another frame rate or frame aspect ratio than the dataset's (the size itself cancels: every
    distance is in the face's own units). ``command`` rebuilds it; ``named``: the config
    names the table (data.dmarkers), so naming another is no fix; ``guessed``: the kind's default
    rate and size are guesses (not UvA-NEMO's), so a table of other values may be the right one."""
    table = load_dmarker_table(path, command)
    fix = f"rebuild it: {command}"
    stems = {v: v.file.name[: -len(".npy")] for v in videos.values()}
    # videos without a row are refused where a run needs their row (require_dmarkers)
    rows = {v: table.index(s) for v, s in stems.items() if s in table}
    changed = [v for v, i in rows.items() if tuple(table.fingerprints[i]) != fingerprint(v.file)]
    name_own = "" if named else "name their own with --set data.dmarkers=FILE, or "
    if changed and len(changed) == len(rows) > 1:
        raise ValueError(
            f"{path}: built from other landmark files than the {len(rows)} under {landmarks_dir} "
            "(another landmark folder's table, or all re-extracted or copied since: a copy's "
            f"files are newer); {name_own}{fix}"
        )
    if changed:
        raise ValueError(f"{path}: {changed[0].file.name} changed since the table was built; {fix}")
    columns = (  # for a value that was the kind's default
        " (or, if its video is as the table says, give labels.csv's fps,width,height columns: a "
        "file without a sidecar takes them, else the kind's default)"
    )
    for v, i in rows.items():
        if table.fps is not None and abs(float(table.fps[i]) - v.fps) > 1e-6 * v.fps:
            rate = "" if "--fps" in command or "--labels" in command else f" --fps {v.fps:g}"
            raise ValueError(
                f"{path}: {v.name} was measured at {table.fps[i]:g} fps but the dataset plays it "
                f"at {v.fps:g} fps; {fix}{rate}"
                + (columns if guessed and "fps" in v.assumed else "")
            )
        width, height = table.frame_size[i]
        if abs(width / height - v.width / v.height) > 1e-6 * v.width / v.height:
            raise ValueError(  # the landmarks' x and y in pixels: another aspect, other distances
                f"{path}: {v.name} was measured in a {width:g}x{height:g} frame but the dataset's "
                f"is {v.width}x{v.height} (another aspect ratio, so other distances); {fix}"
                + (columns if guessed and {"width", "height"} & set(v.assumed) else "")
            )
    return table
