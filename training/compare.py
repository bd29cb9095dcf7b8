"""Compare finished runs: one table row per configuration, with paired differences to the first.

    python -m training.compare demo_data/runs/demo-deepmarkernet-seed0 \\
        demo_data/runs/demo-meshsmilenet-seed0 demo_data/runs/demo-dmarker-logreg-seed0

Each run folder is one ``smile_point.py --fold all`` (its ``results.json`` and ``fold_*/
test.json``). Several run folders joined by commas are one configuration's repeats: the same model
on the same folds with other ``--seed`` values. A difference to the first configuration is the mean
+- std over folds (and repeats) of (row - first) with the corrected resampled t-test's p-value over
the folds (with repeats, retraining noise included); and the difference of pooled accuracy with its
95% interval and a sign-flip permutation p-value, both with subjects as the unit
(training/significance.py). Repeat i is paired with repeat i, each configuration's in the order of
their seeds (a single run with every repeat: right for the deterministic baseline, whose runs are
never repeats; for a network a note asks for its repeats). Differences are shown
only when both tested the same videos in every fold (same dataset and folds), since only then is the
comparison paired.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from data.files import read_json, run_cli
from models.config import BASELINE
from training.config import load_config
from training.cross_validation import UNLISTED, config_differences, first_few
from training.report import REPORTED, brackets, correct_calls, mean_std, read_fold_result
from training.significance import corrected_t_p, difference_interval, per_subject, sign_flip_p


def load_run(path: Path) -> dict:
    """{"name", "model", "dataset", "subjects" (video -> subject; None in a run of an earlier
    version), "folds": {fold: test.json content}} of the folds results.json lists."""
    results = path / "results.json"
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such run folder (give smile_point.py's --out)")
    if not results.is_file() and path.name.startswith("fold_"):
        raise FileNotFoundError(f"{path}: a fold of a run; give the run folder {path.parent}")
    if not results.is_file():
        raise FileNotFoundError(
            f"{path}: no results.json; finish the run (smile_point.py --fold all --resume)"
        )
    rewrite = "rewrite it: smile_point.py --fold all --resume"
    table = read_json(results, rewrite, keys=("model", "dataset", "folds"))
    try:
        listed = sorted(int(r["fold"]) for r in table["folds"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{results}: its folds are not a list of fold rows; {rewrite}") from e
    folds = {}
    for k in listed:
        test = path / f"fold_{k:02d}" / "test.json"
        if not test.is_file():
            raise FileNotFoundError(
                f"{test}: listed in results.json but missing; rerun the run's --fold all command "
                "with --resume"
            )
        folds[k] = read_fold_result(test, "delete that fold folder, --resume")
    return {
        "name": str(path),
        "model": table["model"],
        "dataset": table["dataset"],
        "subjects": table.get("subjects"),
        "folds": folds,
    }


#: What repeats of one configuration may differ in: the seed (which must differ) and where the
#: data lie (the tested videos, and the D-Marker rows each fold read, are compared instead).
REPEAT_FREE = (
    ("train", "seed"),
    ("data", "root"),
    ("data", "folds"),
    ("data", "landmarks"),
    ("data", "dmarkers"),
)


def load_repeats(arg: str) -> dict:
    """One configuration: a run folder, or several joined by commas (its repeats, see
    :func:`check_repeats`). {"name", "model", "dataset", "repeats": [load_run, ...]}."""
    if "" in arg.split(","):
        raise ValueError(f"{arg}: an empty folder name; join run folders with single commas")
    paths = [Path(p) for p in arg.split(",")]
    runs = [load_run(p) for p in paths]
    if len(runs) > 1:  # in the order of their seeds: repeat i of two configurations pair up
        seeds = check_repeats(paths, runs)
        runs = [run for _, run in sorted(zip(seeds, runs, strict=True), key=lambda x: x[0])]
    return {"name": arg, "model": runs[0]["model"], "dataset": runs[0]["dataset"], "repeats": runs}


def check_repeats(paths: list[Path], runs: list[dict]) -> list[int]:
    """The runs' seeds; ValueError (one line) unless the runs are repeats of the first: the same
    tested videos and a config.yaml that differs only in :data:`REPEAT_FREE`, each with its own
    seed; never runs of the D-Marker baseline, which no seed changes."""
    if any(run["model"] == BASELINE for run in runs):
        raise ValueError(
            f"{','.join(map(str, paths))}: {BASELINE} runs cannot be repeats: its inner "
            "cross-validation and fit draw nothing at random, so another --seed on the same folds "
            "gives the same calls and would only count them twice; give one run"
        )
    configs = []
    for path in paths:
        if not (path / "config.yaml").is_file():
            raise ValueError(f"{path}: no config.yaml, so it cannot be checked as a repeat")
        configs.append(load_config(path / "config.yaml", checked=False))
    seeds: dict[int, Path] = {}
    for path, run, cfg in zip(paths, runs, configs, strict=True):
        if cfg.train.seed in seeds:
            raise ValueError(
                f"{path}: seed {cfg.train.seed}, as {seeds[cfg.train.seed]}; repeats are runs "
                "with other --seed values (a run given twice, or rerun with its seed, is no new "
                "draw)"
            )
        seeds[cfg.train.seed] = path
        why = [] if same_videos(run, runs[0]) else ["other folds or videos"]
        if not same_dmarkers(run, runs[0], cfg.data.dmarkers, configs[0].data.dmarkers):
            why.append("another D-Marker table")
        if not same_landmarks(run, runs[0]):
            why.append("other landmark files")
        if run["model"] != runs[0]["model"]:
            why.append(f"model {runs[0]['model']} -> {run['model']}")
        else:
            why += config_differences(configs[0], cfg, REPEAT_FREE)
        if why:
            raise ValueError(
                f"{run['name']}: not a repeat of {runs[0]['name']} ({first_few(why)}); repeats "
                "differ only in --seed"
            )
    return list(seeds)


#: The metrics whose paired differences the table shows.
PAIRED = ("accuracy", "auc")
#: The pooled difference's cell where neither run keeps its videos' subjects.
NO_SUBJECTS = "n/a (no subjects)"


def same_dmarkers(run: dict, first: dict, named: str | None, first_named: str | None) -> bool:
    """Whether both runs' folds learned from the same D-Marker rows (``dmarker_digest``, None
    for a model that reads none); where a fold of either lacks the record (results of earlier
    versions), whether their configs name the same table file (``named``: data.dmarkers)."""
    shared = run["folds"].keys() & first["folds"].keys()
    if all("dmarker_digest" in r["folds"][k] for r in (run, first) for k in shared):
        return all(run["folds"][k]["dmarker_digest"] == first["folds"][k]["dmarker_digest"]
                   for k in shared)  # fmt: skip
    paths = [Path(p).resolve() if p else None for p in (named, first_named)]
    return paths[0] == paths[1]


def same_landmarks(run: dict, first: dict) -> bool:
    """Whether both runs' networks learned from the same landmark arrays in every fold both
    recorded them (``landmark_digest``; results of earlier versions and the baseline have none)."""
    digests = [
        (run["folds"][k].get("landmark_digest"), first["folds"][k].get("landmark_digest"))
        for k in run["folds"].keys() & first["folds"].keys()
    ]
    return all(a == b for a, b in digests if a is not None and b is not None)


def same_videos(run: dict, first: dict) -> bool:
    """Whether both runs tested the same videos, with the same labels, in every fold (a paired
    comparison)."""

    def labelled(r: dict, k) -> dict:
        return {n: v["label"] for n, v in r["folds"][k]["videos"].items()}

    return bool(run["folds"]) and (
        run["folds"].keys() == first["folds"].keys()
        and all(labelled(run, k) == labelled(first, k) for k in run["folds"])
    )


def pairs(config: dict, first: dict) -> list[tuple[dict, dict]]:
    """(run of config, run of first): repeat i with repeat i (each configuration's in the order
    of their seeds: the same seed with the same seed where both used the same seeds), a single
    run with every repeat."""
    a, b = config["repeats"], first["repeats"]
    if len(a) != len(b) and 1 not in (len(a), len(b)):
        raise ValueError(
            f"{config['name']}: {len(a)} repeats against {len(b)} of {first['name']}; give as "
            "many (repeat i is paired with repeat i) or a single run"
        )
    return [(a[i % len(a)], b[i % len(b)]) for i in range(max(len(a), len(b)))]


def settings_notes(configs: list[dict]) -> list[str]:
    """A note per configuration whose settings (its config.yaml, as results.md lists them: an
    ablation, --set overrides) differ from the first's beyond the model, which the table shows
    (none where a config.yaml is missing or unreadable), and per configuration whose networks
    learned from other landmark arrays than the first's (``landmark_digest``)."""
    settings = [_settings(Path(c["repeats"][0]["name"]) / "config.yaml") for c in configs]
    notes = []
    for c, cfg in zip(configs[1:], settings[1:], strict=True):
        if None not in (settings[0], cfg) and (
            diff := config_differences(settings[0], cfg, UNLISTED)
        ):
            notes.append(
                f"note: {c['name']} differs from {configs[0]['name']} in {'; '.join(diff)}"
            )
        if not same_landmarks(c["repeats"][0], configs[0]["repeats"][0]):
            notes.append(
                f"note: {c['name']} learned from other landmark files than {configs[0]['name']} "
                "(another extraction or landmark set): its differences include theirs"
            )
    return notes


