"""Subject-independent cross-validation, fold by fold: the checks that keep a run folder one run
(one config, folds kept only on the data they were made from), then per fold the inner split,
training with selection on validation (or the baseline's fit), and one test of the selected model.
``smile_point.py`` is its command line.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from colorama import Fore, Style

from data.claim import claimed, claimed_all, held
from data.datasets import SmileDataset, open_dataset
from data.files import atomic_write_json, read_json
from data.fold_check import training_part_problem
from data.fold_subset import SUBSET_META
from data.targets import table_digest
from models.config import BASELINE
from training.baseline import fit_baseline, score_baseline
from training.checkpoint import CheckpointError, split_digest
from training.config import Config, load_config, save_config, to_dict
from training.evaluate import test
from training.loop import fit, resolve_device, uses_dmarkers
from training.metrics import DivergedError
from training.report import FOLD_RESULT_KEYS, read_fold_result, what_validation_chose


def load_dataset(cfg: Config, save_folds: bool = True) -> SmileDataset:
    """The config's dataset (:func:`data.datasets.open_dataset`)."""
    d = cfg.data
    return open_dataset(
        d.dataset,
        d.root,
        folds_dir=d.folds,
        landmarks_dir=d.landmarks,
        dmarkers_path=d.dmarkers,
        folds_k=d.n_folds,
        seed=cfg.train.seed,
        save_folds=save_folds,
    )


#: Settings a run may change between its folds and resumes: where it runs, not what it computes.
FREE = (("train", "device"), ("data", "num_workers"))


def _comparable(cfg: Config) -> dict:
    """The config as two runs compare it: paths as the folders they name (defaults filled in),
    without the free settings, and without the D-Marker weight of MeshSmileNet (no effect)."""
    d = to_dict(cfg)
    for section, key in FREE:
        d[section].pop(key)
    root = Path(d["data"]["root"])
    defaults = {"root": root, "folds": root / "labels", "landmarks": root / "npy"}
    for key, default in defaults.items():
        d["data"][key] = str(Path(d["data"][key] or default).resolve())
    if d["model"]["name"] == "meshsmilenet":
        d["train"].pop("dmarker_weight")
    return d


def config_differences(old: Config, new: Config, ignore=()) -> list[str]:
    """One "section.key old -> new" per setting of :func:`_comparable` that differs, except the
    (section, key) pairs in ``ignore``."""
    a, b = _comparable(old), _comparable(new)
    if "dmarker_weight" not in a["train"] or "dmarker_weight" not in b["train"]:
        for d in (a, b):  # MeshSmileNet has none: beside it, neither side's counts
            d["train"].pop("dmarker_weight", None)
    return [
        f"{s}.{k} {a[s].get(k)!r} -> {b[s][k]!r}"
        for s in b
        if isinstance(b[s], dict)
        for k in b[s]
        if (s, k) not in ignore and a[s].get(k) != b[s][k]
    ]


#: What a run's table does not list as its settings: where it runs, where its data lie, its seed
#: and model (named in the table and the run folder).
UNLISTED = (
    *FREE,
    ("train", "seed"),
    ("model", "name"),
    ("data", "dataset"),
    *(("data", key) for key in ("root", "folds", "landmarks", "dmarkers")),
)


def table_notes(cfg: Config, base: Path | None) -> list[str]:
    """What ``results.md`` says a run is, beyond model and dataset: its settings other than the
    config file ``base``'s (an ablation, ``--set`` overrides; None: the defaults), and fold files
    that are a subset of others (``python -m data.folds subset``: not their protocol)."""
    diff = config_differences(load_config(base), cfg, UNLISTED)
    where = base.name if base is not None else "the defaults"
    notes = [f"Settings other than {where}: {'; '.join(diff)}." if diff else f"Settings: {where}."]
    folds = Path(cfg.data.folds or Path(cfg.data.root) / "labels")
    if (folds / SUBSET_META).is_file():
        fix = "make the subset again (python -m data.folds subset)"
        meta = read_json(folds / SUBSET_META, fix, keys=("source", "dropped"))
        notes.append(
            f"Folds: {folds} is {meta['source']} without {len(meta['dropped'])} video(s) that "
            f"have no landmark file ({SUBSET_META}): not the protocol of {meta['source']}."
        )
    return notes


