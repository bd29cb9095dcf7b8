"""The embedded demo dataset: synthetic smiles grounded on real faces, written like a real dataset.

    python -m data.demo --out demo_data [--subjects 40] [--seed 0] [--folds 5]

Writes, deterministically from the seed (same seed -> byte-identical files):

- ``<out>/npy/<video>.npy`` float32 (T, V, 3) in the published normalised format (x/W, y/H, z/W)
  with a sidecar ``<video>.json`` (:data:`data.io.META_KEYS`, backend "demo"); videos are named
  ``s007_posed_2`` / ``s007_spontaneous_1``;
- ``<out>/labels.csv`` (video,label,subject; label 1 spontaneous, 0 posed);
- ``<out>/labels/<k>/{train,test}.json``: stratified subject-independent folds (data.folds);
- ``<out>/latents.csv``: every video's latent parameters (informative and nuisance);
- ``<out>/demo.json``: seed, parameters, class statistics, and the Bayes ceiling;
- ``<out>/dmarkers.npz``: the D-Marker table (``dmarker.py``; not with ``--no-dmarkers``).

Faces and deformation fields are measured from real media (:mod:`data.demo_assets`), smile dynamics
follow :mod:`data.demo_motion`, rendering and noise :mod:`data.demo_render`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from data.claim import claimed
from data.demo_geometry import ASSET_PATH, DemoAssets, load_assets
from data.demo_motion import (
    LATENTS,
    MotionParams,
    bayes_ceiling,
    posterior_spontaneous,
    sample_latents,
    sample_subject,
    sufficient_statistics,
)
from data.demo_render import Rendered, make_identity, render_video
from data.demo_stats import MEASURES, measure_smile
from data.dmarker_cache import build_dmarker_table
from data.files import (
    atomic_write_json,
    atomic_write_text,
    check_folder,
    read_json,
    run_cli,
    temp_prefix,
)
from data.io import save_landmarks, to_isotropic
from training.report import brackets
from training.significance import accuracy_interval, per_subject

VERSION = "1"
CEILING_NOTE = (
    "bayes_ceiling = E[max_c P(c | latents)] under the exact posterior of the generator's "
    "class-conditional latent distributions (200k Monte-Carlo draws): the best accuracy any "
    "per-video classifier can reach. Landmarks are a noisy view of the latents, so classifiers "
    "of landmarks stay below it. bayes_rule_accuracy_on_this_set: that optimal rule on this set's "
    "own latents and labels, with its 95% interval, subjects as clusters "
    "(bayes_rule_interval_on_this_set); bayes_rule_expected_on_this_set: its accuracy expected "
    "from the latents alone (the mean of max_c P(c | latents) over the set's videos), the ceiling "
    "of any per-video classifier on these videos were their labels drawn again; the two differ "
    "by the luck of the labels, which a near-optimal classifier shares; "
    "latent_classifier_cv_accuracy: a logistic regression (C = 1) on the latents' "
    "sufficient statistics (the features in which the exact log posterior odds are affine: log "
    "durations, log amplitude, asymmetry squared, logit eye ratio, eye delay), fitted on each "
    "fold's training part: what the same training data allow a well-specified learner that sees "
    "the latents; dmarker_classifier_cv_accuracy: a linear one on the D-Markers."
)
VIDEOS_PER_CLASS = (2, 4)  # per subject, inclusive
CLASS_NAMES = {0: "posed", 1: "spontaneous"}


OWN = ("demo.json", "npy", "labels", "labels.csv", "latents.csv", "dmarkers.npz")
#: demo.json of the set being replaced, kept until the new one is whole: an interrupted
#: regeneration still tells which settings the folder's runs were trained on.
PENDING = "demo.pending.json"
#: Held while a set is written (data.claim): two generators at once would mix their videos.
LOCK = ".demo.lock"


def _own(out: Path, name: str) -> bool:
    """Whether ``name`` in ``out`` is the generator's: its entries, marker, lock, or the temp
    file of one of them that a killed run left (data.files.temp_prefix)."""
    mine = (*OWN, PENDING)
    temp = name.endswith(".tmp") and any(name.startswith(temp_prefix(out / n)) for n in mine)
    return name in (*mine, LOCK) or temp


def _prepare(out: Path, same: dict, dmarkers: bool) -> None:
    """Make ``out`` ready: new, empty, or holding a demo set (complete or interrupted).

    The generator's own entries (:func:`_own`) are removed, ``demo.json`` kept as
    :data:`PENDING`; anything else is left alone, but a folder with other content and neither
    is refused. Where ``runs/`` holds runs, so is a set of other settings (``same``:
    demo.json's generator, seed, subjects, folds, parameters), and one that would delete a
    D-Marker table the runs may have read or replace one the generator did not make
    (``dmarkers.npz``, ``npy/dmarkers.npz``). ``demo.json`` is written last, so it marks a
    complete set.
    """
    record = next((out / n for n in ("demo.json", PENDING) if (out / n).is_file()), None)
    runs = out / "runs"
    if record and runs.is_dir() and any(runs.iterdir()):
        old = read_json(record, "delete it, or choose another --out")
        old = old if isinstance(old, dict) else {}
        if changed := [k for k, v in same.items() if old.get(k) != v]:
            raise ValueError(
                f"{out}: {runs} holds runs trained on its demo set, which other settings "
                f"({', '.join(changed)}) would replace; choose another --out, or move runs/ away"
            )
        made = dmarkers and bool({"dmarker_classifier_cv_accuracy", "dmarker_errors"} & old.keys())
        tables = [out / "npy" / "dmarkers.npz"] + ([] if made else [out / "dmarkers.npz"])
        if kept := [t for t in tables if t.exists()]:
            raise ValueError(
                f"{out}: {runs} holds runs that may have read {kept[0]}, which the generator did "
                "not make (or would not make again) and would delete; move it or runs/ away"
            )
    if out.exists() and record is None:
        foreign = sorted(e.name for e in out.iterdir() if not _own(out, e.name))
        if foreign:
            raise ValueError(
                f"{out} holds {', '.join(foreign[:3])} and no demo.json (an interrupted set, or "
                "no demo folder): choose a new or empty --out, or move those away"
            )
    if (out / "demo.json").is_file():  # first: an interrupted run leaves no completion marker
        os.replace(out / "demo.json", out / PENDING)
    for entry in out.iterdir():
        if entry.name in (PENDING, LOCK) or not _own(out, entry.name):
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _csv(rows: list[dict]) -> str:
    keys = list(rows[0])
    return "\n".join([",".join(keys)] + [",".join(_fmt(r[k]) for k in keys) for r in rows]) + "\n"


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _class_stats(rows: list[dict], keys) -> dict:
    """{class name: {key: {"mean", "sd"}}} over the rows of each class (NaN ignored)."""
    out = {}
    for label, name in CLASS_NAMES.items():
        sel = [r for r in rows if r["label"] == label]
        out[name] = {
            k: {
                "mean": round(float(np.nanmean([r[k] for r in sel])), 4),
                "sd": round(float(np.nanstd([r[k] for r in sel])), 4),
            }
            for k in keys
        }
    return out


def cv_accuracy(x: np.ndarray, labels: np.ndarray, names: list[str], folds, c: float) -> float:
    """Test accuracy of a logistic regression (inverse regularisation ``c``) on standardised
    features x (N, F), pooled over the folds (each fitted on its training part only)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    index = {n: i for i, n in enumerate(names)}
    correct = 0
    for fold in folds:
        tr = [index[n] for n in fold.train]
        te = [index[n] for n in fold.test]
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))
        model.fit(x[tr], labels[tr])
        correct += int((model.predict(x[te]) == labels[te]).sum())
    return correct / len(names)


