"""Train and evaluate DeepMarkerNet / MeshSmileNet (or the D-Marker baseline) under
subject-independent cross-validation.

    python smile_point.py --dataset demo --fold all
    python smile_point.py --dataset uva --fold 3 --config configs/uva.yaml --set train.epochs=100
    python smile_point.py --dataset demo --model dmarker-logreg   # the D-Marker baseline
    python smile_point.py --classify my_smile.mp4 --checkpoint uva/runs/uva-deepmarkernet-seed0

Per fold: the training part is split into an inner training and validation part (subject
independent); the epoch and the decision threshold are chosen on validation; the test fold is
read once, at the end, with deterministic windows. The baseline (--model dmarker-logreg) chooses
its regularisation by inner cross-validation on the training part instead. Outputs under --out
(see README).
--classify scores new videos or landmark files with trained checkpoints instead (no training).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from colorama import Fore, Style
from colorama import init as colorama_init

from data.datasets import SmileDataset, open_dataset
from data.io import atomic_write_json, check_folder
from data.targets import table_digest
from models.config import BASELINE, NAMES
from training.baseline import fit_baseline, score_baseline
from training.classify import classify, format_verdicts
from training.config import (
    Config,
    check_choices,
    load_config,
    save_config,
    set_value,
    to_dict,
)
from training.loop import DMARKER_LOSS, DivergedError, fit, resolve_device, test, uses_dmarkers
from training.memory import reuse_freed_memory
from training.report import what_validation_chose, write_results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--dataset",
        help="uva | bbc | mmi | spos | folder | demo (default: from the config, else uva)",
    )
    p.add_argument(
        "--data-root", help="dataset folder (default: the config's data.root: uva/, demo_data/ ...)"
    )
    p.add_argument(
        "--folds", help="fold folder labels/<k>/{train,test}.json (default: <root>/labels)"
    )
    p.add_argument(
        "--fold", help="fold number N (N-th fold folder in numeric order) or 'all' (default)"
    )
    p.add_argument(
        "--model",
        choices=NAMES,
        help="meshsmilenet: the D-Marker loss weight becomes 0; dmarker-logreg: the "
        "logistic-regression baseline on the D-Markers, same folds and protocol",
    )
    p.add_argument("--config", help="YAML config (default: configs/<dataset>.yaml)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. train.lr=1e-3 (repeatable)",
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto | cpu | cuda (default: auto)")
    p.add_argument("--out", help="run folder (default: <root>/runs/<dataset>-<model>-seed<seed>)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue each fold from its last.pt; finished folds are kept",
    )
    c = p.add_argument_group("classify new videos (instead of training)")
    c.add_argument(
        "--classify",
        nargs="+",
        metavar="INPUT",
        help="video files, landmark .npy files or folders of them",
    )
    c.add_argument(
        "--checkpoint",
        nargs="+",
        help="fold best.pt files or run folders (every fold's best.pt); probabilities averaged",
    )
    c.add_argument("--json", help="also write the verdicts to this JSON file")
    return p.parse_args(argv)


#: Flags of network training that the D-Marker baseline has no use for.
NETWORK_FLAGS = ("epochs", "batch_size", "lr")


def build_config(args: argparse.Namespace) -> Config:
    """configs/<dataset>.yaml (or --config) <- --set <- the explicit flags."""
    config = args.config
    if config is None:
        candidate = Path(__file__).parent / "configs" / f"{args.dataset or 'uva'}.yaml"
        config = candidate if candidate.exists() else None
    cfg = load_config(config, args.set)
    flags = {
        "dataset": "data.dataset",
        "data_root": "data.root",
        "folds": "data.folds",
        "model": "model.name",
        "epochs": "train.epochs",
        "batch_size": "train.batch_size",
        "lr": "train.lr",
        "seed": "train.seed",
        "device": "train.device",
    }
    for flag, key in flags.items():
        value = getattr(args, flag)
        if value is not None:
            set_value(cfg, key, value, f"--{flag.replace('_', '-')}")
    if cfg.data.dataset == "folder" and config is None and args.data_root is None:
        raise ValueError(
            "--dataset folder: give --data-root DIR, your dataset's folder (npy/ and labels.csv)"
        )
    if cfg.model.name == "meshsmilenet":  # however named: its config.yaml says what it trained
        cfg.train.dmarker_weight = 0.0
    given = [f for f in NETWORK_FLAGS if getattr(args, f) is not None]
    if cfg.model.name == BASELINE and given:
        raise ValueError(
            f"{', '.join('--' + f.replace('_', '-') for f in given)}: network training flags; "
            f"{BASELINE} takes none (its regularisation is chosen by inner cross-validation)"
        )
    check_choices(cfg)
    if args.out is not None:
        cfg.out = args.out
    if cfg.out is None:
        name = f"{cfg.data.dataset}-{cfg.model.name}-seed{cfg.train.seed}"
        cfg.out = str(Path(cfg.data.root) / "runs" / name)
    return cfg


def load_dataset(cfg: Config) -> SmileDataset:
    d = cfg.data
    return open_dataset(
        d.dataset,
        d.root,
        folds_dir=d.folds,
        landmarks_dir=d.landmarks,
        folds_k=d.n_folds,
        seed=cfg.train.seed,
    )


#: Settings a run may change between its folds and resumes: where it runs, not what it computes.
FREE = (("train", "device"), ("data", "num_workers"))
#: Paths compared as the folders they name (uva/ and ./uva are one root).
PATHS = (("data", "root"), ("data", "folds"), ("data", "landmarks"))


def check_same_run(saved: Config, cfg: Config, out_dir: Path) -> None:
    """A run folder holds one config: its folds and resumes use the one it started with (the
    device and the loader workers may change)."""
    old, new = to_dict(saved), to_dict(cfg)
    for d in (old, new):
        for section, key in FREE:
            d[section].pop(key)
        for section, key in PATHS:
            if d[section][key] is not None:
                d[section][key] = str(Path(d[section][key]).resolve())
    diff = [
        f"{s}.{k}"
        for s in new
        if isinstance(new[s], dict)
        for k in new[s]
        if old[s].get(k) != new[s][k]
    ]
    if diff:
        raise ValueError(
            f"{out_dir} was started with another config ({', '.join(diff[:5])} differ): "
            "resume it with the same settings, or use --out for a new run"
        )


def check_fold(cfg: Config, fold: int, dataset: SmileDataset, resume: bool) -> Path:
    """The fold exists and its folder may be written: a new run never overwrites one, --resume
    continues only with the same config (the run's config is checked in :func:`main`). -> the
    fold's output folder."""
    if not 1 <= fold <= len(dataset.folds):
        raise ValueError(f"--fold {fold}: {dataset.root} has folds 1..{len(dataset.folds)}")
    out_dir = Path(cfg.out) / f"fold_{fold:02d}"
    if any((out_dir / f).exists() for f in ("last.pt", "test.json")) and not resume:
        raise FileExistsError(
            f"{out_dir} already holds a run: pass --resume to continue it, or --out for a new one"
        )
    if resume and (out_dir / "config.yaml").exists():
        check_same_run(load_config(out_dir / "config.yaml"), cfg, out_dir)
    return out_dir


def dmarker_digest(cfg: Config, dataset: SmileDataset, names: list[str]) -> str | None:
    """The digest of the D-Marker rows a fold learns from (None for a model that uses none)."""
    if cfg.model.name != BASELINE and not uses_dmarkers(cfg):
        return None
    table = dataset.dmarkers()
    return table_digest(table, names) if table is not None else None


def kept_result(path: Path, split, digest: str | None, dataset: SmileDataset) -> dict:
    """A fold finished earlier, kept by --resume unless its test videos, their labels, its
    validation videos or the D-Marker rows it learned from changed since."""
    result = json.loads(path.read_text())
    tested = {n: v["label"] for n, v in result["videos"].items()}
    selection = path.parent / "selection.json"
    val = json.loads(selection.read_text()).get("val") if selection.exists() else None
    if tested != {n: dataset.videos[n].label for n in split.test} or (
        val is not None and sorted(val) != sorted(split.val)
    ):
        raise ValueError(
            f"{path}: this fold was trained or tested on other videos or labels than the "
            f"dataset's fold holds now (its folds or labels changed since): delete {path.parent} "
            "and resume, or train under a new --out"
        )
    if result.get("dmarker_digest") != digest:
        raise ValueError(
            f"{path}: this fold was trained on other D-Markers than {dataset.root}'s table holds "
            f"now (rebuilt since, or an older version of the toolkit): delete {path.parent} and "
            "resume, or train under a new --out"
        )
    print(f"fold {path.parent.name}: finished earlier, kept {path}")
    return result


def run_fold(
    cfg: Config, fold: int, dataset: SmileDataset | None = None, resume: bool = False
) -> dict:
    """Train on fold ``fold`` (1-based, numeric folder order), select on validation, test once."""
    dataset = dataset or load_dataset(cfg)
    out_dir = check_fold(cfg, fold, dataset, resume)
    split = dataset.split(fold, cfg.data.val_fraction, cfg.train.seed)
    train, val = list(split.train), list(split.val)
    digest = dmarker_digest(cfg, dataset, [*train, *val, *split.test])
    if resume and (out_dir / "test.json").exists():
        return kept_result(out_dir / "test.json", split, digest, dataset)

    subjects = dataset.subjects
    groups = {"train": train, "val": val, "test": list(split.test)}
    seen = {k: {subjects[n] for n in names} for k, names in groups.items()}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        if shared := seen[a] & seen[b]:
            raise ValueError(f"fold {fold}: subjects {sorted(shared)[:5]} are in both {a} and {b}")

    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out_dir / "config.yaml")
    print(
        f"{Fore.MAGENTA}fold {fold}/{len(dataset.folds)}{Style.RESET_ALL}: videos train "
        f"{len(train)}, val {len(val)}, test {len(split.test)}; subjects "
        + "/".join(str(len(seen[k])) for k in groups)
    )
    if cfg.model.name == BASELINE:
        fitted = fit_baseline(cfg, dataset, train + val, out_dir)
        result = score_baseline(dataset, list(split.test), fitted)
        chosen = f"C {fitted['C']:g}"
    else:
        device = resolve_device(cfg.train.device)
        selection = fit(cfg, dataset, train, val, out_dir, device, resume=resume)
        result = test(cfg, dataset, list(split.test), out_dir, device, selection["threshold"])
        chosen = f"epoch {selection['best_epoch']}"
    result["dmarker_digest"] = digest
    atomic_write_json(out_dir / "test.json", result)
    print(
        f"{Fore.GREEN}fold {fold} test{Style.RESET_ALL}: accuracy {result['accuracy']:.3f} "
        f"auc {result['auc']:.3f} f1 {result['f1']:.3f} ({chosen}, threshold "
        f"{result['threshold']:.3f}; {what_validation_chose(cfg.train.threshold, cfg.model.name)})"
    )
    return result


