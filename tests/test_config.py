"""Config: YAML + --set overrides, type checks, unknown keys."""

from pathlib import Path

import pytest
import yaml

from training.config import Config, load_config, save_config

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert cfg.data.dataset == path.stem
    assert cfg.train.lr > 0 and cfg.data.window > 0
    # a threshold chosen on validation only where a validation part has ~170 videos (UvA-NEMO);
    # BBC's has 2, SPOS's 12, MMI's 19-32, the demo's ~37 (README: Protocol)
    assert cfg.train.threshold == ("val" if path.stem == "uva" else "fixed")


def test_overrides_dotted_and_bare_keys():
    cfg = load_config(
        None, ["train.lr=1e-3", "window=8", "model.name=meshsmilenet", "data.folds=null"]
    )
    assert cfg.train.lr == pytest.approx(1e-3)
    assert cfg.data.window == 8
    assert cfg.model.name == "meshsmilenet"
    assert cfg.data.folds is None


def test_int_is_accepted_for_float_but_not_the_reverse():
    assert load_config(None, ["train.lr=1"]).train.lr == 1.0
    with pytest.raises(ValueError, match="train.epochs"):
        load_config(None, ["train.epochs=1.5"])


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("train.nope=1", "unknown key 'train.nope'$"),  # nothing close: no guess
        ("nope=1", "unknown key"),
        ("model.dimm=16", r"unknown key 'model.dimm' \(did you mean 'model.dim' or 'model.mlp_"),
        ("epoch=3", r"unknown key 'epoch' \(did you mean 'train.epochs'\?\)"),
        ("train.dim=3", r"unknown key 'train.dim' \(did you mean 'model.dim'\?\)"),  # section
        ("train.lr", "expected key=value"),
        ("train.amp=maybe", "train.amp"),
        ("augment.mirror=yes", "expected float, got True .YAML reads yes/no/on/off as true"),
        ("ema_decay=1", "train.ema_decay = 1.0: must be 0"),
        ("ema_decay=-0.1", "train.ema_decay"),
        ("epochs=0", "train.epochs = 0: must be at least 1"),
        ("batch_size=0", "train.batch_size"),
        ("lr=0", "train.lr"),
        ("bce_weight=0", "train.bce_weight"),
        ("dmarker_weight=-1", "train.dmarker_weight"),
        ("patience=-1", "train.patience"),
        ("grad_clip=-1", "train.grad_clip"),
        ("warmup_epochs=-1", "train.warmup_epochs"),
        ("weight_decay=-1", "train.weight_decay = -1.0: must be 0 or positive"),
        ("min_lr_ratio=5", "train.min_lr_ratio"),
        ("device=gpu", "train.device = 'gpu': must be auto, cpu or cuda"),
        ("window=1", "data.window = 1: must be at least 2"),
        ("out=runs/x", "out is no setting to --set; give it as --out DIR"),
        ("target_fps=.inf", r"data.target_fps = inf: must be a finite number"),
        ("lr=.nan", r"train.lr = nan: must be a finite number"),
        ("model.dropout=.nan", r"model.dropout = nan: must be a finite number"),
        ("seed=-1", r"train.seed = -1: must be in \[0, 2\^32\)"),
        ("seed=4294967296", r"train.seed = 4294967296: must be in \[0, 2\^32\)"),
        ("data.test_stride=0", "data.test_stride = 0: must be from 1 to data.window"),
        ("data.test_stride=33", "data.test_stride = 33: must be from 1 to data.window"),
        ("seed=100000000000000000000", r"train.seed = 100000000000000000000: must be in"),
        ("target_fps=-1", "data.target_fps"),
        ("normalize=bogus", "data.normalize = 'bogus': must be one of face"),
        ("val_fraction=1", "data.val_fraction"),
        ("num_workers=-1", "data.num_workers"),
        ("mirror=2", "augment.mirror = 2.0: must be a probability"),
        ("speed=-0.1", "augment.speed"),
    ],
)
def test_bad_overrides_raise(item, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, [item])


def test_config_files_that_are_not_configs(tmp_path):
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="list.yaml: not a config"):
        load_config(listed)
    with pytest.raises(ValueError, match="a folder; give a config file"):
        load_config(tmp_path)
    empty = tmp_path / "empty.yaml"
    empty.write_text("model:\ntrain:\n  epochs: 2\n")  # a section with nothing under it
    assert load_config(empty).train.epochs == 2
    twice = tmp_path / "twice.yaml"  # YAML keeps the last: the first train section was dropped
    twice.write_text("train:\n  epochs: 3\nmodel:\n  dim: 16\ntrain:\n  lr: 0.01\n")
    with pytest.raises(ValueError, match="twice.yaml: not valid YAML: train given twice"):
        load_config(twice)
    twice.write_text("train:\n  epochs: 3\n  epochs: 4\n")
    with pytest.raises(ValueError, match="epochs given twice"):
        load_config(twice)


def test_unknown_key_in_yaml_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(ValueError, match="bad.yaml"):
        load_config(bad)


def test_round_trip(tmp_path):
    cfg = load_config(None, ["train.epochs=7", "data.window=12"])
    save_config(cfg, tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml")
    assert again == cfg
    assert yaml.safe_load((tmp_path / "c.yaml").read_text())["train"]["epochs"] == 7
    assert isinstance(again, Config)
