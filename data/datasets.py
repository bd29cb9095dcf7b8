"""A dataset = landmark files + labels + subjects + folds, for UvA-NEMO, BBC, MMI, SPOS, any folder
of videos with a labels CSV, and the synthetic demo.

Layout under a dataset root (``uva/``, ``bbc/``, ...):

- ``npy/<video name with extension>.npy`` (+ optional sidecar ``.json``); MMI ``npy/<session>.npy``,
  SPOS ``npy/<clip folder>.npy``.
- ``labels/<k>/{train,test}.json``: fold files, ``{name: 1 spontaneous | 0 posed}``; names with or
  without the video extension. Without fold files, stratified subject-independent folds are made
  from ``seed`` and written there (with ``folds_meta.json``; delete the folder to regenerate).
- ``labels.csv`` (required for ``folder``/``demo``, optional otherwise): video,label,subject
  [,fps,width,height]; it overrides the per-kind subject rules (see data/subjects.py).
- ``dmarkers.npz``: the D-Marker table (``dmarker.py``), under the root or the landmarks folder.
- ``demo.json``: marks a generated demo dataset (``python -m data.demo --out DIR``).

Frame rate and size come from each sidecar; for files without one (published landmark files) from
labels.csv's fps,width,height columns (any kind), then the per-kind
:data:`data.frame_info.DATASET_DEFAULTS`.
"""

from __future__ import annotations

import hashlib
import shlex
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.dataset_fixes import landmark_fix, no_landmarks
from data.dataset_tables import checked_table, find_table
from data.fold_check import check_folds
from data.folds import (
    GENERATED_META,
    Fold,
    GeneratedFolds,
    fold_dirs,
    fold_files,
    generate_folds,
    read_fold_files,
    resolve_fold,
    split_train_val,
)
from data.frame_info import DATASET_DEFAULTS, video_frame_info
from data.io import meta_path
from data.mmi_subjects import UNVERIFIABLE
from data.names import landmark_index
from data.store import (
    FileStore,
    PackedStore,
    check_point_counts,
    landmark_store,
    npy_shape,
)
from data.subjects import labels_for, read_labels_csv, subjects_for
from data.video_list import (
    check_generated,
    check_no_copies,
    match_files,
    source_names,
    warn_unlisted,
)

KINDS = ("uva", "bbc", "mmi", "spos", "folder", "demo")


#: Folds made when none exist: k per kind (SPOS: leave one subject out, k = number of subjects).
DEFAULT_FOLDS_K = {"uva": 10, "bbc": 10, "mmi": 9, "spos": None, "folder": 10, "demo": 5}


@dataclass(frozen=True)
class Video:
    name: str  # the key used in fold files
    file: Path  # landmark .npy
    label: int  # 1 spontaneous, 0 posed
    subject: str
    fps: float  # of the array rows
    width: int
    height: int
    n_frames: int = 0
    assumed: tuple[str, ...] = ()  # those of fps, width, height that are the kind's defaults