def _meta(name: str, video: Rendered, n_landmarks: int, seed: int) -> dict:
    """The sidecar of one video, every key of :data:`data.io.META_KEYS`."""
    return {
        "video": name,
        "fps": video.fps,
        "source_fps": video.fps,
        "n_frames": len(video.landmarks),
        "width": video.width,
        "height": video.height,
        "backend": "demo",
        "backend_version": f"demo-{VERSION}",
        "n_landmarks": n_landmarks,
        "face_found": video.face_found.tolist(),
        "stride": 1,
        "max_frames": None,
        "source": f"data.demo seed={seed}",
        "source_size": 0,
        "source_mtime": 0,
    }


def _write_videos(
    out: Path, assets: DemoAssets, params: MotionParams, subjects: int, seed: int
) -> tuple[list[dict], list[dict]]:
    """Render and write every video. Returns (latents.csv rows, landmark measurements).

    Subject ``s`` draws from ``default_rng([seed, s])`` and its video ``j`` from
    ``default_rng([seed, s, j])``, so a subject's videos do not depend on ``subjects``.
    """
    width = max(3, len(str(subjects)))
    rows, stats = [], []
    for s in range(subjects):
        rng = np.random.default_rng([seed, s])
        subject = f"s{s + 1:0{width}d}"
        identity, face = make_identity(assets, rng)
        counts = rng.integers(VIDEOS_PER_CLASS[0], VIDEOS_PER_CLASS[1] + 1, 2)
        labels = np.repeat([0, 1], counts)
        latents = sample_latents(rng, params, labels, *sample_subject(rng, params))
        numbers = np.concatenate([np.arange(1, c + 1) for c in counts])
        for j, (label, number, values) in enumerate(zip(labels, numbers, latents, strict=True)):
            name = f"{subject}_{CLASS_NAMES[int(label)]}_{number}"
            lat = dict(zip(LATENTS, map(float, values), strict=True))
            video = render_video(assets, identity, lat, np.random.default_rng([seed, s, j]))
            save_landmarks(
                out / "npy" / f"{name}.npy", video.landmarks,
                _meta(name, video, assets.n_landmarks, seed),
            )  # fmt: skip
            rows.append({
                "video": name, "subject": subject, "label": int(label),
                "identity": assets.names[face], "fps": video.fps,
                "n_frames": len(video.landmarks), "width": video.width, "height": video.height,
                **lat, **video.nuisance,
            })  # fmt: skip
            iso = to_isotropic(video.landmarks, video.width, video.height)
            stats.append({"label": int(label), **measure_smile(iso, video.fps, assets.stable)})
    return rows, stats