def first_few(items: list[str], n: int = 3) -> str:
    """The first ``n`` items joined by "; ", with " ..." when there are more."""
    return "; ".join(items[:n]) + (" ..." if len(items) > n else "")


def check_same_run(saved: Config, cfg: Config, out_dir: Path) -> None:
    """A run folder holds one config: its folds and resumes use the one it started with (the
    device and the loader workers may change)."""
    # which file holds the D-Marker table may change: every finished fold's rows are checked
    # against the table read now (check_kept_folds), so no run mixes two tables
    diff = config_differences(saved, cfg, ignore=[("data", "dmarkers")])
    if diff:
        raise ValueError(
            f"{out_dir} was started with another config ({first_few(diff)}): resume it with the "
            "same settings, or use --out for a new run"
        )


#: A fold's folder in a run folder: ``fold_01``, ``fold_02``, ...
FOLD_FOLDER = re.compile(r"fold_\d+")


def fold_folders(run: Path) -> list[Path]:
    """The fold folders (``fold_NN``) of a run folder, in fold order. ValueError naming any other
    ``fold_*`` folder in it: a copy such as ``fold_01.bak`` would count a fold twice."""
    folders = [d for d in run.glob("fold_*") if d.is_dir()]
    if stray := sorted(d.name for d in folders if not FOLD_FOLDER.fullmatch(d.name)):
        raise ValueError(
            f"{run}: {', '.join(stray)}: not fold folders of smile_point.py (fold_NN); move "
            "them out of the run folder"
        )
    return sorted(folders, key=lambda d: int(d.name.removeprefix("fold_")))


def run_config(out: Path) -> Config:
    """The config of a started run folder; ValueError with the fix when its config.yaml is gone
    (each fold folder keeps a copy)."""
    path = out / "config.yaml"
    if not path.exists():
        kept = sorted(out.glob("fold_*/config.yaml"))
        new = "use --out for a new run"
        fix = f"copy {kept[0]} back to {path}, or {new}" if kept else new
        raise ValueError(f"{out}: a started run without its config.yaml; {fix}")
    return load_config(path)


def run_started(out: Path) -> bool:
    """Whether a fold of the run folder ``out`` holds a checkpoint or a result."""
    return any((d / f).exists() for d in out.glob("fold_*") for f in ("last.pt", "test.json"))


def check_folds(
    cfg: Config, folds, dataset: SmileDataset, resume: bool, shared: bool = False
) -> None:
    """Before a run writes: one config per run folder (another fold of it, or a resume; also
    where ``shared``: another job is training folds of it) and each fold's folder free to write
    (:func:`check_fold`)."""
    out = Path(cfg.out)
    if shared or run_started(out):
        check_same_run(run_config(out), cfg, out)
    for k in folds:
        check_fold(cfg, k, dataset, resume)


@contextmanager
def claimed_folds(cfg: Config, folds, dataset: SmileDataset, resume: bool) -> Iterator[None]:
    """Hold the run's ``folds`` for this job (data.claim) while the block trains them: claimed,
    the folder checked again and the folds and config.yaml saved under the run's brief config
    lock, so a job that holds folds of the run has always saved its config (another job's
    config must then match)."""
    out = Path(cfg.out)
    mine = [out / f".fold_{k:02d}.lock" for k in folds]
    with ExitStack() as holding:
        with claimed(out / ".config.lock", f"the config of {out}", wait=True):
            holding.enter_context(
                claimed_all([(f, f"fold {k} of {out}") for k, f in zip(folds, mine, strict=True)])
            )
            others = [f for f in out.glob(".fold_*.lock") if f not in mine and held(f)]
            check_folds(cfg, folds, dataset, resume, shared=bool(others))
            dataset.save_folds()  # first: refused where another run wrote other folds
            save_config(cfg, out / "config.yaml")
        yield


