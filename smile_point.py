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
import os
import sys
import warnings
from pathlib import Path

from colorama import Fore, Style
from colorama import init as colorama_init

from data.files import atomic_write_json, check_folder, print_names_as_given, run_cli
from models.config import BASELINE, NAMES
from training.classify import check_json_target, classify, format_verdicts, verdicts_json
from training.config import (
    Config,
    DataConfig,
    check_choices,
    file_sets,
    full_key,
    load_config,
    set_value,
)
from training.cross_validation import (
    check_folds,
    check_kept_folds,
    claimed_folds,
    load_dataset,
    run_folds,
    table_notes,
)
from training.loop import DMARKER_LOSS, resolve_device, uses_dmarkers
from training.memory import reuse_freed_memory
from training.report import brackets, write_results


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
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N (default: auto)")
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
#: The config keys the D-Marker baseline reads; a ``--set`` of any other key is refused for it.
BASELINE_KEYS = (
    "data.dataset", "data.root", "data.folds", "data.landmarks", "data.dmarkers", "data.n_folds",
    "model.name",
    "train.threshold", "train.seed",
)  # fmt: skip


def build_config(args: argparse.Namespace) -> Config:
    """configs/<dataset>.yaml (or --config) <- --set <- the explicit flags."""
    config = args.config
    if config is None:
        candidate = Path(__file__).parent / "configs" / f"{args.dataset or 'uva'}.yaml"
        config = candidate if candidate.exists() else None
    cfg = load_config(config, args.set)
    base = load_config(config, checked=False).data  # the config file's own dataset and folder
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
    keys = [full_key(cfg, item.partition("=")[0]) for item in args.set]
    root_given = args.data_root is not None or "data.root" in keys
    if cfg.data.dataset == "folder" and cfg.data.root == DataConfig.root and not root_given:
        raise ValueError(
            "--dataset folder: give --data-root DIR, your dataset's folder (npy/ and labels.csv)"
        )
    # whose data folder this is: the config's dataset's where it names both, the default uva/
    # UvA-NEMO's; a folder named without a dataset is one's own for the dataset given
    own_root = config is not None and file_sets(config, "data", "root")
    named = config is not None and file_sets(config, "data", "dataset")
    if not own_root:
        owner = DataConfig.dataset
    else:
        owner = base.dataset if named else cfg.data.dataset
    if owner != cfg.data.dataset and not root_given:
        whose = f"{config} names it" if own_root else "the default"
        raise ValueError(
            f"dataset {cfg.data.dataset}: the data folder {cfg.data.root}/ is {owner}'s "
            f"({whose}); give --data-root DIR, your {cfg.data.dataset} dataset's folder"
        )
    if cfg.model.name == "meshsmilenet":  # however named: its config.yaml says what it trained
        if "train.dmarker_weight" in keys and cfg.train.dmarker_weight != 0:
            raise ValueError(
                f"--set train.dmarker_weight={cfg.train.dmarker_weight:g}: meshsmilenet has no "
                "D-Marker head (its weight is 0); use --model deepmarkernet for the D-Marker loss"
            )
        cfg.train.dmarker_weight = 0.0
    given = [f for f in NETWORK_FLAGS if getattr(args, f) is not None]
    if cfg.model.name == BASELINE and given:
        raise ValueError(
            f"{', '.join('--' + f.replace('_', '-') for f in given)}: network training flags; "
            f"{BASELINE} takes none (its regularisation is chosen by inner cross-validation)"
        )
    unread = [k for k in keys if k not in BASELINE_KEYS]
    if cfg.model.name == BASELINE and unread:
        raise ValueError(
            f"--set {', '.join(unread)}: {BASELINE} does not read "
            f"{'them' if len(unread) > 1 else 'it'}; it reads only {', '.join(BASELINE_KEYS)}"
        )
    check_choices(cfg)
    if args.out is not None:
        cfg.out = args.out
    if cfg.out is None:
        name = f"{cfg.data.dataset}-{cfg.model.name}-seed{cfg.train.seed}"
        cfg.out = str(Path(cfg.data.root) / "runs" / name)
    return cfg


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
        if args.json:
            check_json_target(Path(args.json))
    elif args.checkpoint or args.json:
        raise ValueError("--checkpoint and --json go with --classify INPUT ...")


