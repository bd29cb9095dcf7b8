"""Cross-validation folds: the published ``labels/<k>/{train,test}.json`` format,
subject-independent stratified fold generation and the inner validation split (checks of a fold
set: :mod:`data.fold_check`).

A fold folder holds ``train.json`` and ``test.json``, each
``{video name: 1 spontaneous | 0 posed}``. Fold folders are sorted numerically ("1", "2", ...,
"10"; the published code sorted them as text: 1, 10, 2, ...). ``Fold.index`` is the 1-based
position in that order, so ``--fold N`` means the N-th folder in numeric order, which for the
published sets is the folder named ``N``.

CLI: ``python -m data.folds check DIR`` (:mod:`data.fold_check`), ``python -m data.folds subset
SRC DST`` (:mod:`data.fold_subset`).
"""

from __future__ import annotations

import json
import re
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.files import atomic_write_dir, atomic_write_json

#: Written beside generated folds; its presence marks the folds as generated (not published).
GENERATED_META = "folds_meta.json"


@dataclass(frozen=True)
class Fold:
    """One cross-validation fold; ``index`` is 1-based in numeric folder order."""

    index: int
    name: str
    train: tuple[str, ...]
    test: tuple[str, ...]


def _fold_sort_key(name: str) -> tuple:
    """Numeric order for digit names ("2" < "10"), natural order for others, digits first."""
    if name.isdigit():
        return (0, int(name), name)
    parts = re.split(r"(\d+)", name)
    return (1, tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts), name)


def fold_dirs(folds_dir: str | Path) -> list[Path]:
    """Sub-folders of ``folds_dir`` with a ``train.json`` or ``test.json``, numerically sorted."""
    folds_dir = Path(folds_dir)
    if not folds_dir.is_dir():
        return []
    found = [
        d
        for d in folds_dir.iterdir()
        if d.is_dir() and ((d / "train.json").exists() or (d / "test.json").exists())
    ]
    return sorted(found, key=lambda d: _fold_sort_key(d.name))


def _read_split(path: Path) -> dict[str, int]:
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: missing; every fold folder needs train.json and test.json"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not valid JSON ({e}); expected {{video name: 0 or 1}}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object {{video name: 0 posed | 1 spontaneous}}")
    out = {}
    for name, label in data.items():
        if isinstance(label, bool) or label not in (0, 1):
            raise ValueError(
                f"{path}: label of {name!r} is {label!r}; use 1 spontaneous or 0 posed"
            )
        out[str(name)] = int(label)
    return out


def read_fold_files(folds_dir: str | Path) -> tuple[list[Fold], dict[str, int]]:
    """Folds and the labels they give, from ``<folds_dir>/<k>/{train,test}.json``.

    Raises FileNotFoundError when there are no fold folders, ValueError on malformed files or on a
    video labelled differently in two files.
    """
    folds_dir = Path(folds_dir)
    dirs = fold_dirs(folds_dir)
    if not dirs:
        raise FileNotFoundError(
            f"no fold folders under {folds_dir}: expected {folds_dir}/<k>/train.json and test.json"
        )
    folds, labels, seen_in = [], {}, {}
    for index, d in enumerate(dirs, start=1):
        parts = {}
        for split in ("train", "test"):
            path = d / f"{split}.json"
            part = _read_split(path)
            for name, label in part.items():
                if name in labels and labels[name] != label:
                    raise ValueError(
                        f"{path}: {name!r} is labelled {label} here but {labels[name]} in "
                        f"{seen_in[name]}; fix one of the two files"
                    )
                labels[name] = label
                seen_in.setdefault(name, path)
            parts[split] = tuple(part)
        folds.append(Fold(index=index, name=d.name, train=parts["train"], test=parts["test"]))
    return folds, labels


def fold_files(folds_dir: str | Path, folds: Iterable[Fold]) -> dict[str, Path]:
    """Each video name of ``folds`` -> the fold file that lists it: the test part's, else the
    first train part's (for messages that name where a video comes from)."""
    folds, files = list(folds), {}
    for part in ("test", "train"):
        for fold in folds:
            for name in getattr(fold, part):
                files.setdefault(name, Path(folds_dir) / fold.name / f"{part}.json")
    return files


def read_folds(folds_dir: str | Path) -> list[Fold]:
    """Folds from ``<folds_dir>/<k>/{train,test}.json``, numerically sorted, 1-based ``index``."""
    return read_fold_files(folds_dir)[0]