@dataclass(frozen=True)
class Split:
    """Names of one fold's parts: inner train, inner validation (from the fold's train), test."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]


class SmileDataset:
    """Videos, folds and landmark access of one dataset. Build it with :func:`open_dataset`."""

    def __init__(
        self,
        *,
        kind: str,
        root: Path,
        videos: dict[str, Video],
        folds: list[Fold],
        n_landmarks: int,
        landmarks_dir: Path,
        store: FileStore | PackedStore,
        unsaved_folds: GeneratedFolds | None = None,
        dmarkers_path: Path | None = None,
    ):
        self.kind = kind
        self.root = Path(root)
        self.videos = videos
        self.folds = folds
        self.n_landmarks = n_landmarks
        self.landmarks_dir = Path(landmarks_dir)
        self.store = store
        self.unsaved_folds = unsaved_folds
        self.dmarkers_path = Path(dmarkers_path) if dmarkers_path is not None else None
        self._dmarkers = None
        self._dmarkers_read = False
        self._hashes: dict[str, bytes] = {}

    def __len__(self) -> int:
        return len(self.videos)

    def __repr__(self) -> str:
        return (
            f"SmileDataset({self.kind!r}, {str(self.root)!r}: {len(self.videos)} videos, "
            f"{len(set(self.subjects.values()))} subjects, {len(self.folds)} folds)"
        )

    @property
    def labels(self) -> dict[str, int]:
        return {n: v.label for n, v in self.videos.items()}

    @property
    def subjects(self) -> dict[str, str]:
        return {n: v.subject for n, v in self.videos.items()}

    def save_folds(self, stacklevel: int = 1) -> None:
        """Write the folds generated for this dataset (``open_dataset(save_folds=False)``), once;
        a failed write warns at ``stacklevel`` above the caller."""
        if self.unsaved_folds is not None:
            self.unsaved_folds.save(stacklevel + 1)
            self.unsaved_folds = None

    def landmarks(self, name: str) -> np.ndarray:
        """(T, V, 3) float32 isotropic pixels (x*W, y*H, z*W) of one video; a read-only view when
        packed (copy before writing). The only way training code reads landmark data."""
        return self.store.get(self.videos[name].file)

    def landmark_digest(self, names) -> str:
        """SHA-256 over ``names`` of their landmark arrays as training reads them (isotropic
        pixels: the files' points and frame sizes; and their frame rates, by which clips are
        resampled), to tell runs of other landmark files apart; each video is hashed once per
        dataset object."""
        digest = hashlib.sha256()
        for name in sorted(names):
            if name not in self._hashes:
                rows = np.ascontiguousarray(self.landmarks(name))
                read_as = repr((rows.shape, self.videos[name].fps)).encode()
                self._hashes[name] = hashlib.blake2b(
                    read_as + rows.tobytes(), digest_size=16
                ).digest()
            digest.update(name.encode() + b"\0" + self._hashes[name])
        return digest.hexdigest()

    def dmarkers(self):
        """The D-Marker table (``DMarkerTable``): the one ``dmarkers_path`` names, else the
        ``dmarkers.npz`` under the root or the landmarks folder (None when there is none;
        ValueError when both exist and differ: which one describes these landmarks is not for us
        to guess)."""
        if not self._dmarkers_read:
            path = self.dmarkers_path
            if path is not None and not path.is_file():
                raise FileNotFoundError(
                    f"{path}: no D-Marker table there (data.dmarkers); build it with "
                    f"{self.dmarker_command(path)}"
                )
            path = path or find_table(self.root, self.landmarks_dir)
            self._dmarkers = None
            if path is not None:
                command = self.dmarker_command(path)
                named = self.dmarkers_path is not None
                self._dmarkers = checked_table(
                    path, self.videos, self.landmarks_dir, command, named, self.kind != "uva"
                )
            self._dmarkers_read = True
        return self._dmarkers

    def require_dmarkers(self, needed_by: str, names=()):
        """:meth:`dmarkers`, or FileNotFoundError naming ``needed_by`` and the command that
        builds the table; ValueError when a video of ``names`` has no row in it and is not one
        that its build could not measure (those train without D-Markers, as faceless ones do)."""
        table = self.dmarkers()
        if table is None:
            raise FileNotFoundError(
                f"no dmarkers.npz under {self.root} or {self.landmarks_dir}: {needed_by} needs "
                "the D-Marker table; build "
                f"it with {self.dmarker_command(self.root / 'dmarkers.npz')}"
            )
        missing = [
            n
            for n in names
            if n not in table
            and not (n in self.videos and table.unmeasurable(n, self.videos[n].file))
        ]
        if missing:
            raise ValueError(
                f"{table.path}: {len(missing)} video(s) not in it (e.g. {missing[0]}): the table "
                f"is older than the dataset; rebuild it: {self.dmarker_command(table.path)}"
            )
        return table

    def dmarker_command(self, path: Path) -> str:
        """The ``dmarker.py`` command that builds this dataset's table at ``path``, giving files
        without a sidecar what training gives them: labels.csv's values (``--labels``), else the
        kind's defaults (``--fps``, ``--frame-size``)."""
        command = (
            f"python dmarker.py --landmarks {shlex.quote(str(self.landmarks_dir))} "
            f"--output {shlex.quote(str(path))}"
        )
        bare = [v for v in self.videos.values() if not meta_path(v.file).exists()]
        if any(len(v.assumed) < 3 for v in bare):  # some value from labels.csv
            command += f" --labels {shlex.quote(str(self.root / 'labels.csv'))}"
        if any(v.assumed for v in bare):
            d = DATASET_DEFAULTS[self.kind]
            command += f" --fps {d.fps:g} --frame-size {d.width}x{d.height}"
        return command

    def fold(self, n: int | str) -> Fold:
        """``--fold N``: the N-th fold folder in numeric order (1-based)."""
        return resolve_fold(self.folds, n)[0]

    def split(self, n: int | str, val_fraction: float = 0.15, seed: int = 0) -> Split:
        """Fold N's parts, with the inner validation carved from its training part by subject."""
        fold = self.fold(n)
        try:
            train, val = split_train_val(fold.train, self.labels, self.subjects, val_fraction, seed)
        except ValueError as e:
            raise ValueError(f"{self.root}, fold {n}: {e}") from e
        return Split(train=tuple(train), val=tuple(val), test=fold.test)