def generate(
    out: str | Path,
    *,
    subjects: int = 40,
    seed: int = 0,
    folds: int = 5,
    params: MotionParams | None = None,
    assets_path: str | Path = ASSET_PATH,
    dmarkers: bool = True,
) -> dict:
    """Write the demo dataset into ``out``; returns the content of ``demo.json`` (+ seconds)."""
    if folds < 2:
        raise ValueError(f"--folds {folds}: need at least 2 folds")
    least = 4 if folds == 2 else folds  # the smallest n whose folds keep n - ceil(n / k) >= 2
    if subjects < least:
        raise ValueError(
            f"--subjects {subjects}: --folds {folds} needs at least {least} subjects (every fold "
            "keeps two or more for training: one goes to validation)"
        )
    params = params or MotionParams()
    out = Path(out)
    t0 = time.perf_counter()
    assets = load_assets(assets_path)
    same = {"generator": f"data.demo {VERSION}", "seed": seed, "subjects": subjects}
    same |= {"folds": folds, "parameters": params.to_dict()}
    same = json.loads(json.dumps(same))  # as demo.json holds it (lists for tuples)
    check_folder(out, "--out")
    with claimed(out / LOCK, f"the demo set {out}"):
        summary = _generate(out, assets, params, same, dmarkers)
        atomic_write_json(out / "demo.json", summary)
        (out / PENDING).unlink(missing_ok=True)
    return {**summary, "seconds": round(time.perf_counter() - t0, 2)}


