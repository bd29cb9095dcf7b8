"""Compare finished runs: one table row per run, with paired per-fold differences to the first.

    python -m training.compare demo_data/runs/demo-deepmarkernet-seed0 \\
        demo_data/runs/demo-meshsmilenet-seed0 demo_data/runs/demo-dmarker-logreg-seed0

Each run folder is one ``smile_point.py --fold all`` (its ``results.json`` and ``fold_*/
test.json``). A difference to the first run is the mean +- std over folds of (run - first); it
is shown only when both runs tested the same videos in every fold (same dataset and folds),
since only then is the comparison paired.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

from data.io import read_json
from training.report import REPORTED


def load_run(path: Path) -> dict:
    """{"name", "model", "dataset", "summary", "folds": {fold: test.json content}}."""
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
    folds = {
        int(d.name.split("_")[1]): read_json(d / "test.json", "delete that fold folder, --resume")
        for d in sorted(path.glob("fold_*"))
        if (d / "test.json").is_file()
    }
    return {
        "name": str(path),
        "model": table["model"],
        "dataset": table["dataset"],
        "summary": table["summary"],
        "folds": folds,
    }


#: The metrics whose paired differences the table shows.
PAIRED = ("accuracy", "auc")


def paired(run: dict, first: dict) -> dict[str, str]:
    """Per metric of :data:`PAIRED`, "mean +- std" over folds of run - first; {} when the folds
    differ."""
    same = run["folds"].keys() == first["folds"].keys() and all(
        run["folds"][k]["videos"].keys() == first["folds"][k]["videos"].keys() for k in run["folds"]
    )
    if not same or not run["folds"]:
        return {}
    out = {}
    for m in PAIRED:
        d = [run["folds"][k][m] - first["folds"][k][m] for k in sorted(run["folds"])]
        d = [x for x in d if not math.isnan(x)]  # AUC undefined in a fold
        out[m] = f"{statistics.fmean(d):+.3f} +- {statistics.pstdev(d):.3f}" if d else "n/a"
    return out


def compare_table(runs: list[dict]) -> str:
    """Markdown: per run its mean +- std over folds, and its paired difference to the first."""
    lines = [
        "| run | model | dataset | folds | accuracy | AUC | F1 | accuracy - first | AUC - first |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for i, run in enumerate(runs):
        ms = run["summary"]["mean_std"]
        cells = [
            f"{ms[m]['mean']:.3f} +- {ms[m]['std']:.3f}" if ms.get(m) else "n/a" for m in REPORTED
        ]
        diff = paired(run, runs[0]) if i else {}
        first = ["(first)"] * 2 if not i else [diff.get(m, "other folds") for m in PAIRED]
        lines.append(
            f"| {run['name']} | {run['model']} | {run['dataset']} | {len(run['folds'])} | "
            + " | ".join(cells + first)
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
    print(compare_table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