def write_folds(folds_dir: str | Path, folds: Iterable[Fold], labels: Mapping[str, int]) -> None:
    """Write folds in the published format (atomic per file): ``<folds_dir>/<fold.name>/*.json``."""
    folds_dir = Path(folds_dir)
    for fold in folds:
        for split, names in (("train", fold.train), ("test", fold.test)):
            atomic_write_json(
                folds_dir / fold.name / f"{split}.json", {n: int(labels[n]) for n in names}
            )


def _class_counts(groups: list[list[str]], labels: Mapping[str, int]) -> np.ndarray:
    """(n_groups, 2) counts of posed (0) and spontaneous (1) videos per group."""
    counts = np.zeros((len(groups), 2))
    for g, names in enumerate(groups):
        for n in names:
            counts[g, labels[n]] += 1
    return counts


def _groups(names, labels, subjects) -> tuple[list[str], list[list[str]]]:
    """Subjects (sorted) and their videos (sorted); errors on a name without label or subject."""
    by_subject: dict[str, list[str]] = defaultdict(list)
    for n in sorted(set(names)):
        if n not in labels:
            raise ValueError(f"video {n!r} has no label")
        if n not in subjects:
            raise ValueError(f"video {n!r} has no subject")
        by_subject[str(subjects[n])].append(n)
    subj = sorted(by_subject)
    return subj, [by_subject[s] for s in subj]


def make_folds(
    names: Iterable[str],
    labels: Mapping[str, int],
    subjects: Mapping[str, str],
    k: int,
    seed: int,
) -> list[Fold]:
    """Stratified, subject-independent k folds, deterministic in ``seed`` (input order ignored).

    Subjects are taken largest first (ties in a seeded random order) and each goes to the fold
    whose per-class counts, relative to the per-class target total/k, it brings closest to target
    (squared error); ties go to the smaller fold. Every fold gets at least one subject. Fold names
    are "1".."k"; train = every other video.
    """
    subj, groups = _groups(names, labels, subjects)
    if not 2 <= k <= len(subj):
        raise ValueError(f"cannot make {k} subject-independent folds from {len(subj)} subjects")
    counts = _class_counts(groups, labels)
    target = counts.sum(0) / k
    norm = np.maximum(target, 1.0)
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(len(subj))
    order = shuffled[np.argsort(-counts.sum(1)[shuffled], kind="stable")]
    fold_counts = np.zeros((k, 2))
    members: list[list[str]] = [[] for _ in range(k)]
    for g in order:
        before = (((fold_counts - target) / norm) ** 2).sum(1)
        after = (((fold_counts + counts[g] - target) / norm) ** 2).sum(1)
        best = min(range(k), key=lambda f: (after[f] - before[f], fold_counts[f].sum(), f))
        fold_counts[best] += counts[g]
        members[best].extend(groups[g])
    everyone = [n for grp in groups for n in grp]
    folds = []
    for f in range(k):
        test = set(members[f])
        folds.append(
            Fold(
                index=f + 1,
                name=str(f + 1),
                train=tuple(sorted(n for n in everyone if n not in test)),
                test=tuple(sorted(test)),
            )
        )
    return folds