def _generate(
    out: Path, assets: DemoAssets, params: MotionParams, same: dict, dmarkers: bool
) -> dict:
    """Everything of a demo set but ``demo.json``, whose content it returns."""
    from data.folds import make_folds, write_folds

    seed, subjects, folds = same["seed"], same["subjects"], same["folds"]
    _prepare(out, same, dmarkers)
    rows, stats = _write_videos(out, assets, params, subjects, seed)

    names = [r["video"] for r in rows]
    label_of = {r["video"]: r["label"] for r in rows}
    table = [{k: r[k] for k in ("video", "label", "subject")} for r in rows]
    atomic_write_text(out / "labels.csv", _csv(table))
    atomic_write_text(out / "latents.csv", _csv(rows))
    subject_of = {r["video"]: r["subject"] for r in rows}
    fold_list = make_folds(names, label_of, subject_of, k=folds, seed=seed)
    write_folds(out / "labels", fold_list, label_of)

    y = np.array([r["label"] for r in rows])
    lat = np.array([[r[k] for k in LATENTS] for r in rows])
    post = posterior_spontaneous(lat, params)
    rule_right = {r["video"]: int((q > 0.5) == r["label"]) for r, q in zip(rows, post, strict=True)}
    summary = {
        "generator": f"data.demo {VERSION}",
        "seed": seed,
        "subjects": subjects,
        "videos": len(rows),
        "folds": folds,
        "counts": {CLASS_NAMES[c]: int((y == c).sum()) for c in CLASS_NAMES},
        "bayes_ceiling": round(bayes_ceiling(params, np.random.default_rng([seed, 10**6])), 4),
        # counts over this set: 6 decimals, so that 3 printed ones round as the exact fraction
        "bayes_rule_accuracy_on_this_set": round(float(np.mean(list(rule_right.values()))), 6),
        "bayes_rule_interval_on_this_set": accuracy_interval(*per_subject(rule_right, subject_of)),
        "bayes_rule_expected_on_this_set": round(float(np.maximum(post, 1 - post).mean()), 4),
        "latent_classifier_cv_accuracy": round(
            cv_accuracy(sufficient_statistics(lat, params), y, names, fold_list, 1.0), 6
        ),
        "ceiling_note": CEILING_NOTE,
        "parameters": params.to_dict(),
        "faces": list(assets.names),
        "latent_statistics": _class_stats(rows, LATENTS),
        "landmark_statistics": _class_stats(stats, MEASURES),
    }
    if dmarkers:
        dm = build_dmarker_table(out / "npy", output=out / "dmarkers.npz")
        if dm.errors:
            summary["dmarker_errors"] = dict(dm.errors)
        else:
            feats = np.stack([dm.get(n) for n in names])
            acc = cv_accuracy(feats, y, names, fold_list, 0.01)
            summary["dmarker_classifier_cv_accuracy"] = round(acc, 6)
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write the synthetic demo smile dataset.")
    ap.add_argument(
        "--out", type=Path, required=True, help="output folder (new, empty, or a demo set)"
    )
    ap.add_argument(
        "--subjects", type=int, default=40, help="subjects, 4-8 videos each (default 40)"
    )
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--folds", type=int, default=5, help="subject-independent folds (default 5)")
    ap.add_argument("--no-dmarkers", action="store_true", help="skip building dmarkers.npz")
    args = ap.parse_args(argv)
    try:
        s = generate(
            args.out,
            subjects=args.subjects,
            seed=args.seed,
            folds=args.folds,
            dmarkers=not args.no_dmarkers,
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: {args.out} holds no whole set; run the same command again",
            file=sys.stderr,
        )
        return 130
    print(
        f"demo: {s['videos']} videos ({s['counts']['posed']} posed, {s['counts']['spontaneous']} "
        f"spontaneous) of {s['subjects']} subjects, {s['folds']} folds -> {args.out} "
        f"in {s['seconds']:.1f} s"
    )
    print(
        f"Bayes ceiling {s['bayes_ceiling']:.3f} (exact posterior on the latents); Bayes rule on "
        f"this set {s['bayes_rule_accuracy_on_this_set']:.3f} "
        f"{brackets(s['bayes_rule_interval_on_this_set'])}, expected from its latents "
        f"{s['bayes_rule_expected_on_this_set']:.3f}; cross-validated classifier on the "
        f"latents {s['latent_classifier_cv_accuracy']:.3f}"
        + (
            f"; on D-Markers {s['dmarker_classifier_cv_accuracy']:.3f}"
            if "dmarker_classifier_cv_accuracy" in s
            else ""
        )
    )
    stats = s["landmark_statistics"]
    for k in MEASURES:
        print(
            f"  {k:14s} posed {stats['posed'][k]['mean']:8.3f}   "
            f"spontaneous {stats['spontaneous'][k]['mean']:8.3f}"
        )
    return 0


if __name__ == "__main__":
    run_cli(main)