def _settings(file: Path):
    """The config a run folder's config.yaml holds, or None where it has none it can read."""
    try:
        return load_config(file, checked=False)
    except (OSError, ValueError):
        return None


def single_run_notes(configs: list[dict]) -> list[str]:
    """A note per single run of a network paired with another configuration's repeats: a single
    run with every repeat is right for the deterministic baseline only; a network's retraining
    noise, which its own repeats would show, is then left out of the p-values."""
    notes: dict[str, str] = {}
    first = configs[0]
    for config in configs[1:]:
        for a, b in ((config, first), (first, config)):
            if len(a["repeats"]) == 1 < len(b["repeats"]) and a["model"] != BASELINE:
                notes.setdefault(
                    a["name"],
                    f"note: {a['name']} is a single run of {a['model']}, paired with each repeat "
                    f"of {b['name']}: its retraining noise is not in the p-values; give its "
                    "repeats too (other --seed, joined by commas)",
                )
    return list(notes.values())


def fold_differences(config: dict, first: dict, metric: str) -> np.ndarray:
    """(r, k) per-fold differences config - first of ``metric`` over the r paired repeats."""
    return np.array(
        [
            [run["folds"][k][metric] - ref["folds"][k][metric] for k in sorted(ref["folds"])]
            for run, ref in pairs(config, first)
        ]
    )