def _read_videos(kind, names, files, labels, subjects, table, shapes, fix) -> dict[str, Video]:
    """Every listed video with its frames, rate and size; files that cannot be used are named all
    at once (ten quick-run files are one fix, not ten). One warning names the files whose rate
    or size is a kind's assumed default (BBC, MMI, SPOS: UvA-NEMO's are the dataset's own)."""
    videos, refused, assumed = {}, [], []
    for n in names:
        try:
            if shapes[files[n]][0] == 0:
                raise ValueError(f"{files[n]}: no frames; {fix}")
            fps, width, height, defaulted = video_frame_info(
                kind, n, files[n], shapes[files[n]][0], table
            )
        except ValueError as e:
            refused.append((files[n], e))
            continue
        if defaulted and kind != "uva":  # (UvA-NEMO's defaults are the dataset's own)
            assumed.append(files[n].name)
        videos[n] = Video(
            name=n,
            file=files[n],
            label=labels[n],
            subject=subjects[n],
            fps=fps,
            width=width,
            height=height,
            n_frames=shapes[files[n]][0],
            assumed=defaulted,
        )
    if refused:
        others = [f.name for f, _ in refused[1:4]] + (["..."] if len(refused) > 4 else [])
        also = f" (also {len(refused) - 1} more: {', '.join(others)})" if others else ""
        raise ValueError(f"{refused[0][1]}{also}")
    if assumed:
        d = DATASET_DEFAULTS[kind]
        warnings.warn(
            f"{len(assumed)} landmark file(s) without a sidecar (e.g. {', '.join(assumed[:3])}) "
            f"take {kind}'s assumed frame rate or size ({d.width}x{d.height} at {d.fps:g} fps) "
            "where labels.csv gives none; if their videos differ, give labels.csv's "
            "fps,width,height columns (or re-extract)",
            stacklevel=3,
        )
    return videos