def check_fold(cfg: Config, fold: int, dataset: SmileDataset, resume: bool) -> Path:
    """The fold exists and its folder may be written: a new run never overwrites one, --resume
    continues only with the same config (the run's config.yaml is checked by the caller, with
    :func:`check_same_run`). -> the fold's output folder."""
    if not 1 <= fold <= len(dataset.folds):
        raise ValueError(f"--fold {fold}: {dataset.root} has folds 1..{len(dataset.folds)}")
    f = dataset.fold(fold)
    if why := training_part_problem(
        f, dataset.subjects, dataset.labels, cfg.data.val_fraction, cfg.train.seed
    ):
        raise ValueError(f"{dataset.root}, {why}")
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


def landmark_digest(cfg: Config, dataset: SmileDataset, names: list[str]) -> str | None:
    """The digest of the landmark arrays a fold's network learns from and is tested on (None for
    the baseline, which reads D-Markers only)."""
    return None if cfg.model.name == BASELINE else dataset.landmark_digest(names)


def fold_digest(dataset: SmileDataset, split) -> str:
    """SHA-256 of the fold's training, validation and test videos with their labels."""
    parts = {"train": split.train, "val": split.val, "test": split.test}
    return split_digest(dataset.labels, parts)


#: The fix for an unreadable result of a finished fold.
FOLD_FIX = "delete that fold folder and resume (--resume runs the fold again)"


def _changed(cfg: Config, dataset: SmileDataset, fold: int, test_json: Path) -> str | None:
    """Why the finished fold whose result is ``test_json`` no longer matches the dataset (its
    videos or labels, its landmark arrays or the D-Marker rows it learned from changed since), or
    None."""
    result = read_json(test_json, FOLD_FIX, FOLD_RESULT_KEYS)
    split = dataset.split(fold, cfg.data.val_fraction, cfg.train.seed)
    if "fold_digest" in result:
        same_fold = result["fold_digest"] == fold_digest(dataset, split)
    else:  # results of earlier versions: their test part and validation videos
        selection = test_json.parent / "selection.json"
        saved = read_json(selection, FOLD_FIX) if selection.exists() else {}
        if not isinstance(saved, dict):
            raise ValueError(f"{selection}: not a selection.json of smile_point.py; {FOLD_FIX}")
        val = saved.get("val")
        tested = {n: v["label"] for n, v in result["videos"].items()}
        same_fold = tested == {n: dataset.videos[n].label for n in split.test} and (
            val is None or sorted(val) == sorted(split.val)
        )
    if not same_fold:
        return "its videos or labels changed since"
    everything = [*split.train, *split.val, *split.test]
    if result.get("landmark_digest") not in (None, landmark_digest(cfg, dataset, everything)):
        return "its landmark files changed since"
    digest = dmarker_digest(cfg, dataset, everything)
    if "dmarker_digest" in result:
        return (
            None
            if result["dmarker_digest"] == digest
            else "its D-Marker rows differ from the table read now"
        )
    if digest is None:  # a model that reads no table (MeshSmileNet), or none there
        return None
    # earlier versions: the table named the same way, and not rebuilt since
    fold_config = test_json.parent / "config.yaml"
    saved = load_config(fold_config, checked=False).data.dmarkers if fold_config.exists() else None
    named = [Path(p).resolve() if p else None for p in (saved, cfg.data.dmarkers)]
    path = dataset.dmarkers().path
    newer = path is not None and path.stat().st_mtime > test_json.stat().st_mtime
    return (
        "its D-Marker rows differ from the table read now"
        if newer or named[0] != named[1]
        else None
    )


def check_kept_folds(cfg: Config, folds, dataset: SmileDataset) -> None:
    """Raise ValueError naming every finished fold of ``folds`` that a run cannot keep (made on
    other data than the dataset and D-Marker table read now)."""
    changed = {}
    for k in folds:
        test_json = Path(cfg.out) / f"fold_{k:02d}" / "test.json"
        if test_json.exists() and (why := _changed(cfg, dataset, k, test_json)):
            changed[test_json.parent] = why
    if changed:
        listed = ", ".join(f"{d.name} ({why})" for d, why in changed.items())
        raise ValueError(
            f"{Path(cfg.out)}: finished folds made on other data than the dataset holds now: "
            f"{listed}; delete {'them' if len(changed) > 1 else 'it'} and run "
            f"{'them' if len(changed) > 1 else 'it'} again (--resume), or train under a new --out"
        )


