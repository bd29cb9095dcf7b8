"""What a dataset's errors tell the user to run: the command that rebuilds a damaged landmark
file or a demo, and the error for a dataset without landmarks."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from data.store import DATASET_FILE_FIX


def landmark_fix(kind: str, root: Path) -> str:
    """What to do about a damaged landmark file of the dataset: extract its video again, or, for a
    demo, generate the demo again."""
    if kind == "demo":
        return f"generate the demo again: {demo_command(root)}"
    return DATASET_FILE_FIX


def demo_command(root: Path) -> str:
    """The ``data.demo`` command that writes the demo at ``root`` again: the same seed, subjects
    and folds as its ``demo.json`` records, or that of the set an interrupted rerun was replacing
    (the defaults when neither is there)."""
    from data.demo import PENDING

    command = f"python -m data.demo --out {shlex.quote(str(root))}"
    for record in ("demo.json", PENDING):
        try:
            made = json.loads((root / record).read_text())
            return command + "".join(
                f" --{k} {int(made[k])}" for k in ("seed", "subjects", "folds")
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return command


def no_landmarks(kind: str, root: Path, landmarks_dir: Path) -> FileNotFoundError:
    """The error for a dataset without landmarks, its folder named in full (a relative default
    such as ``uva/npy`` read from another folder looks like one that exists)."""
    root, landmarks_dir = root.absolute(), landmarks_dir.absolute()
    if kind == "demo":
        from data.claim import held
        from data.demo import LOCK

        build = demo_command(root)
        if held(root / LOCK):
            return FileNotFoundError(
                f"the demo dataset at {root} is being written ({root / LOCK}); wait for it"
            )
        if not (root / "demo.json").exists():
            return FileNotFoundError(f"no demo dataset at {root}: run {build}")
        where = f"a demo keeps them in {root / 'npy'}; rebuild it: {build}"
        return FileNotFoundError(f"no landmarks under {landmarks_dir} ({where})")
    return FileNotFoundError(
        f"no landmarks under {landmarks_dir}: run extract_landmarks.py <{kind} videos folder> "
        f"--dataset {kind} --output {landmarks_dir}, or use --dataset demo"
    )
