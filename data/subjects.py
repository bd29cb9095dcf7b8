"""Per-dataset rules: which subject a video belongs to, its label when no fold file gives it, and
the ``labels.csv`` table (matching names to landmark files: :mod:`data.names`).

Subject rules (a ``<root>/labels.csv`` with a ``subject`` column overrides them for any kind; for
``uva``, ``spos`` and ``mmi`` it may group their subjects, never split one):

- ``uva``: the 3-digit prefix of the name (``001_deliberate_smile_2`` -> ``001``).
- ``bbc``: every video is its own subject (20 videos of 20 people).
- ``spos``: the one token of the clip name, split on anything that is not a letter, that equals
  a SPOS subject (:data:`SPOS_SUBJECTS`); exact token match, so ``yi`` never matches ``ying``.
- ``mmi``: the session's subject id from its metadata, else its test fold's people as one group
  (:mod:`data.mmi_subjects`).
- ``folder`` / ``demo``: the ``subject`` column of ``labels.csv``.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from data.mmi_subjects import mmi_session_subject, mmi_subjects, mmi_video_subject
from data.names import nfc, strip_video_ext
from data.video import is_video
from data.video_sources import bbc_folders, spos_clips

#: The seven SPOS subjects (as the published SPOS protocol names them).
SPOS_SUBJECTS = ("tomas", "nelly", "riku", "yi", "ying", "rui", "xiaopeng")
_UVA = re.compile(r"^(\d{3})_(deliberate|spontaneous|posed)_smile", re.IGNORECASE)
_LABEL_WORDS = {
    "1": 1,
    "spontaneous": 1,
    "genuine": 1,
    "felt": 1,
    "0": 0,
    "posed": 0,
    "deliberate": 0,
    "fake": 0,
}


@dataclass
class LabelsTable:
    """``labels.csv``: columns video,label,subject (+ optional fps,width,height)."""

    path: Path
    labels: dict[str, int] = field(default_factory=dict)
    subjects: dict[str, str] = field(default_factory=dict)
    meta: dict[str, dict[str, float]] = field(default_factory=dict)

    def row(self, name: str) -> str | None:
        """The row naming video ``name``, matched as landmark files are (``match_names``): with
        or without its video extension, Unicode-normalised; None when absent or ambiguous."""
        key = nfc(name)
        index = self._row_index
        return index[key] if key in index else index.get(strip_video_ext(key))

    @cached_property
    def _row_index(self) -> dict[str, str | None]:  # built once the file is read
        index: dict[str, str | None] = {}
        for key in self.labels:
            short = strip_video_ext(key)
            index[short] = None if short in index else key
        index.update({key: key for key in self.labels})
        return index


def parse_label(value: str, where: str) -> int:
    """1/0 or a word (spontaneous, genuine, felt / posed, deliberate, fake) -> 1/0."""
    label = _LABEL_WORDS.get(str(value).strip().lower())
    if label is None:
        raise ValueError(f"{where}: label {value!r} is not 1/spontaneous or 0/posed")
    return label


def read_labels_csv(path: str | Path) -> LabelsTable:
    """Read ``labels.csv`` (header required: video,label,subject; optional fps,width,height)."""
    path = Path(path)
    table = LabelsTable(path=path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = [c.strip().lower() for c in reader.fieldnames or []]
        need = {"video", "label", "subject"}
        if not need <= set(cols):
            raise ValueError(f"{path}: header must hold video,label,subject (got {','.join(cols)})")
        reader.fieldnames = cols
        spellings: dict[str, tuple[str, int]] = {}  # casefolded subject -> (as written, line)
        for row_no, row in enumerate(reader, start=2):
            where = f"{path} line {row_no}"
            name = nfc((row["video"] or "").strip())
            if not name:
                raise ValueError(f"{where}: empty video name")
            if name in table.labels:
                raise ValueError(f"{where}: video {name!r} is listed twice")
            table.labels[name] = parse_label(row["label"], where)
            subject = nfc((row["subject"] or "").strip())
            if not subject:
                raise ValueError(f"{where}: empty subject for {name!r}")
            first, line = spellings.setdefault(
                " ".join(subject.casefold().split()), (subject, row_no)
            )
            if first != subject:  # one person as two subjects would leak across folds
                raise ValueError(
                    f"{where}: subject {subject!r} differs from {first!r} (line {line}) only in "
                    "case or spaces; write one person's subject alike, or rename one of them"
                )
            table.subjects[name] = subject
            meta = {}
            for key in ("fps", "width", "height"):
                value = (row.get(key) or "").strip()
                if value:
                    try:
                        meta[key] = float(value)
                    except ValueError:
                        raise ValueError(f"{where}: {key} {value!r} is not a number") from None
                    if key != "fps" and math.isfinite(meta[key]) and not meta[key].is_integer():
                        raise ValueError(
                            f"{where}: {key} {value!r} is not a whole number of pixels"
                        )
            if len(meta.keys() & {"width", "height"}) == 1:
                raise ValueError(f"{where}: a width without a height, or the reverse; give both")
            if meta:
                table.meta[name] = meta
    if not table.labels:
        raise ValueError(f"{path}: no rows; expected video,label,subject lines")
    return table


def uva_subject(name: str) -> str:
    m = _UVA.match(name)
    if not m:
        raise ValueError(
            f"UvA-NEMO name {name!r} does not start with a 3-digit subject id and "
            "deliberate/spontaneous (e.g. 001_deliberate_smile_2); add a labels.csv"
        )
    return m.group(1)


def uva_label(name: str) -> int:
    uva_subject(name)
    return 1 if _UVA.match(name).group(2).lower() == "spontaneous" else 0


def spos_subject(name: str, subjects: tuple[str, ...] = SPOS_SUBJECTS) -> str:
    """The SPOS subject whose name is a whole token of the clip name (never a substring)."""
    tokens = set(re.split(r"[^a-z]+", name.lower()))
    hits = [s for s in subjects if s in tokens]
    if len(hits) != 1:
        what = "no" if not hits else "several"
        raise ValueError(
            f"SPOS clip {name!r}: {what} subject token among {', '.join(subjects)}; "
            "add a labels.csv with a subject column"
        )
    return hits[0]


def folder_labels(kind: str, root: Path) -> dict[str, int]:
    """Labels from a source layout: BBC ``{Genuine,posed}/*.<video>`` (:func:`bbc_folders`),
    SPOS ``{posed,spontaneous}/happy/<clip>/``; keys are names without video extension.

    Raises ValueError when one name is under both labels."""
    found: dict[str, tuple[int, Path]] = {}

    def add(name: str, label: int, path: Path) -> None:
        if name in found and found[name][0] != label:
            raise ValueError(
                f"{found[name][1]} and {path} give {name} both labels; remove the wrong copy"
            )
        found[name] = (label, path)

    if kind == "bbc":
        for d, label in bbc_folders(root):
            for p in d.iterdir():
                if is_video(p) and not p.name.startswith("."):  # not .DS_Store, ._x
                    add(nfc(strip_video_ext(p.name)), label, p)
    if kind == "spos":
        for clip, label in spos_clips(root):
            add(nfc(clip.name), label, clip)
    return {name: label for name, (label, _) in found.items()}


def name_label(kind: str, name: str) -> int | None:
    """Label read from the name where the dataset encodes it (a UvA-NEMO name, a BBC name that
    starts with "genuine" or "posed"), else None."""
    if kind == "uva":
        return uva_label(name) if _UVA.match(name) else None
    if kind == "bbc":
        low = name.lower()
        if low.startswith("genuine"):
            return 1
        if low.startswith("posed"):
            return 0
    return None


def subjects_for(
    kind: str,
    names,
    *,
    root: Path | None = None,
    folds=None,
    table: LabelsTable | None = None,
    listed: dict | None = None,
) -> tuple[dict[str, str], str]:
    """Subject of every name and a one-line description of the rule used (it starts with
    :data:`UNVERIFIABLE` when the subjects come from the folds themselves). ``listed``: name ->
    the fold file that lists it, for messages."""
    names, listed = list(names), listed or {}
    if table is not None:  # it names the subjects of all the videos or of none (a typo hides leaks)
        rows = {n: table.row(n) for n in names}
        lacking = [n for n, row in rows.items() if row is None]
        if not lacking:
            subjects = {n: table.subjects[r] for n, r in rows.items()}
            check_no_split(kind, subjects, root, table.path)
            return subjects, f"subject column of {table.path}"
        shown = [f"{n} ({listed[n]})" if n in listed else n for n in lacking[:3]]
        raise ValueError(
            f"{table.path}: no row for {len(lacking)} of {len(names)} video(s), e.g. "
            f"{', '.join(shown)}; add them (video,label,subject), named as in the fold files"
        )
    if kind in ("folder", "demo"):
        csv = Path(root) / "labels.csv" if root is not None else "labels.csv"
        raise ValueError(
            f"{csv}: missing; a {kind} dataset takes its subjects from it (video,label,subject)"
        )
    if kind == "uva":
        return {n: uva_subject(n) for n in names}, "UvA-NEMO 3-digit name prefix"
    if kind == "spos":
        return {n: spos_subject(n) for n in names}, "SPOS subject name as an exact token"
    if kind in ("bbc", "name"):
        return {n: n for n in names}, "every video its own subject"
    if kind == "mmi":
        return mmi_subjects(names, root, folds)
    raise ValueError(f"unknown dataset kind {kind!r}: use uva, bbc, mmi, spos, folder or demo")


#: How each kind with a rule of its own names a video's subject (for messages).
RULES = {
    "uva": "the UvA-NEMO name prefix",
    "spos": "the SPOS subject token",
    "mmi": "the MMI session's subject id",
}


def _own_subject(kind: str, name: str, root: Path | None) -> str | None:
    """The subject a kind's own rule gives ``name`` (None where it gives none)."""
    try:
        if kind == "uva":
            return uva_subject(name)
        if kind == "spos":
            return spos_subject(name)
    except ValueError:  # no such name: the labels.csv column decides
        return None
    if kind == "mmi" and root is not None:
        try:
            return mmi_session_subject(root, name)
        except (OSError, ValueError):  # unreadable session.xml: its video's name, if any
            return mmi_video_subject(Path(root) / "Sessions" / name)
    return None


def check_no_split(kind: str, subjects: dict[str, str], root: Path | None, csv: Path) -> None:
    """ValueError when ``labels.csv``'s subjects (``subjects``) split a subject of the kind's own
    rule (UvA-NEMO's name prefix, SPOS's name token, MMI's session metadata) in two: one person
    could then be trained and tested on. Grouping several of them into one is allowed."""
    seen: dict[str, tuple[str, str]] = {}  # own subject -> (a video, its labels.csv subject)
    for name, subject in subjects.items():
        own = _own_subject(kind, name, root)
        if own is None:
            continue
        first, theirs = seen.setdefault(own, (name, subject))
        if theirs != subject:
            raise ValueError(
                f"{csv}: subjects {theirs!r} ({first}) and {subject!r} ({name}) are one person by "
                f"{RULES[kind]} ({own}), so folds could train and test on them; give them one "
                "subject (the column may group subjects, never split one)"
            )


def guess_kind(names, root: Path | None = None) -> str:
    """Subject rule for fold files of unknown origin (``data.folds check`` without --dataset): a
    dataset kind, or "name" when none fits (every video its own subject; not a kind training
    opens, so the check then asks for --dataset)."""
    names = list(names)
    if root is not None and (Path(root) / "labels.csv").exists():
        return "folder"
    if names and all(_UVA.match(n) for n in names):
        return "uva"
    spos = set(SPOS_SUBJECTS)
    if names and all(len(spos & set(re.split(r"[^a-z]+", n.lower()))) == 1 for n in names):
        return "spos"
    if names and all(n.isdigit() for n in names):
        return "mmi"
    return "name"


def labels_for(
    kind: str, names, root: Path, fold_labels: dict, listed: dict, table: LabelsTable | None
) -> dict[str, int]:
    """Labels from fold files (``listed``: name -> its fold file), then labels.csv, then the source
    layout and the name; every source that gives a video's label must agree."""
    layout = folder_labels(kind, root)
    out, conflicts, lacking = {}, [], []
    for n in names:
        options = []
        if n in fold_labels:
            options.append((str(listed[n]), fold_labels[n]))
        row = table.row(n) if table is not None else None
        if row is not None:
            options.append((str(table.path), table.labels[row]))
        key = strip_video_ext(n)  # what the dataset itself encodes must agree with the lists
        if key in layout:
            options.append((f"its {kind} source folder", layout[key]))
        if (label := name_label(kind, n)) is not None:
            options.append((f"its {kind} name", label))
        if not options:
            lacking.append(n)
            continue
        if len({lab for _, lab in options}) > 1:
            conflicts.append(f"{n} ({', '.join(f'{w}: {lab}' for w, lab in options)})")
        out[n] = options[0][1]
    if conflicts:
        raise ValueError(
            f"{root}: labels disagree for {len(conflicts)} video(s): {conflicts[:3]}; correct the "
            "source that is wrong (a fold file, a labels.csv row, or the video's folder or name)"
        )
    if lacking:
        source = {
            "bbc": f"BBC labels come from {root}/{{Genuine,posed}}/ (or a name starting with "
            "Genuine or posed): give --data-root the folder that holds them, or ",
            "spos": f"SPOS labels come from {root}/{{posed,spontaneous}}/happy/<clip>/: give "
            "--data-root the folder that holds them, or ",
        }.get(kind, "")
        raise ValueError(
            f"{root}: no label for {len(lacking)} video(s), e.g. {lacking[:3]}; {source}add fold "
            f"files labels/<k>/{{train,test}}.json or {root / 'labels.csv'} (video,label,subject)"
        )
    return out
