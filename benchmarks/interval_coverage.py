"""How often the 95% intervals of ``results.md`` and ``training.compare`` hold the truth.

Simulated test sets of S subjects, each with its own accuracy (a Beta draw, or one value for all)
and 2-8 videos; for differences, a second run calls a share of each subject's videos anew.
Prints the share of sets whose interval holds the true value, for
:func:`training.significance.accuracy_interval` / :func:`difference_interval` and, for
reference, a percentile bootstrap over subjects (what the toolkit used until 2026-12-08).

    python benchmarks/interval_coverage.py [--sets 1000] [--subjects 10 20 40]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.significance import MIN_SUBJECTS, accuracy_interval, difference_interval

#: name -> draw of per-subject accuracies (rng, S) and their mean
ACCURACIES = {
    "Beta(8, 2)": (lambda rng, s: rng.beta(8, 2, s), 0.8),
    "Beta(4, 1)": (lambda rng, s: rng.beta(4, 1, s), 0.8),
    "Beta(18, 2)": (lambda rng, s: rng.beta(18, 2, s), 0.9),
    "all 0.85": (lambda rng, s: np.full(s, 0.85), 0.85),
    "all 0.97": (lambda rng, s: np.full(s, 0.97), 0.97),
    "half 0.55, half 1": (lambda rng, s: rng.choice([0.55, 1.0], s), 0.775),
}
#: shares of videos the second run calls anew (same accuracy: the true difference is 0)
RECALLED = (0.15, 0.5, 1.0)


def percentile_bootstrap(sums, counts, rng, draws: int = 2000) -> tuple[float, float]:
    """The 95% percentile interval of sum(sums) / sum(counts) over subjects drawn again."""
    pick = rng.integers(0, len(sums), (draws, len(sums)))  # (draws, S)
    return tuple(np.quantile(sums[pick].sum(1) / counts[pick].sum(1), [0.025, 0.975]))


def coverage(draw, interval, truth: float, subjects: int, sets: int, rng) -> tuple[float, float]:
    """Shares of ``sets`` simulated test sets whose interval holds ``truth``: (``interval``'s,
    the percentile bootstrap's). ``draw(rng, S)`` -> (sums, counts) per subject."""
    held = np.zeros(2)
    for _ in range(sets):
        sums, counts = draw(rng, subjects)
        for i, (lo, hi) in enumerate(
            (interval(sums, counts), percentile_bootstrap(sums, counts, rng))
        ):
            held[i] += lo <= truth <= hi
    return tuple(held / sets)


def right_calls(accuracy):
    def draw(rng, s):
        counts = rng.integers(2, 9, s)
        return rng.binomial(counts, accuracy(rng, s)).astype(float), counts.astype(float)

    return draw


def call_differences(share: float):
    def draw(rng, s):
        acc, counts = rng.beta(8, 2, s), rng.integers(2, 9, s)
        diffs = []
        for a, c in zip(acc, counts, strict=True):
            first = rng.random(c) < a
            again = np.where(rng.random(c) < share, rng.random(c) < a, first)
            diffs.append(again.sum() - first.sum())
        return np.array(diffs, float), counts.astype(float)

    return draw


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", type=int, default=1000, help="simulated test sets per row")
    parser.add_argument("--subjects", type=int, nargs="+", default=[10, 20, 40])
    args = parser.parse_args(argv)
    if args.sets < 1:
        parser.error("--sets: at least 1")
    if min(args.subjects) < MIN_SUBJECTS:
        parser.error(f"--subjects: at least {MIN_SUBJECTS} (fewer get no interval)")
    rng = np.random.default_rng(0)
    print("| quantity | subjects' accuracies | subjects | toolkit | percentile bootstrap |")
    print("|---|---|---:|---:|---:|")
    rows = [
        ("accuracy", name, right_calls(acc), accuracy_interval, mean)
        for name, (acc, mean) in ACCURACIES.items()
    ]
    rows += [
        (
            "difference (0)",
            f"Beta(8, 2), {share:.0%} called anew",
            call_differences(share),
            difference_interval,
            0.0,
        )
        for share in RECALLED
    ]
    for quantity, name, draw, interval, truth in rows:
        for s in args.subjects:
            ours, boot = coverage(draw, interval, truth, s, args.sets, rng)
            print(f"| {quantity} | {name} | {s} | {ours:.3f} | {boot:.3f} |", flush=True)


if __name__ == "__main__":
    main()