def open_dataset(
    kind: str,
    root,
    folds_dir=None,
    landmarks_dir=None,
    folds_k: int | None = None,
    seed: int = 0,
    pack: bool = True,
    save_folds: bool = True,
    dmarkers_path=None,
) -> SmileDataset:
    """Open a dataset and check it: every listed video has a landmark file (missing ones are named),
    no subject is in both parts of a fold, the test parts cover every video exactly once.

    ``folds_k`` (default per kind, :data:`DEFAULT_FOLDS_K`) and ``seed`` apply only when no fold
    files exist (generated folds of another k are refused; fold files of one's own are taken as
    they are); folds are generated only in the default ``<root>/labels``: a ``folds_dir`` given
    without fold files is an error (a mistyped path must not train on folds of its own).
    ``dmarkers_path`` names the D-Marker table (default: see :meth:`SmileDataset.dmarkers`).
    ``pack`` uses (and builds if needed) the memory-mapped packed store. Generated folds are
    written once every check has passed; with ``save_folds=False`` only by
    :meth:`SmileDataset.save_folds`, so a caller with checks of its own writes nothing when they
    refuse.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown dataset kind {kind!r}: use one of {', '.join(KINDS)}")
    root = Path(root)
    landmarks_dir = Path(landmarks_dir) if landmarks_dir is not None else root / "npy"
    default_folds = root / "labels"
    folds_dir = Path(folds_dir) if folds_dir is not None else default_folds
    if kind == "demo" and not (root / "demo.json").exists():
        raise no_landmarks(kind, root, landmarks_dir)
    if folds_dir.exists() and not folds_dir.is_dir():
        raise ValueError(f"{folds_dir}: a file; --folds takes a folder of <k>/{{train,test}}.json")
    index = landmark_index(landmarks_dir) if landmarks_dir.is_dir() else {}
    if not index:
        raise no_landmarks(kind, root, landmarks_dir)
    csv_path = root / "labels.csv"
    table = read_labels_csv(csv_path) if csv_path.exists() else None
    if kind in ("folder", "demo") and table is None:
        raise FileNotFoundError(f"{csv_path}: missing; a {kind} dataset needs video,label,subject")

    folds, fold_labels = read_fold_files(folds_dir) if fold_dirs(folds_dir) else (None, {})
    if folds is None and folds_dir.resolve() != default_folds.resolve():
        raise FileNotFoundError(
            f"{folds_dir}: no fold files (<k>/train.json, <k>/test.json); check the path, or "
            f"leave out --folds to use {default_folds} (folds are generated there if it has none)"
        )
    generated = (folds_dir / GENERATED_META).exists()  # own or published fold files: as they are
    made = None
    if folds is not None and generated and folds_k is not None and folds_k != len(folds):
        raise ValueError(
            f"{folds_dir} holds {len(folds)} generated folds, data.n_folds asks for {folds_k}: "
            f"delete its fold folders and {GENERATED_META} to generate {folds_k}, or set "
            f"data.n_folds={len(folds)}"
        )
    current = source_names(table, index)
    names = sorted(fold_labels) if folds is not None else current
    if folds is not None and generated:  # made from what the dataset listed then
        listing = table.path if table is not None else f"the landmark folder {landmarks_dir}"
        check_generated(folds_dir, names, current, str(listing), index)
    listed = fold_files(folds_dir, folds or [])
    where = {n: str(table.path) for n in table.labels} if table is not None else {}
    subset = None
    if folds is not None and not generated:  # one's own or published: a subset, in the root
        subset = (folds_dir, root / f"{folds_dir.resolve().name or 'labels'}_extracted")
    files = match_files(names, index, landmarks_dir, {**where, **listed}, subset)
    if folds is not None and not generated:  # fold files of one's own or published
        where = f"the fold files of {folds_dir}"
        fix = "list them in a fold file to use them"
        warn_unlisted(where, files, index, landmarks_dir, fix)
    elif table is not None:
        warn_unlisted(str(table.path), files, index, landmarks_dir, "add rows to train on them")
    labels = labels_for(kind, names, root, fold_labels, listed, table)
    subjects, rule = subjects_for(kind, names, root=root, folds=folds, table=table, listed=listed)
    if rule.startswith(UNVERIFIABLE):
        warnings.warn(
            f"{folds_dir}: subject independence cannot be checked in full ({rule}); add "
            f"{root}/Sessions/<id>/session.xml or a labels.csv subject column",
            stacklevel=2,
        )
    if folds is None:
        k = folds_k or DEFAULT_FOLDS_K[kind] or len(set(subjects.values()))
        if folds_k is None:  # a kind's default, within the subjects there are
            k = min(k, len(set(subjects.values())))
        made = generate_folds(folds_dir, names, labels, subjects, rule, k, seed)
        folds = made.folds
    problems = check_folds(folds, subjects, labels)
    if problems:
        if folds_dir.resolve() == default_folds.resolve():  # a way forward: folds of its own
            own = f"move {folds_dir} away to have subject-independent folds generated there"
        elif fold_dirs(default_folds):
            own = f"leave out --folds to use the folds in {default_folds}"
        else:
            own = (
                f"leave out --folds to have subject-independent folds generated in {default_folds}"
            )
        raise ValueError(
            f"{folds_dir}: {'; '.join(problems)} (inspect with: python -m data.folds "
            f"check {shlex.quote(str(folds_dir))} --dataset {kind}; or {own})"
        )

    fix = landmark_fix(kind, root)
    shapes = {files[n]: npy_shape(files[n], fix) for n in names}
    n_landmarks = check_point_counts(landmarks_dir, shapes)
    videos = _read_videos(kind, names, files, labels, subjects, table, shapes, fix)
    check_no_copies(videos, fix)
    dataset = SmileDataset(
        kind=kind,
        root=root,
        videos=videos,
        folds=folds,
        n_landmarks=n_landmarks,
        landmarks_dir=landmarks_dir,
        store=landmark_store(
            {v.file: (v.width, v.height) for v in videos.values()}, shapes, fix, pack
        ),
        unsaved_folds=made,
        dmarkers_path=dmarkers_path,
    )
    if save_folds:
        dataset.save_folds(stacklevel=2)
    return dataset
