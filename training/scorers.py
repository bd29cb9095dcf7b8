"""Trained checkpoints to classify with: the fold ``best.pt`` files a run folder stands for (its
``fold_NN`` folders, as its ``results.json`` lists them, each finished), each loaded with the
config it was trained under and its decision threshold."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from data.files import read_json
from models import build_model
from models.config import BASELINE
from training.checkpoint import UntrustedCheckpointError, load_checkpoint
from training.config import Config, from_dict
from training.cross_validation import fold_folders


@dataclass
class Scorer:
    """One trained model with the config it was trained under and its decision threshold."""

    path: Path
    cfg: Config
    model: torch.nn.Module
    n_landmarks: int
    threshold: float


def _is_baseline_run(path: Path) -> bool:
    """The run (or fold) folder's config.yaml names the D-Marker baseline."""
    config = path / "config.yaml"
    if not config.is_file():
        return False
    try:
        saved = yaml.safe_load(config.read_text()) or {}
    except yaml.YAMLError:
        return False  # not ours: the checkpoints themselves are checked later
    return isinstance(saved, dict) and (saved.get("model") or {}).get("name") == BASELINE


def _check_listed(run: Path, folds: list[Path]) -> None:
    """The fold folders are the folds the run's ``results.json`` (written by ``--fold all``)
    lists, each with its ``best.pt``: no fold is silently left out or added (a run folder
    without it, such as a --fold N run, is refused: its best.pt files may be given)."""
    results = run / "results.json"
    if not results.is_file():
        raise FileNotFoundError(
            f"{run}: no results.json, so not every fold has run "
            f"({', '.join(d.name for d in folds)} so far); finish it (smile_point.py --fold "
            "all --resume with the same settings), or give the folds' best.pt files"
        )
    rewrite = "rewrite it: smile_point.py --fold all --resume"
    table = read_json(results, rewrite)
    try:
        listed = [run / f"fold_{int(r['fold']):02d}" for r in table["folds"]]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{results}: not a results.json of smile_point.py; {rewrite}") from e
    if extra := [d.name for d in folds if d not in listed]:
        raise ValueError(
            f"{run}: {', '.join(extra)} not among the folds its results.json lists; move them "
            "out of the run folder, or give the folds' best.pt files"
        )
    expected = dict.fromkeys([*listed, *folds])
    if missing := [d.name for d in expected if not (d / "best.pt").is_file()]:
        raise FileNotFoundError(
            f"{run}: no best.pt in {', '.join(missing)}; delete those fold folders and run them "
            "again (--fold N --resume), or give the other folds' best.pt files"
        )


def find_checkpoints(paths: list[str | Path]) -> list[Path]:
    """``best.pt`` files: each path itself, or a run folder's ``fold_NN/best.pt`` (each once).

    A fold folder without ``test.json`` is still training (or was stopped): an error.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_file() and path.name == "last.pt":
            raise ValueError(
                f"{path}: the last epoch's weights, not the ones validation selected; give the "
                "fold's best.pt"
            )
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            if _is_baseline_run(path):
                raise ValueError(
                    f"{path}: a {BASELINE} run has no network to classify with; give a "
                    "DeepMarkerNet or MeshSmileNet run"
                )
            folds = fold_folders(path)
            whole_run = bool(folds)
            if not folds and (path / "best.pt").is_file():
                folds = [path]  # a fold folder
            if not folds:
                raise FileNotFoundError(
                    f"{path}: no best.pt or fold_*/best.pt in it; give a run folder of "
                    "smile_point.py or one fold's best.pt"
                )
            if unfinished := [d.name for d in folds if not (d / "test.json").exists()]:
                raise ValueError(
                    f"{path}: {', '.join(unfinished)} not finished (no test.json); finish the run "
                    "with --resume, or give the finished folds' best.pt files"
                )
            if whole_run:
                _check_listed(path, folds)
            found += [d / "best.pt" for d in folds]
        else:
            raise FileNotFoundError(f"{path}: no such checkpoint or run folder")
    unique: dict[Path, Path] = {}  # a fold named twice counts once
    for p in found:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def load_scorer(path: Path, device: torch.device) -> Scorer:
    """The model of checkpoint ``path`` in eval mode on ``device`` and its threshold."""
    try:
        ckpt = load_checkpoint(path)
        cfg = from_dict(ckpt["config"], str(path))
        model = build_model(cfg.model, ckpt["n_landmarks"])
        model.load_state_dict(ckpt["model"])
    except UntrustedCheckpointError:
        raise  # its own words name the fix
    except Exception as e:  # a pickle of anything: one line, whatever failed
        e = e.__cause__ or e  # what torch.load itself raised
        fix = (
            f"delete {path.parent} and resume its run (--resume runs that fold again)"
            if path.name == "best.pt"
            else "give a fold's best.pt"
        )
        raise ValueError(
            f"{path}: not a readable smile_point.py checkpoint ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}); {fix}"
        ) from e
    model.to(device).eval()
    return Scorer(path, cfg, model, int(ckpt["n_landmarks"]), _threshold(path, cfg, ckpt))


def _threshold(path: Path, cfg, ckpt: dict) -> float:
    """0.5 for ``threshold: fixed``; else the one chosen on validation for this checkpoint's
    epoch, kept in ``selection.json`` beside it (ValueError when missing or of another epoch)."""
    selection = path.parent / "selection.json"
    if cfg.train.threshold == "fixed":
        return 0.5
    if not selection.exists():
        raise ValueError(
            f"{path}: its threshold was chosen on validation and is kept in {selection.name} "
            "beside it, which is missing; finish the fold (--resume) or copy the fold folder whole"
        )
    rerun = "delete that fold folder and run the fold again"
    chosen = read_json(selection, rerun)
    try:
        epoch, threshold = int(chosen["best_epoch"]), float(chosen["threshold"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{selection}: not a selection.json of smile_point.py; {rerun}") from e
    if epoch != ckpt["state"]["best_epoch"]:
        raise ValueError(
            f"{selection}: chosen for epoch {epoch}, but {path.name} holds epoch "
            f"{ckpt['state']['best_epoch']} (files of two runs); copy one run's fold folder whole"
        )
    return threshold
