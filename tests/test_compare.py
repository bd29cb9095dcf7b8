"""python -m training.compare: a row per configuration (a run or its repeats); paired differences
on the same folds only."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from data.files import atomic_write_json
from training.compare import load_repeats, load_run, main, paired
from training.config import load_config, save_config
from training.metrics import classification_metrics
from training.report import write_results
from training.significance import corrected_t_p, difference_interval, sign_flip_p


def fake_run(
    root: Path, model: str, probs: dict[int, list[float]], names=("a", "b", "c", "d"), seed=0
):
    """A finished --fold all run (its config.yaml with ``seed``) whose fold k tested ``names``
    (suffixed by k) with ``probs[k]``; subject p<k> holds the first two videos of fold k, q<k>
    the last two."""
    cfg = load_config(None, ["data.dataset=demo", f"model.name={model}", f"train.seed={seed}"])
    save_config(cfg, root / "config.yaml")
    labels = [0, 1, 0, 1]
    results, subjects = {}, {}
    for k, p in probs.items():
        videos = {
            f"{n}{k}": {"label": y, "probability": q}
            for n, y, q in zip(names, labels, p, strict=True)
        }
        results[k] = {**classification_metrics(labels, p), "best_epoch": 3, "videos": videos}
        subjects |= dict(zip(videos, [f"p{k}", f"p{k}", f"q{k}", f"q{k}"], strict=True))
        atomic_write_json(root / f"fold_{k:02d}" / "test.json", results[k])
    write_results(root, "demo", model, results, "fixed", subjects=subjects)
    return root


def test_rows_and_paired_differences(tmp_path, capsys):
    first = fake_run(
        tmp_path / "dmn", "deepmarkernet", {1: [0.1, 0.9, 0.2, 0.8], 2: [0.6, 0.9, 0.2, 0.8]}
    )
    other = fake_run(
        tmp_path / "msn", "meshsmilenet", {1: [0.6, 0.9, 0.2, 0.4], 2: [0.1, 0.9, 0.2, 0.8]}
    )
    elsewhere = fake_run(tmp_path / "x", "meshsmilenet", {1: [0.1] * 4, 2: [0.9] * 4}, names="wxyz")
    # accuracy: first 1.00 / 0.75, other 0.50 / 1.00 -> differences -0.50 / +0.25
    diff = paired(load_repeats(str(other)), load_repeats(str(first)))
    assert diff["accuracy"] == "-0.125 +- 0.375"
    # corrected t-test over the 2 folds: test / training videos 4 / 4 each
    assert diff["t_p"] == f"p {corrected_t_p(np.array([[-0.5, 0.25]]), 1.0):.3f}"
    assert paired(load_repeats(str(elsewhere)), load_repeats(str(first))) == {}
    assert main([str(first), str(other), str(elsewhere)]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[2].startswith(f"| {first} | deepmarkernet | demo | 2 | 0.875 +- 0.125 |")
    assert rows[2].endswith("| (first) | (first) | (first) | (first) |")
    assert "| -0.125 +- 0.375 |" in rows[3]
    # pooled: a1 and d1 wrong, a2 right -> subjects p1 -1, q1 -1, p2 +1, q2 0: -1 of 8 videos;
    # flipping the signs of three odd differences never sums to 0: p = 1; 4 subjects: no interval
    assert rows[3].endswith(f"| -0.125 [n/a], p 1.000 | {diff['t_p']} |")
    assert rows[4].endswith("| other folds | other folds | other folds | other folds |")


def test_runs_whose_test_labels_differ_are_not_paired(tmp_path):
    """Same videos, but one relabelled (a labels.csv fixed between the runs): not a pair."""
    first = fake_run(tmp_path / "a", "deepmarkernet", {1: [0.1, 0.9, 0.2, 0.8]})
    other = fake_run(tmp_path / "b", "meshsmilenet", {1: [0.6, 0.9, 0.2, 0.4]})
    test_json = other / "fold_01" / "test.json"
    result = json.loads(test_json.read_text())
    result["videos"]["a1"]["label"] = 1
    test_json.write_text(json.dumps(result))
    assert paired(load_repeats(str(other)), load_repeats(str(first))) == {}


def test_unfinished_run_is_one_line(tmp_path, capsys):
    (tmp_path / "run" / "fold_01").mkdir(parents=True)
    assert main([str(tmp_path / "run")]) == 2
    assert "no results.json; finish the run" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        load_run(tmp_path / "run")
    assert main([str(tmp_path / "run" / "fold_01")]) == 2  # a fold given, not its run
    assert f"fold_01: a fold of a run; give the run folder {tmp_path / 'run'}" in (
        capsys.readouterr().err
    )


def test_missing_folder_and_broken_json_are_named(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    assert "nope: no such run folder" in capsys.readouterr().err
    run = fake_run(tmp_path / "run", "deepmarkernet", {1: [0.1, 0.9, 0.2, 0.8]})
    (run / "fold_01" / "test.json").write_text("{")
    assert main([str(run)]) == 2
    err = capsys.readouterr().err
    assert (
        f"{run / 'fold_01' / 'test.json'}: not valid JSON (" in err and len(err.splitlines()) == 1
    )


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("results.json", "[]", "not the expected file, a JSON object with model, dataset, folds"),
        ("results.json", '{"model": "m", "dataset": "demo", "folds": [1]}', "not a list of fold"),
        ("fold_01/test.json", "{}", "(accuracy, auc, f1, threshold, videos missing)"),
        ("fold_01/test.json", '{"accuracy": 1}', "(auc, f1, threshold, videos missing)"),
    ],
)
def test_json_of_another_kind_is_one_line(tmp_path, capsys, file, content, message):
    """Valid JSON that is not what smile_point.py wrote (an edit, a file of another kind) is one
    line naming the file and its fix, as invalid JSON is."""
    run = fake_run(tmp_path / "run", "deepmarkernet", {1: [0.1, 0.9, 0.2, 0.8]})
    (run / file).write_text(content)
    assert main([str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{run / file}: " in err and message in err and len(err.splitlines()) == 1
    assert "rewrite it" in err or "delete that fold folder" in err


def test_a_run_of_an_earlier_version_has_no_subjects(tmp_path, capsys):
    """results.json without subjects (written before they were kept): the pooled test is n/a and
    the fix is named; the rest of the row stays."""
    first = fake_run(tmp_path / "a", "deepmarkernet", {1: [0.1, 0.9, 0.2, 0.8]})
    old = fake_run(tmp_path / "b", "meshsmilenet", {1: [0.6, 0.9, 0.2, 0.8]})
    for run in (first, old):
        table = json.loads((run / "results.json").read_text())
        del table["subjects"]
        (run / "results.json").write_text(json.dumps(table))
    assert main([str(first), str(old)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[3].endswith("| -0.250 +- 0.000 | +0.000 +- 0.000 | n/a (no subjects) | n/a |")
    assert f"{first}, {old}: results.json without subjects" in out[-1]


RIGHT = [0.1, 0.9, 0.2, 0.8]  # labels 0, 1, 0, 1: every call right


def test_pooled_difference_by_subject(tmp_path, capsys):
    """Six folds, twelve subjects: the other run misses the spontaneous video (b<k>) of subject
    p<k> in every fold: -6 of 24 videos; only the two equal-sign patterns of the six -1s reach
    |6|: p = 2/64 exactly (2^12 patterns)."""
    first = fake_run(tmp_path / "a", "deepmarkernet", dict.fromkeys(range(1, 7), RIGHT))
    other = fake_run(
        tmp_path / "b", "meshsmilenet", dict.fromkeys(range(1, 7), [0.1, 0.4, 0.2, 0.8])
    )
    assert main([str(first), str(other)]) == 0
    sums = np.array([-1.0] * 6 + [0.0] * 6)  # p1..p6, q1..q6
    lo, hi = difference_interval(sums, np.full(12, 2.0))
    assert lo < -0.25 < hi < 0
    assert (
        capsys.readouterr()
        .out.splitlines()[3]
        .endswith(f"| -0.250 [{lo:+.3f}, {hi:+.3f}], p 0.031 | n/a |")
    )
    # twenty subjects each one video better: p far below 0.001 (from 10,000 random patterns)
    first = fake_run(
        tmp_path / "c", "deepmarkernet", dict.fromkeys(range(1, 11), [0.6, 0.9, 0.6, 0.8])
    )
    other = fake_run(tmp_path / "d", "meshsmilenet", dict.fromkeys(range(1, 11), RIGHT))
    assert main([str(first), str(other)]) == 0
    assert capsys.readouterr().out.splitlines()[3].endswith(", p < 0.001 | n/a |")


def test_subjects_must_agree_and_one_run_with_them_is_enough(tmp_path, capsys):
    first = fake_run(tmp_path / "a", "deepmarkernet", {1: RIGHT})
    other = fake_run(tmp_path / "b", "meshsmilenet", {1: [0.6, 0.9, 0.2, 0.8]})
    table = json.loads((other / "results.json").read_text())
    table["subjects"]["a1"] = "q1"  # the other run puts a1 with another subject
    (other / "results.json").write_text(json.dumps(table))
    assert main([str(first), str(other)]) == 0
    assert capsys.readouterr().out.splitlines()[3].endswith("| n/a (subjects differ) | n/a |")
    del table["subjects"]  # a run of an earlier version: the first run's subjects serve both
    (other / "results.json").write_text(json.dumps(table))
    assert main([str(first), str(other)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[3].endswith("| -0.250 [n/a], p 1.000 | n/a |") and len(out) == 4  # no note


def test_only_the_folds_results_json_lists_are_read(tmp_path, capsys):
    """A fold run after the table was written (fold_03 here) is not part of that table; a listed
    fold whose test.json is gone is named."""
    run = fake_run(tmp_path / "a", "deepmarkernet", {1: RIGHT, 2: RIGHT})
    (run / "fold_02").rename(run / "fold_03")
    assert main([str(run)]) == 2
    assert f"{run / 'fold_02' / 'test.json'}: listed in results.json but missing" in (
        capsys.readouterr().err
    )
    (run / "fold_03").rename(run / "fold_02")
    later = fake_run(tmp_path / "b", "deepmarkernet", {3: RIGHT}) / "fold_03"
    later.rename(run / "fold_03")  # its videos have no subject in the table: not read
    assert load_run(run)["folds"].keys() == {1, 2}
    assert main([str(run), str(run)]) == 0
    assert "| 2 | 1.000 +- 0.000 |" in capsys.readouterr().out


def test_repeats_are_paired_one_to_one_and_a_single_run_with_each(tmp_path, capsys):
    """Two configurations of two repeats (other seeds) on the same two folds: the row's mean
    +- std is over the 4 fold results, the differences pair repeat i with repeat i (in the order
    of their seeds, however given), the pooled difference averages each video's over the pairs;
    a single run pairs with every repeat."""
    dmn = [
        fake_run(tmp_path / "dmn0", "deepmarkernet", {1: RIGHT, 2: RIGHT}),
        fake_run(tmp_path / "dmn1", "deepmarkernet", {1: [0.1, 0.4, 0.2, 0.8], 2: RIGHT}, seed=1),
    ]  # accuracy 1.0 / 1.0 and 0.75 / 1.0
    msn = [
        fake_run(tmp_path / "msn0", "meshsmilenet", {1: RIGHT, 2: [0.6, 0.4, 0.2, 0.8]}),
        fake_run(tmp_path / "msn1", "meshsmilenet", {1: RIGHT, 2: [0.1, 0.9, 0.7, 0.8]}, seed=1),
    ]  # 1.0 / 0.5 and 1.0 / 0.75
    logreg = fake_run(tmp_path / "lr", "dmarker-logreg", {1: RIGHT, 2: RIGHT})
    first, second = (",".join(map(str, runs)) for runs in (dmn, msn))
    assert main([first, second, str(logreg)]) == 0
    rows = capsys.readouterr().out.splitlines()
    acc = np.array([1.0, 1.0, 0.75, 1.0])
    assert rows[2].startswith(
        f"| {first} | deepmarkernet | demo | 2 x 2 repeats | {acc.mean():.3f} +- {acc.std():.3f} |"
    )
    diffs = np.array([[0.0, -0.5], [0.25, -0.25]])  # msn - dmn: repeat 0, repeat 1
    t_p = corrected_t_p(diffs, 1.0)  # 4 test against 4 training videos per fold
    # per video over the two pairs: b1 +1/2 (p1), a2 and b2 -1/2 (p2), c2 -1/2 (q2)
    p = sign_flip_p(np.array([0.5, -1.0, 0.0, -0.5]))
    assert f"| -0.125 +- {diffs.std():.3f} |" in rows[3]
    assert rows[3].endswith(f"| -0.125 [n/a], p {p:.3f} | p {t_p:.3f} |")
    swapped = load_repeats(",".join(map(str, msn[::-1])))  # paired by seed, not as given
    assert [run["name"] for run in swapped["repeats"]] == [str(run) for run in msn]
    # the single run of the baseline against each repeat: +0 / +0 and +0.25 / +0
    assert f"| {logreg} | dmarker-logreg | demo | 2 | 1.000 +- 0.000 |" in rows[4]
    assert "| +0.062 +- 0.108 |" in rows[4]
    assert "note" not in "".join(rows)  # the baseline is deterministic: one run is all of it
    assert main([first, str(msn[0]), str(logreg)]) == 0  # one run of a network: noted
    notes = [r for r in capsys.readouterr().out.splitlines() if r.startswith("note")]
    assert notes == [
        f"note: {msn[0]} is a single run of meshsmilenet, paired with each repeat of {first}: "
        "its retraining noise is not in the p-values; give its repeats too (other --seed, "
        "joined by commas)"
    ]


def test_repeats_must_match(tmp_path, capsys):
    runs = [
        fake_run(tmp_path / f"r{i}", "deepmarkernet", {1: RIGHT, 2: RIGHT}, seed=i)
        for i in range(3)
    ]
    other = fake_run(tmp_path / "m", "meshsmilenet", {1: RIGHT, 2: RIGHT}, seed=5)
    elsewhere = fake_run(tmp_path / "x", "deepmarkernet", {1: RIGHT, 2: RIGHT}, "wxyz", seed=6)
    two, three = f"{runs[0]},{runs[1]}", ",".join(map(str, runs))
    assert main([two, three]) == 2
    assert f"error: {three}: 3 repeats against 2 of {two}; give as many" in (
        capsys.readouterr().err
    )
    for stranger, why in ((other, "model deepmarkernet -> meshsmilenet"),
                          (elsewhere, "other folds or videos")):  # fmt: skip
        assert main([f"{runs[0]},{stranger}"]) == 2
        err = capsys.readouterr().err
        assert f"{stranger}: not a repeat of {runs[0]} ({why})" in err
        assert len(err.splitlines()) == 1


def test_repeats_differ_only_in_the_seed(tmp_path, capsys):
    """By their config.yaml: another seed or data folder is a repeat; another setting, the same
    seed (or run) twice, or no config.yaml is not."""
    runs = [
        fake_run(tmp_path / f"r{i}", "deepmarkernet", {1: RIGHT, 2: RIGHT}, seed=i)
        for i in range(3)
    ]
    cfg = load_config(runs[2] / "config.yaml")
    moved = replace(cfg, data=replace(cfg.data, root="elsewhere"))
    save_config(replace(moved, train=replace(cfg.train, lr=1e-4)), runs[2] / "config.yaml")
    assert main([f"{runs[0]},{runs[1]}"]) == 0
    assert "2 x 2 repeats" in capsys.readouterr().out
    refused = {
        f"{runs[0]},{runs[2]}": f"{runs[2]}: not a repeat of {runs[0]} (train.lr 0.0005 -> "
        "0.0001); repeats differ only in --seed",
        f"{runs[0]},{runs[1]},{runs[0]}": f"{runs[0]}: seed 0, as {runs[0]}; repeats are runs "
        "with other --seed values",
        f"{runs[0]},": "an empty folder name; join run folders with single commas",
    }
    for arg, why in refused.items():
        assert main([arg]) == 2
        err = capsys.readouterr().err
        assert why in err and len(err.splitlines()) == 1
    (runs[1] / "config.yaml").unlink()
    assert main([f"{runs[0]},{runs[1]}"]) == 2
    assert f"{runs[1]}: no config.yaml, so it cannot be checked as a repeat" in (
        capsys.readouterr().err
    )
    assert main([str(runs[1])]) == 0  # a single run needs none


def test_repeats_read_the_same_dmarker_table(tmp_path, capsys):
    """Repeats are compared by the D-Marker rows their folds learned from (test.json's
    dmarker_digest), not by how data.dmarkers names the file; results of earlier versions,
    without the record, by the file their configs name."""
    runs = [fake_run(tmp_path / f"r{i}", "deepmarkernet", {1: RIGHT}, seed=i) for i in range(2)]
    cfg = load_config(runs[1] / "config.yaml")
    save_config(replace(cfg, data=replace(cfg.data, dmarkers="B.npz")), runs[1] / "config.yaml")
    assert main([f"{runs[0]},{runs[1]}"]) == 2  # no digests: the named files differ
    assert "not a repeat" in capsys.readouterr().err
    for run, digest in zip(runs, ("aa", "aa"), strict=True):
        result = json.loads((run / "fold_01" / "test.json").read_text())
        atomic_write_json(run / "fold_01" / "test.json", {**result, "dmarker_digest": digest})
    assert main([f"{runs[0]},{runs[1]}"]) == 0  # the same rows, however the file was named
    assert "1 x 2 repeats" in capsys.readouterr().out
    result = json.loads((runs[1] / "fold_01" / "test.json").read_text())
    atomic_write_json(runs[1] / "fold_01" / "test.json", {**result, "dmarker_digest": "bb"})
    assert main([f"{runs[0]},{runs[1]}"]) == 2
    err = capsys.readouterr().err
    assert f"{runs[1]}: not a repeat of {runs[0]} (another D-Marker table)" in err


def test_baseline_runs_are_no_repeats(tmp_path, capsys):
    """The D-Marker baseline draws nothing at random: its runs with other seeds are one run
    counted twice, refused as repeats (they were taken as "1 x 2 repeats")."""
    runs = [fake_run(tmp_path / f"r{i}", "dmarker-logreg", {1: RIGHT}, seed=i) for i in range(2)]
    assert main([f"{runs[0]},{runs[1]}"]) == 2
    err = capsys.readouterr().err
    assert f"{runs[0]},{runs[1]}: dmarker-logreg runs cannot be repeats" in err
    assert main([str(runs[0]), str(runs[1])]) == 0  # two single runs side by side


def test_settings_that_differ_from_the_first_are_noted(tmp_path, capsys):
    """An ablation's model name is the full model's: the settings that differ are noted under the
    table (the model column cannot tell), the seed and data paths not, nor MeshSmileNet's absent
    D-Marker weight, whichever comes first; so are other landmark files. A config.yaml that
    cannot be read leaves its note out, not the table."""
    runs = [fake_run(tmp_path / f"r{i}", "deepmarkernet", {1: RIGHT}, seed=i) for i in range(2)]
    cfg = load_config(runs[1] / "config.yaml")
    save_config(replace(cfg, model=replace(cfg.model, attention="time")), runs[1] / "config.yaml")
    msn = fake_run(tmp_path / "msn", "meshsmilenet", {1: RIGHT})
    assert main([str(runs[0]), str(runs[1]), str(msn)]) == 0
    assert main([str(msn), str(runs[0])]) == 0
    notes = [r for r in capsys.readouterr().out.splitlines() if r.startswith("note")]
    diff = "model.attention 'alternate' -> 'time'"
    assert notes == [f"note: {runs[1]} differs from {runs[0]} in {diff}"]
    for run, digest in zip(runs, ("aa", "bb"), strict=True):
        result = json.loads((run / "fold_01" / "test.json").read_text())
        atomic_write_json(run / "fold_01" / "test.json", {**result, "landmark_digest": digest})
    (runs[1] / "config.yaml").write_text("extra_section: {}\n")
    assert main([str(runs[0]), str(runs[1])]) == 0
    notes = [r for r in capsys.readouterr().out.splitlines() if r.startswith("note")]
    assert notes == [
        f"note: {runs[1]} learned from other landmark files than {runs[0]} (another extraction "
        "or landmark set): its differences include theirs"
    ]


def test_repeats_learned_from_the_same_landmark_files(tmp_path, capsys):
    """Repeats are refused where their networks learned from other landmark arrays (test.json's
    landmark_digest: files extracted again, another landmark set), however data.landmarks
    named the folder; runs without the record (earlier versions) are not checked."""
    runs = [fake_run(tmp_path / f"r{i}", "meshsmilenet", {1: RIGHT}, seed=i) for i in range(2)]
    assert main([f"{runs[0]},{runs[1]}"]) == 0  # no records
    for run, digest in zip(runs, ("aa", "bb"), strict=True):
        result = json.loads((run / "fold_01" / "test.json").read_text())
        atomic_write_json(run / "fold_01" / "test.json", {**result, "landmark_digest": digest})
    assert main([f"{runs[0]},{runs[1]}"]) == 2
    err = capsys.readouterr().err
    assert f"{runs[1]}: not a repeat of {runs[0]} (other landmark files)" in err
    assert main([str(runs[0]), str(runs[1])]) == 0  # two configurations may differ in it


def test_runs_are_read_as_they_were_written(tmp_path, capsys):
    """A finished run's config.yaml is a record: a bound added to the config since (here
    data.test_stride <= data.window) does not make its repeats unreadable."""
    runs = [
        fake_run(tmp_path / f"r{i}", "deepmarkernet", {1: RIGHT, 2: RIGHT}, seed=i)
        for i in range(2)
    ]
    for run in runs:
        cfg = load_config(run / "config.yaml")
        wide = replace(cfg, data=replace(cfg.data, test_stride=cfg.data.window + 1))
        save_config(wide, run / "config.yaml")
    with pytest.raises(ValueError, match="data.test_stride"):
        load_config(runs[0] / "config.yaml")  # as a config to train with: refused
    assert main([f"{runs[0]},{runs[1]}"]) == 0
    assert "2 x 2 repeats" in capsys.readouterr().out


def test_one_more_right_call_in_every_fold_of_unequal_sizes_gets_no_t_test():
    """229 videos in 5 folds: 46, 46, 46, 45, 46. One more right call in each fold differs by
    1/46 or 1/45; the t-test on that near-zero spread would say "p < 0.001"."""
    sizes = [46, 46, 46, 45, 46]

    def run(extra: int) -> dict:
        folds = {
            k: {
                "accuracy": (30 + extra) / n,
                "auc": 0.9,
                "videos": {f"v{k}_{i}": {"label": i % 2} for i in range(n)},
            }
            for k, n in enumerate(sizes, 1)
        }
        return {"name": f"run{extra}", "repeats": [{"folds": folds}]}

    assert paired(run(1), run(0))["t_p"] == "n/a"
    assert paired(run(1), run(0))["accuracy"].startswith("+0.022 +- 0.000")
