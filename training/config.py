"""Run configuration: dataclass defaults <- YAML file <- ``--set key=value`` overrides.

Keys are ``section.field`` (``train.lr``, ``model.dim``, ``data.window``, ``augment.mirror``); a
bare field name is accepted when only one section has it. Unknown keys and values of the wrong
type are errors.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from data.normalize import NORMALIZATIONS
from data.transforms import AugmentConfig
from models import ModelConfig


@dataclass
class DataConfig:
    dataset: str = "uva"  # uva | bbc | mmi | spos | folder | demo
    root: str = "uva"  # dataset folder: landmarks in <root>/npy, folds in <root>/labels
    folds: str | None = None  # fold folder; default <root>/labels (generated if absent)
    landmarks: str | None = None  # landmark folder; default <root>/npy
    # D-Marker table; default the dmarkers.npz under <root> or the landmark folder (two that
    # differ: refused)
    dmarkers: str | None = None
    n_folds: int | None = (
        None  # folds generated when the dataset has no fold files (None: per kind)
    )
    window: int = 16  # W frames per clip (paper: 16)
    target_fps: float = 25.0  # every video is resampled to this rate before windowing
    normalize: str = "face"  # one of data.normalize.NORMALIZATIONS (see there)
    # Stride of the deterministic test windows (default W; plus one window ending on the last
    # frame); validation, run every epoch, always uses W
    test_stride: int | None = None
    val_fraction: float = 0.15  # inner validation split, carved from the training part
    num_workers: int = 0  # DataLoader workers


@dataclass
class TrainConfig:
    epochs: int = 300
    batch_size: int = 16
    lr: float = 5e-4  # AdamW, as the paper
    weight_decay: float = 0.01
    warmup_epochs: int = 5  # linear warm-up, then cosine decay to lr * min_lr_ratio
    min_lr_ratio: float = 0.01
    grad_clip: float = 1.0  # max gradient norm; 0 = off
    bce_weight: float = 0.2  # paper: 0.2 BCE + 0.8 D-Marker term
    dmarker_weight: float = 0.8  # 0 = MeshSmileNet training
    dmarker_loss: str = "mse"  # mse | smooth_l1, on standardised targets (no sigmoid around it)
    # Epoch selection on the inner validation split only: bce (log-loss, lower is better) |
    # auc | accuracy. Log-loss is the default: on validation parts of a few dozen videos the AUC
    # and accuracy curves are noisy enough that their maximum can fall on a spike of a model
    # that has not learnt yet (seen on the demo set: AUC 0.87 at epoch 14 with training BCE
    # still 0.69), while the log-loss curve is smooth.
    select_metric: str = "bce"
    patience: int = 0  # early stopping after this many epochs without improvement; 0 = off
    # Exponential moving average of the weights, updated every optimizer step; validation,
    # selection and test use the average. 0 = off; 0.99 averages over ~100 steps.
    ema_decay: float = 0.0
    threshold: str = "val"  # val: chosen on the validation split | fixed: 0.5
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # training clips only
    out: str | None = None  # run folder; default <root>/runs/<dataset>-<model>-seed<seed>


SECTIONS = ("model", "data", "train", "augment")


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(d: dict, source: str = "config") -> Config:
    """Build a Config from a nested dict; unknown sections or keys raise ValueError."""
    cfg = Config()
    for key, value in d.items():
        if key == "out":
            cfg.out = None if value is None else str(value)
            continue
        if key in SECTIONS and value is None:  # "model:" with nothing under it
            continue
        if key not in SECTIONS or not isinstance(value, dict):
            raise ValueError(
                f"{source}: unknown section {key!r} (sections: model, data, train, augment, out)"
            )
        for k, v in value.items():
            set_value(cfg, f"{key}.{k}", v, source)
    return cfg


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML keeps the last
    silently: a second ``train:`` section would drop the first)."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        if twice := sorted({str(k) for k in keys if keys.count(k) > 1}):
            raise yaml.constructor.ConstructorError(
                None, None, f"{', '.join(twice)} given twice", node.start_mark
            )
        return super().construct_mapping(node, deep=deep)


def file_sets(path: str | Path, section: str, key: str) -> bool:
    """The YAML config file ``path`` (already read by :func:`load_config`) sets section.key."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    return isinstance(raw, dict) and isinstance(raw.get(section), dict) and key in raw[section]


def load_config(path: str | Path | None, overrides: list[str] = (), checked: bool = True) -> Config:
    """Defaults <- YAML ``path`` <- ``key=value`` overrides, checked against the bounds of
    :func:`check_choices`; ``checked=False`` reads a finished run's config.yaml as it was written
    (a bound added since must not make a finished run unreadable)."""
    cfg = Config()
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: config not found (see configs/ for the shipped ones)")
        if path.is_dir():
            raise ValueError(f"{path}: a folder; give a config file such as configs/demo.yaml")
        try:
            raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from e
        if not isinstance(raw, dict):
            raise ValueError(
                f"{path}: not a config (expected the sections model, data, train, augment)"
            )
        cfg = from_dict(raw, str(path))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r}: expected key=value, e.g. --set train.lr=1e-3")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        set_value(cfg, key.strip(), value, f"--set {item}")
    if checked:
        check_choices(cfg)
    return cfg


#: ``--device`` / ``train.device`` values.
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")

#: Allowed values of the string options that are not checked elsewhere.
CHOICES = {
    ("data", "dataset"): ("uva", "bbc", "mmi", "spos", "folder", "demo"),
    ("train", "dmarker_loss"): ("mse", "smooth_l1"),
    ("train", "select_metric"): ("bce", "auc", "accuracy"),
    ("train", "threshold"): ("val", "fixed"),
}