def paired(config: dict, first: dict) -> dict[str, str]:
    """Per metric of :data:`PAIRED`, "mean +- std" over folds (and repeats) of config - first,
    and "t_p": the accuracy's corrected resampled t-test; {} when the folds differ."""
    if not same_videos(config["repeats"][0], first["repeats"][0]):
        return {}
    diffs = {m: fold_differences(config, first, m) for m in PAIRED}
    out = {}
    for m, d in diffs.items():
        d = d[~np.isnan(d)]  # AUC undefined in a fold
        out[m] = f"{d.mean():+.3f} +- {d.std():.3f}" if d.size else "n/a"
    sizes = [len(f["videos"]) for _, f in sorted(first["repeats"][0]["folds"].items())]
    p = corrected_t_p(diffs["accuracy"], held_out_ratio(first), sizes)
    out["t_p"] = "n/a" if np.isnan(p) else "p < 0.001" if p < 0.001 else f"p {p:.3f}"
    return out


def held_out_ratio(config: dict) -> float:
    """Mean over folds of test videos / training videos (the other folds' videos, validation
    included): 1 / (k - 1) for k equal folds. From the folds results.json lists, so a table of
    some folds only overstates it (a more cautious test); NaN for a single fold."""
    sizes = np.array([len(f["videos"]) for f in config["repeats"][0]["folds"].values()])
    rest = sizes.sum() - sizes
    return float(np.mean(sizes / rest)) if rest.all() else float("nan")