def run_fold(
    cfg: Config, fold: int, dataset: SmileDataset | None = None, resume: bool = False
) -> dict:
    """Train on fold ``fold`` (1-based, numeric folder order), select on validation, test once."""
    dataset = dataset or load_dataset(cfg)
    out_dir = check_fold(cfg, fold, dataset, resume)
    if resume and (out_dir / "test.json").exists():
        check_kept_folds(cfg, [fold], dataset)
        print(f"fold {fold}: finished earlier, kept {out_dir / 'test.json'}")
        return read_fold_result(out_dir / "test.json", FOLD_FIX)
    split = dataset.split(fold, cfg.data.val_fraction, cfg.train.seed)
    train, val = list(split.train), list(split.val)

    subjects = dataset.subjects
    groups = {"train": train, "val": val, "test": list(split.test)}
    seen = {k: {subjects[n] for n in names} for k, names in groups.items()}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):  # the last guard
        if shared := seen[a] & seen[b]:  # open_dataset and the split refuse this before: a bug
            raise RuntimeError(
                f"fold {fold}: subjects {sorted(shared)[:5]} are in both {a} and {b} (a toolkit "
                f"bug: check the folds with python -m data.folds check, and report it)"
            )

    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out_dir / "config.yaml")
    if cfg.model.name == BASELINE:  # no validation part: C is chosen by inner cross-validation
        counts = f"train {len(train) + len(val)}, test {len(split.test)}; subjects "
        counts += f"{len(seen['train'] | seen['val'])}/{len(seen['test'])}"
    else:
        counts = f"train {len(train)}, val {len(val)}, test {len(split.test)}; subjects "
        counts += "/".join(str(len(seen[k])) for k in groups)
    reads_table = cfg.model.name == BASELINE or uses_dmarkers(cfg)
    if reads_table and (table := dataset.dmarkers()) is not None:  # which table: say so
        counts += f"; D-Markers from {table.path}"
    folder = dataset.fold(fold).name  # the N-th folder in numeric order, named as it may be
    named = f"fold {fold}/{len(dataset.folds)}" + ("" if folder == str(fold) else f" ({folder}/)")
    print(f"{Fore.MAGENTA}{named}{Style.RESET_ALL}: videos {counts}")
    t = cfg.train
    if cfg.model.name != BASELINE and t.epochs < t.warmup_epochs:  # a quick run, likely
        print(
            f"{Fore.YELLOW}note{Style.RESET_ALL}: train.epochs {t.epochs} < train.warmup_epochs "
            f"{t.warmup_epochs}: the learning rate never reaches train.lr, only "
            f"{t.epochs}/{t.warmup_epochs} of it (--set train.warmup_epochs=N, below the epochs, "
            "for the full schedule)"
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
    everything = [*train, *val, *split.test]
    result["dmarker_digest"] = dmarker_digest(cfg, dataset, everything)
    result["landmark_digest"] = landmark_digest(cfg, dataset, everything)
    result["fold_digest"] = fold_digest(dataset, split)  # what --resume checks before keeping it
    atomic_write_json(out_dir / "test.json", result)
    print(
        f"{Fore.GREEN}fold {fold} test{Style.RESET_ALL}: accuracy {result['accuracy']:.3f} "
        f"auc {result['auc']:.3f} f1 {result['f1']:.3f} ({chosen}, threshold "
        f"{result['threshold']:.3f}; {what_validation_chose(cfg.train.threshold, cfg.model.name)})"
    )
    return result


def run_folds(cfg: Config, folds, dataset, resume: bool) -> tuple[dict, dict]:
    """Run every fold; one whose training diverged or whose checkpoint cannot be read is reported
    at the end, after the others ran (any other error stops the run). Returns ({fold: test
    result}, {fold: reason})."""
    results, failed = {}, {}
    for k in folds:
        try:
            results[k] = run_fold(cfg, k, dataset, resume=resume)
        except (DivergedError, CheckpointError) as e:
            if len(folds) == 1:
                raise
            failed[k] = str(e)
            print(f"{Fore.RED}fold {k} failed:{Style.RESET_ALL} {e}", file=sys.stderr)
    return results, failed
