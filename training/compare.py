"""Compare finished runs: one table row per run, with paired per-fold differences to the first.

    python -m training.compare demo_data/runs/demo-deepmarkernet-seed0 \\
        demo_data/runs/demo-meshsmilenet-seed0 demo_data/runs/demo-dmarker-logreg-seed0

Each run folder is one ``smile_point.py --fold all`` (its ``results.json`` and ``fold_*/
test.json``). A difference to the first run is the mean +- std over folds of (run - first), and
the difference of pooled accuracy with its 95% bootstrap interval and a sign-flip permutation
p-value, both with subjects as the unit (training/significance.py). It is shown only when both
runs tested the same videos in every fold (same dataset and folds), since only then is the
comparison paired.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

from data.io import read_json
from training.report import REPORTED, brackets, correct_calls
from training.significance import bootstrap_interval, per_subject, sign_flip_p


def load_run(path: Path) -> dict:
    """{"name", "model", "dataset", "summary", "subjects" (video -> subject; None in a run of
    an earlier version), "folds": {fold: test.json content}} of the folds results.json lists."""
    results = path / "results.json"
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such run folder (give smile_point.py's --out)")
    if not results.is_file() and path.name.startswith("fold_"):
        raise FileNotFoundError(f"{path}: a fold of a run; give the run folder {path.parent}")
    if not results.is_file():
        raise FileNotFoundError(
            f"{path}: no results.json; finish the run (smile_point.py --fold all --resume)"
        )
    table = read_json(results, "rewrite it: smile_point.py --fold all --resume")
    folds = {}
    for k in sorted(int(r["fold"]) for r in table["folds"]):
        test = path / f"fold_{k:02d}" / "test.json"
        if not test.is_file():
            raise FileNotFoundError(
                f"{test}: listed in results.json but missing; rerun the run's --fold all command "
                "with --resume"
            )
        folds[k] = read_json(test, "delete that fold folder, --resume")
    return {
        "name": str(path),
        "model": table["model"],
        "dataset": table["dataset"],
        "summary": table["summary"],
        "subjects": table.get("subjects"),
        "folds": folds,
    }


#: The metrics whose paired differences the table shows.
PAIRED = ("accuracy", "auc")
#: The pooled difference's cell where neither run keeps its videos' subjects.
NO_SUBJECTS = "n/a (no subjects)"


def same_videos(run: dict, first: dict) -> bool:
    """Whether both runs tested the same videos in every fold (a paired comparison)."""
    return bool(run["folds"]) and (
        run["folds"].keys() == first["folds"].keys()
        and all(
            run["folds"][k]["videos"].keys() == first["folds"][k]["videos"].keys()
            for k in run["folds"]
        )
    )


def paired(run: dict, first: dict) -> dict[str, str]:
    """Per metric of :data:`PAIRED`, "mean +- std" over folds of run - first; {} when the folds
    differ."""
    if not same_videos(run, first):
        return {}
    out = {}
    for m in PAIRED:
        d = [run["folds"][k][m] - first["folds"][k][m] for k in sorted(run["folds"])]
        d = [x for x in d if not math.isnan(x)]  # AUC undefined in a fold
        out[m] = f"{statistics.fmean(d):+.3f} +- {statistics.pstdev(d):.3f}" if d else "n/a"
    return out


def pooled_difference(run: dict, first: dict) -> str:
    """Pooled accuracy of run - first, its 95% interval and p-value by subject; the reason where
    there are none: other folds, neither run with subjects (runs of an earlier version), or
    runs that give a video two subjects (or none)."""
    if not same_videos(run, first):
        return "other folds"
    a, b = correct_calls(first["folds"]), correct_calls(run["folds"])
    maps = [r["subjects"] for r in (first, run) if r["subjects"] is not None]
    if not maps:
        return NO_SUBJECTS
    if any(v not in m or m[v] != maps[0][v] for m in maps for v in a):
        return "n/a (subjects differ)"  # or one is missing: results.json of other folds
    sums, counts = per_subject({v: b[v] - a[v] for v in a}, maps[0])
    p = sign_flip_p(sums)
    return (
        f"{sums.sum() / counts.sum():+.3f} {brackets(bootstrap_interval(sums, counts), '+')}, "
        + ("p < 0.001" if p < 0.001 else f"p {p:.3f}")
    )


def compare_table(runs: list[dict]) -> str:
    """Markdown: per run its mean +- std over folds, and its paired difference to the first."""
    lines = [
        "| run | model | dataset | folds | accuracy | AUC | F1 | accuracy - first | AUC - first "
        "| pooled accuracy - first [95%], p |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, run in enumerate(runs):
        ms = run["summary"]["mean_std"]
        cells = [
            f"{ms[m]['mean']:.3f} +- {ms[m]['std']:.3f}" if ms.get(m) else "n/a" for m in REPORTED
        ]
        diff = paired(run, runs[0]) if i else {}
        to_first = (
            [diff.get(m, "other folds") for m in PAIRED] + [pooled_difference(run, runs[0])]
            if i
            else ["(first)"] * 3
        )
        lines.append(
            f"| {run['name']} | {run['model']} | {run['dataset']} | {len(run['folds'])} | "
            + " | ".join(cells + to_first)
            + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.compare", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("runs", nargs="+", help="run folders of smile_point.py --fold all")
    args = p.parse_args(argv)
    try:
        runs = [load_run(Path(r)) for r in args.runs]
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    table = compare_table(runs)
    print(table)
    old = [run["name"] for run in runs if run["subjects"] is None]
    if NO_SUBJECTS in table:
        print(
            f"{', '.join(old)}: results.json without subjects (an earlier version); rerun the "
            "run's smile_point.py --fold all command with --resume to add them (finished folds "
            "are kept)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
