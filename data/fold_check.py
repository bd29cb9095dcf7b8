"""Checks of a fold set: leaks, overlaps, coverage; per-fold counts; the CLI (``check``, and
``subset``: :mod:`data.fold_subset`).

    python -m data.folds check DIR [--dataset KIND] [--landmarks DIR]

prints per-fold counts (videos, subjects, posed / spontaneous) and exits non-zero on a leak (a
subject in both train and test), an overlap (a video in both) or test folds that do not cover
every video exactly once; then, with the landmark folder (``<root>/npy`` or --landmarks) there,
on anything ``smile_point.py`` refuses when it opens the dataset with these folds (it runs the same
:func:`data.datasets.open_dataset`: a video without a landmark file, labels that disagree with
labels.csv, ...; its messages name the fold file) and on a ``dmarkers.npz`` that is stale or lacks
videos. Without the landmark folder the fold files' labels are still checked against labels.csv,
the names and the folder layout. DIR is a folds folder or a dataset root holding ``labels/``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from data.fold_subset import run_subset
from data.folds import Fold, fold_dirs, fold_files, read_fold_files, split_train_val
from data.io import check_finite, read_npy
from data.mmi_subjects import UNVERIFIABLE
from data.names import nfc, strip_video_ext
from data.subjects import guess_kind, labels_for, read_labels_csv, subjects_for


def _short(items, n: int = 5) -> str:
    items = sorted(items)
    more = f" ... (+{len(items) - n})" if len(items) > n else ""
    return ", ".join(map(str, items[:n])) + more


def _file_keys(names: Iterable[str]) -> dict[str, str]:
    """Each name -> the name of its landmark file as ``match_names`` finds it: ``v1`` ->
    ``v1.mp4`` when that is the only ``v1.*`` listed (``x.mp4`` and ``x.avi`` stay two)."""
    norm = {n: nfc(n) for n in names}
    with_ext = defaultdict(set)
    for n in norm.values():
        if strip_video_ext(n) != n:
            with_ext[strip_video_ext(n)].add(n)
    return {o: min(with_ext[n]) if len(with_ext.get(n, ())) == 1 else n for o, n in norm.items()}


def check_folds(
    folds: list[Fold], subjects: Mapping[str, str], labels: Mapping[str, int]
) -> list[str]:
    """Problems with a fold set (empty list = fine): a video in both train and test of a fold, a
    subject in both (leak), an empty test part, videos without subject or label, and test parts that
    do not cover every video of the set exactly once. Names are compared as landmark files are
    matched: ``v1`` and ``v1.mp4`` are one video."""
    problems = []
    key = _file_keys(n for fold in folds for n in (*fold.train, *fold.test))
    test_of: dict[str, list[int]] = defaultdict(list)  # file -> test folds
    everyone: set[str] = set()
    for fold in folds:
        where = f"fold {fold.index} ({fold.name!r})"
        train, test = set(fold.train), set(fold.test)
        everyone |= train | test
        if not test:
            problems.append(f"{where}: empty test part")
        both = {key[n] for n in train} & {key[n] for n in test}
        if both:
            problems.append(f"{where}: {len(both)} video(s) in both train and test: {_short(both)}")
        for file in {key[n] for n in test}:
            test_of[file].append(fold.index)
        s_train = {subjects[n] for n in train if n in subjects}
        s_test = {subjects[n] for n in test if n in subjects}
        leak = s_train & s_test
        if leak:
            problems.append(
                f"{where}: {len(leak)} subject(s) in both train and test (leak): {_short(leak)}"
            )
    no_subject = [n for n in everyone if n not in subjects]
    if no_subject:
        problems.append(f"{len(no_subject)} video(s) without a subject: {_short(no_subject)}")
    no_label = [n for n in everyone if n not in labels]
    if no_label:
        problems.append(f"{len(no_label)} video(s) without a label: {_short(no_label)}")
    never = {key[n] for n in everyone} - set(test_of)
    if never:
        problems.append(f"{len(never)} video(s) in no test part: {_short(never)}")
    twice = {n: f for n, f in test_of.items() if len(f) > 1}
    if twice:
        shown = [f"{n} (folds {', '.join(map(str, twice[n]))})" for n in sorted(twice)[:5]]
        problems.append(f"{len(twice)} video(s) in more than one test part: {'; '.join(shown)}")
    return problems


def training_part_problem(
    fold: Fold,
    subjects: Mapping[str, str],
    labels: Mapping[str, int],
    val_fraction: float = 0.15,
    seed: int = 0,
) -> str | None:
    """Why fold ``fold``'s training part cannot train a classifier, or None: it holds one class
    only, or cannot give up an inner validation part by subject (fewer than two subjects)."""
    where = f"fold {fold.index} ({fold.name!r})"
    classes = {labels[n] for n in fold.train if n in labels}
    if len(classes) < 2:
        held = {0: "posed videos only", 1: "spontaneous videos only"}.get(next(iter(classes), -1))
        return (
            f"{where}: its training part holds {held or 'no video'}; a classifier needs both "
            "classes: give it videos of the other class, or use fewer folds"
        )
    try:
        split_train_val(fold.train, labels, subjects, val_fraction, seed)
    except ValueError as e:
        return f"{where}: {e}"
    return None


def fold_table(folds: list[Fold], subjects: Mapping[str, str], labels: Mapping[str, int]) -> str:
    """Per-fold counts of videos, subjects and labels (posed/spontaneous) as a text table."""

    def stats(names):
        c = Counter(labels.get(n) for n in names)
        return len(names), len({subjects.get(n) for n in names}), c[0], c[1]

    head = ("fold", "folder", "train", "subj", "posed", "spont", "test", "subj", "posed", "spont")
    rows = [head]
    for f in folds:
        rows.append((f.index, f.name, *stats(f.train), *stats(f.test)))
    everyone = sorted({n for f in folds for n in (*f.train, *f.test)})
    rows.append(("all", "", *stats(everyone), "", "", "", ""))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(str(v).rjust(w) for v, w in zip(r, widths, strict=True)) for r in rows
    )


def _find_folds_dir(path: Path) -> Path:
    if fold_dirs(path):
        return path
    if fold_dirs(path / "labels"):
        return path / "labels"
    raise FileNotFoundError(
        f"no fold folders under {path} or {path / 'labels'}: expected <k>/train.json (without "
        "fold files, smile_point.py generates them in <root>/labels at its first run)"
    )


def training_refusal(kind: str, root: Path, folds_dir: Path, landmarks: Path) -> str | None:
    """Why ``smile_point.py --dataset kind`` refuses the dataset with these folds (landmark files,
    labels, subjects, sidecars: :func:`data.datasets.open_dataset`; NaN in a file, which training
    finds when it packs them; a stale D-Marker table or one without rows for some videos), or
    None when it opens it."""
    from data.dataset_fixes import landmark_fix
    from data.datasets import open_dataset  # it imports this module

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the subject rule is printed anyway
        try:
            ds = open_dataset(kind, root, folds_dir=folds_dir, landmarks_dir=landmarks, pack=False)
            fix = landmark_fix(kind, root)
            for v in ds.videos.values():  # read whole: NaN and inf are refused
                check_finite(v.file, read_npy(v.file, mmap=True, fix=fix), fix)
            try:  # a stale D-Marker table is refused, one that lacks videos too
                if ds.dmarkers() is not None:
                    ds.require_dmarkers("training", sorted(ds.videos))
            except ValueError as e:
                raise ValueError(
                    f"{e} (deepmarkernet and dmarker-logreg refuse it; meshsmilenet reads no table)"
                ) from e
        except (OSError, ValueError) as e:
            return str(e)
    return None


def _unchecked(kind: str, landmarks: Path) -> str | None:
    """Why the dataset cannot be opened as training does, or None when it can."""
    from data.datasets import KINDS

    if kind not in KINDS:
        return f"pass --dataset {'|'.join(KINDS)}"
    if not landmarks.is_dir():
        return f"no landmark folder {landmarks.absolute()} (pass --landmarks DIR)"
    return None


def _labels_csv(root: Path):
    csv = root / "labels.csv"
    return read_labels_csv(csv) if csv.exists() else None


def _subjects(kind: str, names: list[str], folds_dir: Path, folds: list[Fold]):
    """(subjects, rule) of ``names`` by the kind's rule or ``<root>/labels.csv``."""
    root = folds_dir.parent
    listed = fold_files(folds_dir, folds)
    table = _labels_csv(root)
    return subjects_for(kind, names, root=root, folds=folds, table=table, listed=listed)


