"""The cross-validation table: per-fold rows, mean +- std over folds, pooled over test videos."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np

from data.files import atomic_write_json, atomic_write_text, read_json
from models.config import BASELINE
from training.metrics import auc
from training.significance import MIN_SUBJECTS, accuracy_interval, per_subject

REPORTED = ("accuracy", "auc", "f1")
#: What every fold's test.json holds and the tables read.
FOLD_RESULT_KEYS = (*REPORTED, "threshold", "videos")


def read_fold_result(path: Path, fix: str) -> dict:
    """A fold's test.json (``fix``: what to do if it is unreadable); a metric undefined in the
    fold, null in the file (strict JSON), is NaN here."""
    result = read_json(path, fix, FOLD_RESULT_KEYS)
    return {**result, **{m: math.nan for m in REPORTED if result[m] is None}}


def fold_rows(results: dict[int, dict]) -> list[dict]:
    """One row per fold from its test.json content."""
    keep = ("n", "best_epoch", "threshold", *REPORTED)
    return [
        {"fold": k, **{m: r[m] for m in keep}, **({"C": r["C"]} if "C" in r else {})}
        for k, r in sorted(results.items())
    ]


def mean_std(rows: list[dict]) -> dict:
    """Mean and population std over folds; folds where a metric is undefined (AUC of a
    one-class test fold, F1 of a fold with no spontaneous video in truth or prediction) are left
    out of it and the count says so."""
    out = {}
    for m in REPORTED:
        values = [r[m] for r in rows if not math.isnan(r[m])]
        out[m] = (
            {
                "mean": statistics.fmean(values),
                "std": statistics.pstdev(values),
                "folds": len(values),
            }
            if values
            else None
        )
    return out


def tested_videos(results: dict[int, dict]) -> dict[str, dict]:
    """The test videos of every fold: name -> its test.json entry (label, probability) with its
    fold's ``threshold``. A name tested in two folds is refused (the test parts are disjoint)."""
    out: dict[str, dict] = {}
    for k, r in sorted(results.items()):
        for name, v in r["videos"].items():
            if name in out:
                raise ValueError(f"{name}: tested in two folds ({out[name]['fold']} and {k})")
            out[name] = {**v, "threshold": r["threshold"], "fold": k}
    return out


def correct_calls(results: dict[int, dict]) -> dict[str, int]:
    """Per test video of every fold: 1 if its call (at its fold's threshold) is right, else 0."""
    return {
        name: int((v["probability"] >= v["threshold"]) == bool(v["label"]))
        for name, v in tested_videos(results).items()
    }


def pooled(results: dict[int, dict], subjects: dict[str, str]) -> dict:
    """Accuracy over all test videos (each at its fold's threshold) with its 95% interval,
    subjects as clusters (``subjects``: video -> subject; None with too few subjects), and the
    AUC of the pooled probabilities (models of different folds: a rough figure)."""
    videos = tested_videos(results).values()
    labels, probs = (np.array([v[key] for v in videos]) for key in ("label", "probability"))
    sums, counts = per_subject(correct_calls(results), subjects)
    return {
        "accuracy": float(sums.sum() / counts.sum()),
        "accuracy_interval": accuracy_interval(sums, counts),
        "subjects": len(sums),
        "auc": auc(labels, probs),
        "n": len(videos),
    }


def what_validation_chose(threshold_rule: str, model: str) -> str:
    """How a fold's epoch (the baseline's C) and threshold were set, for ``train.threshold`` =
    val | fixed."""
    chosen, where = (
        ("C", "by subject-grouped inner cross-validation on each fold's training part")
        if model == BASELINE
        else ("epoch", "on validation (each fold's inner split)")
    )
    if threshold_rule == "val":
        return f"{chosen} and threshold chosen {where}"
    return f"threshold fixed at 0.5, {chosen} chosen {where}"


def write_results(
    out: Path,
    dataset: str,
    model: str,
    results: dict[int, dict],
    threshold_rule: str,
    *,
    subjects: dict[str, str],
    folds_dir: str | None = None,
    notes: tuple[str, ...] | list[str] = (),
) -> dict:
    """Write results.json and results.md under ``out``; returns the summary.

    ``threshold_rule``: ``train.threshold`` of the run (val: chosen on validation | fixed: 0.5);
    ``subjects``: video -> subject for the test videos (kept in results.json for
    ``training.compare``); ``folds_dir``: the fold folder, named in the title (a subset of folds
    is another table); ``notes``: lines on what the run is (its settings, a fold subset).
    """
    rows = fold_rows(results)
    subjects = {n: subjects[n] for n in sorted(tested_videos(results))}
    summary = {"mean_std": mean_std(rows), "pooled": pooled(results, subjects)}
    atomic_write_json(
        out / "results.json",
        {
            "dataset": dataset,
            "model": model,
            "folds_dir": folds_dir,
            "notes": list(notes),
            "folds": rows,
            "summary": summary,
            "subjects": subjects,
        },  # fmt: skip
    )
    ms, pool = summary["mean_std"], summary["pooled"]
    interval = pool["accuracy_interval"]
    lines = [
        f"# {model} on {dataset} ({len(rows)} folds{f' of {folds_dir}' if folds_dir else ''})",
        "",
        f"| fold | test videos | {'C' if model == BASELINE else 'best epoch'} | threshold | "
        "accuracy | AUC | F1 |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r['fold']} | {r['n']} | {r.get('C', r['best_epoch'])} | {r['threshold']:.3f} | "
            + " | ".join(_cell(r[m]) for m in REPORTED)
            + " |"
            for r in rows
        ),
        "| **mean +- std** | | | | "
        + " | ".join(
            f"{ms[m]['mean']:.3f} +- {ms[m]['std']:.3f}" if ms[m] else "n/a" for m in REPORTED
        )
        + " |",
        f"| **pooled** | {pool['n']} | | | {pool['accuracy']:.3f} {brackets(interval)} | "
        f"{_cell(pool['auc'])} | |",
        "",
        _capitalized(what_validation_chose(threshold_rule, model))
        + "; each test fold read once. std: population standard deviation over the folds. "
        "Pooled: all test videos together, each at its own fold's threshold; in brackets its 95% "
        f"interval with the {pool['subjects']} subjects as clusters (Wilson's interval, the "
        f"videos counted by the subjects' design effect; none below {MIN_SUBJECTS} subjects).",
    ]
    where = {
        "auc": "whose test part has both classes",
        "f1": "with a spontaneous video in their test part or among their calls",
    }
    for m, why in where.items():
        if ms[m] and ms[m]["folds"] < len(rows):
            lines.append(f"{m.upper()} mean over the {ms[m]['folds']} folds {why}.")
    lines += [line for note in notes for line in ("", note)]  # a paragraph each
    atomic_write_text(out / "results.md", "\n".join(lines) + "\n")
    return summary


def _cell(value: float) -> str:
    """A metric in a table: three decimals, or n/a where it is undefined (NaN)."""
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def _capitalized(text: str) -> str:
    """First letter upper case, the rest as it is (str.capitalize lowers "C")."""
    return text[:1].upper() + text[1:]


def brackets(interval: tuple[float, float] | None, sign: str = "") -> str:
    """``[lo, hi]`` of a 95% interval, or ``[n/a]`` where there is none (too few subjects);
    ``sign="+"`` prints the signs of a difference."""
    if interval is None:
        return "[n/a]"
    lo, hi = interval
    return f"[{lo:{sign}.3f}, {hi:{sign}.3f}]"