def split_train_val(
    names: Iterable[str],
    labels: Mapping[str, int],
    subjects: Mapping[str, str],
    val_fraction: float = 0.15,
    seed: int = 0,
) -> tuple[list[str], list[str]]:
    """Carve a validation part out of ``names`` (the training part of a fold), by subject.

    Subjects are visited in a seeded random order; one joins validation when that brings the
    per-class validation counts closer to ``val_fraction`` of each class (the first one always
    joins); then, if validation lacks a class that two or more remaining subjects have, the
    smallest of them joins it. A subject never joins when training would lose its last video of a
    class. Returns (train, val), both in the order of ``names``; both non-empty (needs >= 2
    subjects, and one subject whose videos training can spare).
    """
    names = list(dict.fromkeys(names))
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    subj, groups = _groups(names, labels, subjects)
    if len(subj) < 2:
        raise ValueError(
            f"cannot split {len(names)} videos of {len(subj)} subject(s) by subject into training "
            "and validation parts; use fewer folds, or a dataset with more subjects"
        )
    counts = _class_counts(groups, labels)
    target = val_fraction * counts.sum(0)
    norm = np.maximum(counts.sum(0), 1.0)
    order = np.random.default_rng(seed).permutation(len(subj))
    val_counts, chosen = np.zeros(2), []

    def spared(g) -> bool:  # training keeps every class of the set without subject g
        return bool(np.all((counts.sum(0) - val_counts - counts[g] > 0) | (counts.sum(0) == 0)))

    for g in order:
        if len(chosen) == len(subj) - 1:
            break
        if not spared(g):
            continue
        err_now = (((val_counts - target) / norm) ** 2).sum()
        err_new = (((val_counts + counts[g] - target) / norm) ** 2).sum()
        if err_new < err_now or not chosen:
            val_counts += counts[g]
            chosen.append(g)
    for c in (0, 1):  # a one-class validation part cannot rank (AUC) or pick a threshold
        holders = [g for g in order if g not in chosen and counts[g, c] > 0]
        movable = [g for g in holders if spared(g)]
        if val_counts[c] == 0 and movable:  # spared: another holder stays in training
            g = min(movable, key=lambda g: counts[g].sum())
            val_counts += counts[g]
            chosen.append(g)
    if not chosen:
        raise ValueError(
            f"cannot carve a validation part out of {len(names)} videos of {len(subj)} subjects "
            "without leaving training a single class: add subjects, or give each class to more "
            "than one subject"
        )
    val_set = {n for g in chosen for n in groups[g]}
    return [n for n in names if n not in val_set], [n for n in names if n in val_set]


def resolve_fold(folds: list[Fold], spec: int | str) -> list[Fold]:
    """``--fold`` value -> folds: ``N`` = the N-th folder in numeric order (1-based), ``all``."""
    if str(spec).lower() == "all":
        return list(folds)
    try:
        n = int(spec)
    except ValueError:
        raise ValueError(
            f"--fold {spec!r}: expected a fold number 1..{len(folds)} or 'all'"
        ) from None
    if not 1 <= n <= len(folds):
        raise ValueError(f"--fold {n} is out of range: there are folds 1..{len(folds)}")
    return [folds[n - 1]]


@dataclass(frozen=True)
class GeneratedFolds:
    """Folds made where a dataset has none, not yet written (:meth:`save` writes them)."""

    folds_dir: Path
    folds: list[Fold]
    labels: Mapping[str, int]
    meta: dict

    def save(self, stacklevel: int = 1) -> None:
        """Write the folds with ``folds_meta.json`` into ``folds_dir`` at once; kept unsaved,
        with a warning (at ``stacklevel`` above the caller), where it cannot be written. Folds
        another run wrote there meanwhile are taken if they are these, else refused (ValueError):
        this run would test on folds that its later resumes, reading those, do not have."""

        def write(tmp: Path) -> None:
            write_folds(tmp, self.folds, self.labels)
            atomic_write_json(tmp / GENERATED_META, self.meta)

        try:
            atomic_write_dir(self.folds_dir, write)  # a killed run leaves no partial fold set
        except OSError as e:
            if fold_dirs(self.folds_dir):  # another run's, written since this one looked
                if _parts(read_folds(self.folds_dir)) != _parts(self.folds):
                    raise ValueError(
                        f"{self.folds_dir}: another run generated other folds there meanwhile "
                        "(another seed or data.n_folds); run again to use those"
                    ) from None
                return
            warnings.warn(
                f"could not write generated folds to {self.folds_dir} ({e}); using them unsaved",
                stacklevel=stacklevel + 1,
            )


def _parts(folds: list[Fold]) -> list[tuple[frozenset, frozenset]]:
    return [(frozenset(f.train), frozenset(f.test)) for f in folds]


def generate_folds(
    folds_dir: Path, names, labels, subjects, rule: str, k: int, seed: int
) -> GeneratedFolds:
    """``k`` stratified subject-independent folds (:func:`make_folds`) for ``folds_dir``."""
    try:
        folds = make_folds(names, labels, subjects, k, seed)
    except ValueError as e:
        raise ValueError(
            f"{folds_dir}: {e}; generate at most as many folds as subjects (--set data.n_folds=K)"
        ) from e
    meta = {
        "generated_by": "data.folds.make_folds",
        "k": k,
        "seed": seed,
        "subject_rule": rule,
        "note": "delete this folder to make new folds",
    }
    return GeneratedFolds(folds_dir, folds, labels, meta)


if __name__ == "__main__":  # python -m data.folds check DIR (data/fold_check.py)
    from data.files import run_cli
    from data.fold_check import main

    run_cli(main)