def classify_main(args: argparse.Namespace) -> int:
    """--classify: print (and with --json write) a verdict per input; 1 if any input failed."""
    verdicts, failures = classify(
        args.classify, args.checkpoint, resolve_device(args.device or "auto")
    )
    print(format_verdicts(verdicts, failures))
    if args.json:
        atomic_write_json(args.json, verdicts_json(args.checkpoint, verdicts, failures))
    if failures:
        print(
            f"{Fore.RED}{len(failures)} input(s) failed{Style.RESET_ALL} (reasons above)",
            file=sys.stderr,
        )
    return 1 if failures else 0


def _warning_line(message, category, filename, lineno, line=None) -> str:
    """A warning as the user reads it: one line, without the source line that raised it."""
    return f"{Fore.YELLOW}warning:{Style.RESET_ALL} {message}\n"


def main(argv: list[str] | None = None) -> int:
    colorama_init()
    print_names_as_given()
    warnings.formatwarning = _warning_line
    args = parse_args(argv)
    try:
        check_mode(args)
        if args.classify:
            return classify_main(args)
        cfg = build_config(args)
        check_folder(cfg.out, "--out")
        dataset = load_dataset(cfg, save_folds=False)  # generated folds: once the run may start
        args.fold = args.fold or "all"
        if args.fold != "all" and not args.fold.isdecimal():
            raise ValueError(
                f"--fold {args.fold!r}: give a fold number 1..{len(dataset.folds)} or 'all'"
            )
        folds = range(1, len(dataset.folds) + 1) if args.fold == "all" else [int(args.fold)]
        check_folds(cfg, folds, dataset, args.resume)
        trained = {n for k in folds for n in dataset.fold(k).train}  # the runs' training parts
        if cfg.model.name == BASELINE:  # it also scores the test parts from their D-Markers
            tested = {n for k in folds for n in dataset.fold(k).test}
            dataset.require_dmarkers(BASELINE, sorted(trained | tested))
        elif uses_dmarkers(cfg):
            dataset.require_dmarkers(DMARKER_LOSS, sorted(trained))
        # finished folds that stay (all on --resume; else the others): made on the data read now
        every = range(1, len(dataset.folds) + 1)
        check_kept_folds(cfg, [k for k in every if args.resume or k not in folds], dataset)
        if cfg.model.name != BASELINE and resolve_device(cfg.train.device).type == "cpu":
            reuse_freed_memory()  # faster CPU training; the process keeps its peak memory
        with claimed_folds(cfg, folds, dataset, args.resume):
            results, failed = run_folds(cfg, folds, dataset, args.resume)
            if failed:
                report_failed(failed, len(folds))
                return 1
            if args.fold == "all":
                write_table(cfg, dataset, results)
    except (OSError, ValueError, RuntimeError, ImportError) as e:
        print(f"{Fore.RED}error:{Style.RESET_ALL} {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        kept = (
            ""
            if args.classify
            else (": finished epochs and folds are kept; the same command with --resume continues")
        )
        print(f"\n{Fore.YELLOW}interrupted{Style.RESET_ALL}{kept}", file=sys.stderr)
        return 130
    return 0


def report_failed(failed: dict, n_folds: int) -> None:
    """Each failed fold's reason (which names its fix), then the count."""
    for k, why in failed.items():
        print(f"{Fore.RED}fold {k} failed:{Style.RESET_ALL} {why}", file=sys.stderr)
    print(
        f"{len(failed)} of {n_folds} folds failed; no results table (each reason above names its "
        "fix)",
        file=sys.stderr,
    )


def write_table(cfg, dataset, results) -> None:
    """``--fold all``: results.json and results.md under the run folder, and their summary line."""
    folds_dir = cfg.data.folds or Path(cfg.data.root) / "labels"
    base = Path(__file__).parent / "configs" / f"{cfg.data.dataset}.yaml"
    summary = write_results(
        Path(cfg.out),
        cfg.data.dataset,
        cfg.model.name,
        results,
        cfg.train.threshold,
        subjects={name: v.subject for name, v in dataset.videos.items()},
        folds_dir=str(folds_dir),
        notes=table_notes(cfg, base if base.exists() else None),
    )
    acc, pool = summary["mean_std"]["accuracy"], summary["pooled"]
    print(
        f"{Fore.GREEN}{len(results)} folds{Style.RESET_ALL}: accuracy {acc['mean']:.3f} +- "
        f"{acc['std']:.3f} (pooled {pool['accuracy']:.3f} "
        f"{brackets(pool['accuracy_interval'])}, AUC {pool['auc']:.3f}); "
        f"table in {Path(cfg.out) / 'results.md'}"
    )


if __name__ == "__main__":
    run_cli(main)