def _label_conflict(kind: str, folds_dir: Path, folds: list[Fold], labels: dict) -> str | None:
    """Where the fold files' labels contradict ``labels.csv``, the kind's names or its folder
    layout (as training finds when it opens the dataset), or None."""
    root = folds_dir.parent
    try:
        labels_for(
            kind, sorted(labels), root, labels, fold_files(folds_dir, folds), _labels_csv(root)
        )
    except ValueError as e:
        return str(e)
    return None


def _error(e: Exception | str) -> int:
    print(f"error: {e}", file=sys.stderr)
    return 2


def _parse(argv: list[str] | None) -> argparse.Namespace:
    from data.datasets import KINDS

    parser = argparse.ArgumentParser(
        prog="python -m data.folds", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="print per-fold counts; exit 1 on what training refuses")
    check.add_argument("dir", type=Path, help="a folds folder (<k>/train.json) or a dataset root")
    check.add_argument(
        "--dataset",
        default="auto",
        choices=(*KINDS, "auto"),
        help="dataset kind: uva, bbc, mmi, spos, folder, demo or auto (guess from the names)",
    )
    check.add_argument(
        "--landmarks", type=Path, help="the landmark folder (default: <dataset root>/npy)"
    )
    subset = sub.add_parser(
        "subset", help="write fold files without the videos that have no landmark file"
    )
    subset.add_argument("src", type=Path, help="a folds folder (<k>/train.json) or a dataset root")
    subset.add_argument("dst", type=Path, help="the new folds folder")
    subset.add_argument(
        "--landmarks", type=Path, help="the landmark folder (default: <dataset root>/npy)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.command == "subset":
        try:
            src = _find_folds_dir(args.src)
            run_subset(src, args.dst, args.landmarks or src.parent / "npy")
        except (OSError, ValueError) as e:
            return _error(e)
        return 0
    try:
        folds_dir = _find_folds_dir(args.dir)
        folds, labels = read_fold_files(folds_dir)
    except (OSError, ValueError) as e:
        return _error(e)
    names, root = sorted(labels), folds_dir.parent
    if args.landmarks is not None and not args.landmarks.is_dir():
        return _error(f"--landmarks {args.landmarks}: no such folder")
    kind = guess_kind(names, root) if args.dataset == "auto" else args.dataset
    landmarks = args.landmarks or root / "npy"
    unchecked = _unchecked(kind, landmarks)
    try:
        subjects, rule = _subjects(kind, names, folds_dir, folds)
    except (OSError, ValueError) as e:
        refusal = None if unchecked else training_refusal(kind, root, folds_dir, landmarks)
        if refusal is None:
            return _error(e)
        print(f"PROBLEM: {refusal}\n1 problem(s)")
        return 1
    print(
        f"{folds_dir}: {len(folds)} folds, {len(names)} videos, {len(set(subjects.values()))} "
        f"subjects (subject rule: {rule})"
    )
    print(fold_table(folds, subjects, labels))
    problems = check_folds(folds, subjects, labels)
    problems += filter(None, (training_part_problem(f, subjects, labels) for f in folds))
    if not problems and not unchecked:  # else training would name the first of these problems
        refusal = training_refusal(kind, root, folds_dir, landmarks)
        problems += [refusal] if refusal else []
    if unchecked:
        print(f"not checked as smile_point.py opens the dataset: {unchecked}")
        problems += filter(None, [_label_conflict(kind, folds_dir, folds, labels)])
    for p in problems:
        print(f"PROBLEM: {p}")
    unverified = " (subject independence not verifiable)" if rule.startswith(UNVERIFIABLE) else ""
    print(f"ok{unverified}" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