def run_folds(cfg: Config, folds, dataset, resume: bool) -> tuple[dict, dict]:
    """Run every fold; one whose training diverged is reported at the end, after the others ran
    (any other error stops the run). Returns ({fold: test result}, {fold: reason})."""
    results, failed = {}, {}
    for k in folds:
        try:
            results[k] = run_fold(cfg, k, dataset, resume=resume)
        except DivergedError as e:
            if len(folds) == 1:
                raise
            failed[k] = str(e)
            print(f"{Fore.RED}fold {k} failed:{Style.RESET_ALL} {e}", file=sys.stderr)
    return results, failed


#: Flags that only training reads (``--device`` serves both).
TRAINING_FLAGS = ("dataset", "data_root", "folds", "fold", "model", "config", "set", "epochs",
                  "batch_size", "lr", "seed", "out", "resume")  # fmt: skip


def check_mode(args: argparse.Namespace) -> None:
    """Training flags with --classify, or classify flags without it, are errors (not ignored)."""
    if args.classify:
        given = [f"--{f.replace('_', '-')}" for f in TRAINING_FLAGS if getattr(args, f)]
        if given:
            raise ValueError(
                f"{', '.join(given)}: training flags; --classify takes --checkpoint, --json "
                "and --device"
            )
        if not args.checkpoint:
            raise ValueError("--classify needs --checkpoint: a run folder or a fold's best.pt")
        parent = Path(args.json or ".").resolve().parent
        if args.json and not (parent.is_dir() and os.access(parent, os.W_OK)):
            raise ValueError(f"--json {args.json}: {parent} is not a writable folder")
        if args.json and Path(args.json).is_dir():
            raise ValueError(f"--json {args.json}: a folder; give a file name (verdicts.json)")
    elif args.checkpoint or args.json:
        raise ValueError("--checkpoint and --json go with --classify INPUT ...")