def check_choices(cfg: Config) -> None:
    """Raise ValueError naming the key when an option has a value it cannot take (before
    anything is written)."""
    for (section, name), allowed in CHOICES.items():
        value = getattr(getattr(cfg, section), name)
        if value not in allowed:
            raise ValueError(f"{section}.{name} = {value!r}: use one of {', '.join(allowed)}")
    for section in SECTIONS:  # nan and inf pass every comparison below
        for f in dataclasses.fields(part := getattr(cfg, section)):
            value = getattr(part, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{section}.{f.name} = {value!r}: must be a finite number")
    d, t, a = cfg.data, cfg.train, cfg.augment
    rules = (
        ("data.window", d.window >= 2, "at least 2 (a frame alone holds no motion)"),
        ("data.target_fps", d.target_fps > 0, "positive"),
        ("data.normalize", d.normalize in NORMALIZATIONS, f"one of {', '.join(NORMALIZATIONS)}"),
        (
            "data.test_stride",
            d.test_stride is None or 1 <= d.test_stride <= d.window,
            "from 1 to data.window (test windows must cover the whole video)",
        ),
        ("data.val_fraction", 0 < d.val_fraction < 1, "in (0, 1)"),
        ("data.num_workers", d.num_workers >= 0, "0 (in this process) or more"),
        ("train.epochs", t.epochs >= 1, "at least 1"),
        ("train.seed", 0 <= t.seed < 2**32, "in [0, 2^32)"),
        ("train.batch_size", t.batch_size >= 1, "at least 1"),
        ("train.lr", t.lr > 0, "positive"),
        ("train.weight_decay", t.weight_decay >= 0, "0 or positive"),
        ("train.min_lr_ratio", 0 <= t.min_lr_ratio <= 1, "in [0, 1]"),
        ("train.bce_weight", t.bce_weight > 0, "positive (the class head must learn)"),
        ("train.dmarker_weight", t.dmarker_weight >= 0, "0 (MeshSmileNet training) or positive"),
        ("train.warmup_epochs", t.warmup_epochs >= 0, "0 or more"),
        ("train.patience", t.patience >= 0, "0 (off) or more"),
        ("train.grad_clip", t.grad_clip >= 0, "0 (off) or positive"),
        ("train.ema_decay", 0 <= t.ema_decay < 1, "0 (off) or a value in (0, 1)"),
        ("train.device", DEVICE.fullmatch(t.device), "auto, cpu or cuda[:N]"),
        ("augment.mirror", 0 <= a.mirror <= 1, "a probability in [0, 1]"),
        *((f"augment.{k}", getattr(a, k) >= 0, "0 (off) or positive")
          for k in ("rotate_degrees", "scale", "translate", "speed")),
    )  # fmt: skip
    for key, ok, rule in rules:
        if not ok:
            section, name = key.split(".")
            raise ValueError(f"{key} = {getattr(getattr(cfg, section), name)!r}: must be {rule}")
    cfg.model.validate()


def save_config(cfg: Config, path: str | Path) -> None:
    from data.files import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def set_value(cfg: Config, key: str, value: Any, source: str) -> None:
    """Set ``section.field`` (or a unique bare field) to ``value``, checking its type."""
    section, name = _resolve(cfg, key, source)
    target = getattr(cfg, section)
    hint = typing.get_type_hints(type(target))[name]
    setattr(target, name, _coerce(value, hint, f"{source}: {section}.{name}"))


def _did_you_mean(cfg: Config, key: str) -> str:
    """The hint " (did you mean 'model.dim'?)": the field under another section, else the
    closest keys; "" when none is close."""
    keys = [f"{s}.{n}" for s in SECTIONS for n in _field_names(getattr(cfg, s))]
    name = key.rsplit(".", 1)[-1]
    close = [k for k in keys if k.endswith(f".{name}")]  # train.dim -> model.dim
    if not close:
        bare = {k.split(".", 1)[1]: k for k in keys}
        close = difflib.get_close_matches(key, keys, n=2, cutoff=0.75)
        close += [bare[k] for k in difflib.get_close_matches(name, bare, n=2, cutoff=0.75)]
    close = list(dict.fromkeys(close))[:2]
    return f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""


def full_key(cfg: Config, key: str) -> str:
    """``section.field`` of a key as ``--set`` takes it (a unique bare field is completed)."""
    return ".".join(_resolve(cfg, key.strip(), f"--set {key}"))


def _resolve(cfg: Config, key: str, source: str) -> tuple[str, str]:
    if key == "out":  # a config file's top-level out: is a flag of its own on the command line
        raise ValueError(f"{source}: out is no setting to --set; give it as --out DIR")
    sections = SECTIONS
    if "." in key:
        section, name = key.split(".", 1)
        if section in sections and name in _field_names(getattr(cfg, section)):
            return section, name
        raise ValueError(f"{source}: unknown key {key!r}{_did_you_mean(cfg, key)}")
    owners = [s for s in sections if key in _field_names(getattr(cfg, s))]
    if len(owners) == 1:
        return owners[0], key
    if not owners:
        raise ValueError(f"{source}: unknown key {key!r}{_did_you_mean(cfg, key)}")
    raise ValueError(
        f"{source}: key {key!r} is ambiguous, write one of "
        + ", ".join(f"{s}.{key}" for s in owners)
    )


def _field_names(obj: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(obj)}


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a type hint (int, float, bool, str, tuple[...], X | None)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0])
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        arg = (typing.get_args(hint) or (Any,))[0]
        return origin(_coerce(v, arg, where) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    elif hint is Any:
        return value
    why = " (YAML reads yes/no/on/off as true/false)" if isinstance(value, bool) else ""
    raise ValueError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}{why}")
