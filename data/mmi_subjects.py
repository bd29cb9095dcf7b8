"""MMI's subject rule: a session's subject id from its metadata (``Sessions/<id>/session.xml``,
else an ``S<nnn>-*`` video name); a session with neither is one of the people of its test fold
(the published folds are subject-independent), who then form one subject group."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from data.video import natural_key

#: Prefix of a rule that takes subjects from the folds: a leak check against it is circular.
UNVERIFIABLE = "NOT VERIFIABLE, subjects inferred from the folds: "


def _subject_id(text: str) -> str:
    """One spelling per MMI subject: a numeric id without its leading zeros (``"007"`` in a
    session.xml and ``S7-`` in a video name are one person)."""
    text = text.strip()
    return str(int(text)) if text.isdecimal() else text


def mmi_session_subject(root: Path, session: str) -> str | None:
    """Subject id of an MMI session from ``Sessions/<id>/session.xml`` or its ``S<nnn>-*`` video
    (numeric ids without leading zeros, whichever gives it)."""
    folder = Path(root) / "Sessions" / session
    xml = folder / "session.xml"
    if xml.exists():
        try:
            tree = ET.parse(xml)
        except (ET.ParseError, OSError) as e:
            raise ValueError(f"{xml}: unreadable session metadata ({e})") from e
        for el in tree.iter():
            attrs = {k.lower(): v for k, v in el.attrib.items()}
            if el.tag.lower() == "subject" and attrs.get("id"):
                return _subject_id(attrs["id"])
            for key in ("subjectid", "subject_id", "subject"):
                if attrs.get(key):
                    return _subject_id(attrs[key])
    return mmi_video_subject(folder)


def mmi_video_subject(folder: Path) -> str | None:
    """Subject id of an MMI session from the ``S<nnn>-*`` name of a video in its folder."""
    if folder.is_dir():
        for video in sorted(folder.iterdir()):
            m = re.match(r"^S(\d+)-", video.name, re.IGNORECASE)
            if m:
                return _subject_id(m.group(1))
    return None


def mmi_subjects(names: list[str], root: Path | None, folds) -> tuple[dict[str, str], str]:
    """MMI: each session's subject from its metadata. A session without it stands for one of
    the people of its test fold, so that fold's people (their sessions in any fold) become one
    subject group, ``group<k>(S<id>+...)`` (groups that share a person are one; the name lists
    its people with metadata, so a leak names them); the other people keep
    their ``S<id>``, and leaks between them are still seen. Any session without metadata makes
    the rule :data:`UNVERIFIABLE`."""
    meta = {n: mmi_session_subject(root, n) for n in names} if root is not None else {}
    subject = {n: f"S{meta[n]}" for n in names if meta.get(n)}
    if len(subject) == len(names):
        return subject, "MMI session metadata"
    unknown = [n for n in names if n not in subject]
    test_fold = {}
    for fold in folds or []:
        for n in fold.test:
            test_fold.setdefault(n, f"group{fold.index}")
    where = f"{root}/Sessions/<id>" if root is not None else "Sessions/<id>"
    if lacking := [n for n in unknown if n not in test_fold]:
        raise ValueError(
            f"MMI sessions without metadata in no test fold, subject unknown: "
            f"{', '.join(lacking[:5])}; give them {where}/session.xml or an S<nnn>-*.avi video, "
            "add them to a test fold, or give a labels.csv subject column"
        )
    group = {}  # person or group -> the group it joins (union-find, smallest name as root)

    def root_of(x: str) -> str:
        while group.get(x, x) != x:
            x = group[x]
        return x

    for fold in folds:
        if any(n not in subject for n in fold.test):
            for n in fold.test:
                a = root_of(f"group{fold.index}")
                b = root_of(subject.get(n, a))
                group[max(a, b, key=_group_order)] = min(a, b, key=_group_order)
    people = {}  # a group's people with metadata, to name it by (a leak message shows them)
    for person in set(subject.values()):
        people.setdefault(root_of(person), []).append(person)
    named = {
        g: f"{g}({'+'.join(sorted(ps, key=natural_key))})"
        for g, ps in people.items()
        if g.startswith("group")
    }
    out = {n: named.get(g, g) for n in names for g in [root_of(subject.get(n) or test_fold[n])]}
    if not subject:
        return out, UNVERIFIABLE + "MMI fold membership (one subject group per test fold)"
    return out, (
        UNVERIFIABLE + f"MMI session metadata, and fold membership for the people of test folds "
        f"holding the {len(unknown)} of {len(names)} sessions without it (e.g. "
        f"{', '.join(unknown[:3])}: no {where}/session.xml nor S<nnn>-*.avi video)"
    )


def _group_order(name: str) -> tuple:
    """Groups before people, then by number: the name a merged group goes by."""
    return (not name.startswith("group"), natural_key(name))