def classify_main(args: argparse.Namespace) -> int:
    """--classify: print (and with --json write) a verdict per input; 1 if any input failed."""
    verdicts, failures = classify(
        args.classify, args.checkpoint, resolve_device(args.device or "auto")
    )
    print(format_verdicts(verdicts, failures))
    if args.json:
        atomic_write_json(
            args.json,
            {
                "checkpoints": args.checkpoint,
                "videos": [asdict(v) for v in verdicts],
                "failed": failures,
            },
        )
    if failures:
        print(
            f"{Fore.RED}{len(failures)} input(s) failed{Style.RESET_ALL} (reasons above)",
            file=sys.stderr,
        )
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    colorama_init()
    args = parse_args(argv)
    try:
        check_mode(args)
        if args.classify:
            return classify_main(args)
        cfg = build_config(args)
        check_folder(cfg.out, "--out")
        dataset = load_dataset(cfg)
        args.fold = args.fold or "all"
        if args.fold != "all" and not args.fold.isdecimal():
            raise ValueError(
                f"--fold {args.fold!r}: give a fold number 1..{len(dataset.folds)} or 'all'"
            )
        folds = range(1, len(dataset.folds) + 1) if args.fold == "all" else [int(args.fold)]
        if (Path(cfg.out) / "config.yaml").exists():  # another fold of the run, or a resume
            check_same_run(load_config(Path(cfg.out) / "config.yaml"), cfg, Path(cfg.out))
        for k in folds:  # before anything is written: a refused run leaves the folder as it was
            check_fold(cfg, k, dataset, args.resume)
        if cfg.model.name == BASELINE:
            dataset.require_dmarkers(BASELINE)
        elif uses_dmarkers(cfg):
            dataset.require_dmarkers(DMARKER_LOSS)
        if cfg.model.name != BASELINE and resolve_device(cfg.train.device).type == "cpu":
            reuse_freed_memory()  # faster CPU training; the process keeps its peak memory
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        save_config(cfg, Path(cfg.out) / "config.yaml")
        results, failed = run_folds(cfg, folds, dataset, args.resume)
    except (OSError, ValueError, RuntimeError, ImportError) as e:
        print(f"{Fore.RED}error:{Style.RESET_ALL} {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\n{Fore.YELLOW}interrupted{Style.RESET_ALL}: finished epochs and folds are kept; "
            "the same command with --resume continues",
            file=sys.stderr,
        )
        return 130
    if failed:
        for k, why in failed.items():
            print(f"{Fore.RED}fold {k} failed:{Style.RESET_ALL} {why}", file=sys.stderr)
        print(
            f"{len(failed)} of {len(folds)} folds diverged; no results table (train them with a "
            "lower --lr under a new --out)",
            file=sys.stderr,
        )
        return 1
    if args.fold == "all":
        summary = write_results(
            Path(cfg.out), cfg.data.dataset, cfg.model.name, results, cfg.train.threshold
        )
        acc, pool = summary["mean_std"]["accuracy"], summary["pooled"]
        print(
            f"{Fore.GREEN}{len(results)} folds{Style.RESET_ALL}: accuracy {acc['mean']:.3f} +- "
            f"{acc['std']:.3f} (pooled {pool['accuracy']:.3f}, AUC {pool['auc']:.3f}); "
            f"table in {Path(cfg.out) / 'results.md'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
