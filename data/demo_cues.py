"""Which of the demo generator's class cues a trained run uses.

    python -m data.demo_cues RUN [--demo DIR]

Every demo video is scored once, by the fold that tests it (``RUN/fold_*/test.json``). For each
cue of the generator (:data:`data.demo_motion.CUES`) this prints the correlation, within each
class, of the run's logit with the cue's exact share of the log posterior odds; the accuracy of the
cue alone (the Bayes rule on that share); and the accuracy of a logistic regression on the run's
logit plus that share, fitted and tested over the run's own folds. A cue the run already uses adds
little; a cue it misses adds about what it is worth. A diagnostic for tuning on the demo: it reads
the generator's latents, which no model sees.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from data.dataset_fixes import demo_command
from data.demo import cv_accuracy
from data.demo_motion import CUES, LATENTS, ClassParams, MotionParams, cue_log_ratios
from data.files import read_json, run_cli
from data.folds import read_folds
from training.config import load_config


def motion_params(demo_json: dict) -> MotionParams:
    """The generator parameters recorded in a demo's ``demo.json``."""
    d = dict(demo_json["parameters"])
    classes = {k: ClassParams(**d.pop(k)) for k in ("posed", "spontaneous")}
    return MotionParams(**classes, **d)


def read_latents(root: Path) -> dict[str, list[float]]:
    """{video: its informative latents in :data:`LATENTS` order} from a demo's ``latents.csv``."""
    with open(root / "latents.csv") as f:
        return {r["video"]: [float(r[k]) for k in LATENTS] for r in csv.DictReader(f)}


def run_logits(run: Path) -> dict[str, tuple[int, float]]:
    """{video: (label, logit of the test probability)} over the run's test folds."""
    files = sorted(run.glob("fold_*/test.json"))
    if not files:
        raise FileNotFoundError(f"{run}: no fold_*/test.json; give a finished smile_point.py run")
    out = {}
    for f in files:
        result = read_json(f, "delete that fold folder and resume the run", ("videos",))
        for name, v in result["videos"].items():
            p = float(np.clip(v["probability"], 1e-6, 1 - 1e-6))
            out[name] = (int(v["label"]), float(np.log(p / (1 - p))))
    return out


def cue_table(run: Path, root: Path) -> str:
    """The report described in the module docstring, as text."""
    demo_json = root / "demo.json"
    if not demo_json.exists():
        raise FileNotFoundError(f"{root}: no demo.json; give the demo folder the run used (--demo)")
    params = motion_params(
        read_json(demo_json, f"generate it again: {demo_command(root)}", ("parameters",))
    )
    latents = read_latents(root)
    scored = run_logits(run)
    if missing := sorted(set(latents) - set(scored)):
        raise ValueError(
            f"{run}: no test probability for {len(missing)} demo videos ({missing[0]}); finish "
            "every fold (smile_point.py --fold all, or --resume)"
        )
    names = sorted(latents)
    y = np.array([scored[n][0] for n in names])
    logit = np.array([scored[n][1] for n in names])
    ratios = cue_log_ratios(np.array([latents[n] for n in names]), params)
    folds = read_folds(root / "labels")

    def acc(*columns) -> float:
        return cv_accuracy(np.column_stack(columns), y, names, folds, 1.0)

    total = sum(ratios.values())
    lines = [
        f"{run}: {len(names)} videos, {len(folds)} folds; the run's accuracy at 0.5: "
        f"{((logit >= 0) == y).mean():.3f}, its logit refitted over the folds: {acc(logit):.3f}",
        f"{'cue':<14} {'r posed':>8} {'r spont':>8} {'cue alone':>10} {'logit + cue':>12}",
    ]
    for cue in (*CUES, "all"):
        share = total if cue == "all" else ratios[cue]
        r = [np.corrcoef(share[y == c], logit[y == c])[0, 1] for c in (0, 1)]
        lines.append(
            f"{cue:<14} {r[0]:>8.2f} {r[1]:>8.2f} {((share > 0) == y).mean():>10.3f} "
            f"{acc(logit, share):>12.3f}"
        )
    return "\n".join(lines)


def demo_root(run: Path, demo: str | None) -> Path:
    """The demo folder: ``demo`` (--demo), else the data root in the run's ``config.yaml``."""
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: no such folder; give a finished smile_point.py run")
    if demo is not None:
        return Path(demo)
    if not (run / "config.yaml").is_file():
        raise FileNotFoundError(
            f"{run}: no config.yaml, so not a smile_point.py run; give one, or its demo folder "
            "with --demo"
        )
    return Path(load_config(run / "config.yaml", checked=False).data.root)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("run", help="a finished smile_point.py run on a demo dataset")
    ap.add_argument("--demo", help="the demo folder (default: the run's data.root)")
    args = ap.parse_args(argv)
    run = Path(args.run)
    try:
        print(cue_table(run, demo_root(run, args.demo)))
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    run_cli(main)