def pooled_difference(config: dict, first: dict) -> str:
    """Pooled accuracy of config - first (averaged over paired repeats), its 95% interval and
    p-value by subject; the reason where there are none: other folds, no run with subjects (runs
    of an earlier version), or runs that give a video two subjects (or none)."""
    if not same_videos(config["repeats"][0], first["repeats"][0]):
        return "other folds"
    runs = [*config["repeats"], *first["repeats"]]
    maps = [r["subjects"] for r in runs if r["subjects"] is not None]
    if not maps:
        return NO_SUBJECTS
    both = pairs(config, first)
    diffs = dict.fromkeys(correct_calls(first["repeats"][0]["folds"]), 0.0)
    for run, ref in both:
        a, b = correct_calls(ref["folds"]), correct_calls(run["folds"])
        for v in diffs:
            diffs[v] += (b[v] - a[v]) / len(both)
    if any(v not in m or m[v] != maps[0][v] for m in maps for v in diffs):
        return "n/a (subjects differ)"  # or one is missing: results.json of other folds
    sums, counts = per_subject(diffs, maps[0])
    p = sign_flip_p(sums)
    return (
        f"{sums.sum() / counts.sum():+.3f} {brackets(difference_interval(sums, counts), '+')}, "
        + ("p < 0.001" if p < 0.001 else f"p {p:.3f}")
    )


def compare_table(configs: list[dict]) -> str:
    """Markdown: per configuration its mean +- std over folds (and repeats), and its paired
    differences to the first."""
    lines = [
        "| run | model | dataset | folds | accuracy | AUC | F1 | accuracy - first | AUC - first "
        "| pooled accuracy - first [95%], p | accuracy - first: corrected t-test |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    first = configs[0]
    for i, config in enumerate(configs):
        ms = mean_std([f for run in config["repeats"] for f in run["folds"].values()])
        cells = [
            f"{ms[m]['mean']:.3f} +- {ms[m]['std']:.3f}" if ms.get(m) else "n/a" for m in REPORTED
        ]
        diff = paired(config, first) if i else {}
        to_first = (
            [diff.get(m, "other folds") for m in PAIRED]
            + [pooled_difference(config, first), diff.get("t_p", "other folds")]
            if i
            else ["(first)"] * 4
        )
        k, r = len(config["repeats"][0]["folds"]), len(config["repeats"])
        lines.append(
            f"| {config['name']} | {config['model']} | {config['dataset']} | "
            f"{k if r == 1 else f'{k} x {r} repeats'} | " + " | ".join(cells + to_first) + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m training.compare", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "runs",
        nargs="+",
        help="run folders of smile_point.py --fold all; repeats of one configuration (other "
        "--seed) joined by commas",
    )
    args = p.parse_args(argv)
    try:
        configs = [load_repeats(r) for r in args.runs]
        for config in configs[1:]:
            pairs(config, configs[0])
    except (FileNotFoundError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    table = compare_table(configs)
    print(table)
    for note in [*single_run_notes(configs), *settings_notes(configs)]:
        print(note)
    old = [r["name"] for c in configs for r in c["repeats"] if r["subjects"] is None]
    if NO_SUBJECTS in table:
        print(
            f"{', '.join(old)}: results.json without subjects (an earlier version); rerun the "
            "run's smile_point.py --fold all command with --resume to add them (finished folds "
            "are kept)"
        )
    return 0


if __name__ == "__main__":
    run_cli(main)
