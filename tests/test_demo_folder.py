"""Where ``python -m data.demo`` writes: bad arguments, a folder of other files, a file, and a
rerun into a set that runs were trained on (replaced only as it was; no table made by hand lost)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from landmark_synth import tree_bytes

from data import demo
from data.claim import claimed, held
from data.dataset_fixes import no_landmarks
from data.demo import generate
from data.dmarker_cache import build_dmarker_table
from data.files import temp_prefix

REPO = Path(__file__).resolve().parents[1]
SEED = 7


def test_a_set_with_runs_is_replaced_only_as_it_was(tmp_path):
    """Rerun into a demo folder, the set is replaced exactly; where runs/ holds runs, not by
    other settings, and never deleting or replacing a table made by hand beside it."""
    a = tmp_path / "a"
    generate(a, subjects=3, seed=SEED, folds=3, dmarkers=False)
    first = tree_bytes(a)
    (a / "runs" / "demo-deepmarkernet-seed0").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"a/runs holds runs trained on its demo set, which other "
                       r"settings \(seed\) would replace; choose another --out"):  # fmt: skip
        generate(a, subjects=3, seed=SEED + 1, folds=3, dmarkers=False)
    assert tree_bytes(a) == first  # refused before anything was removed
    generate(a, subjects=3, seed=SEED, folds=3, dmarkers=False)  # the same set
    assert tree_bytes(a) == first and (a / "runs" / "demo-deepmarkernet-seed0").is_dir()
    for table in ("dmarkers.npz", "npy/dmarkers.npz"):  # made by hand, where datasets read one
        build_dmarker_table(a / "npy", output=a / table)
        for dmarkers in (False, True):  # deleted, or replaced by the generator's: the runs' table
            with pytest.raises(ValueError, match=rf"may have read .*a/{table}, which the gen"):
                generate(a, subjects=3, seed=SEED, folds=3, dmarkers=dmarkers)
        assert (a / table).is_file()
        (a / table).unlink()
    t = tmp_path / "t"
    generate(t, subjects=3, seed=SEED, folds=3)  # demo.json records its table:
    (t / "runs" / "r").mkdir(parents=True)
    (t / "dmarkers.npz").unlink()  # a lost table is made again, not refused
    generate(t, subjects=3, seed=SEED, folds=3)
    assert (t / "dmarkers.npz").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--subjects", "1"], "--subjects 1"),
        (["--folds", "1"], "--folds 1"),
        (["--subjects", "3", "--folds", "2"], "--folds 2 needs at least 4 subjects"),
    ],
)
def test_cli_bad_arguments(tmp_path, args, message):
    res = subprocess.run(
        [sys.executable, "-m", "data.demo", "--out", str(tmp_path / "x"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 1 and message in res.stderr and "Traceback" not in res.stderr


def test_cli_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    res = subprocess.run(
        [sys.executable, "-m", "data.demo", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 1 and "demo.json" in res.stderr and "Traceback" not in res.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_cli_refuses_a_file_as_out(tmp_path, capsys):
    """--out naming a file, or a path below one: one line saying it must be a folder."""
    afile = tmp_path / "afile"
    afile.write_text("mine")
    for out in (afile, afile / "sub"):
        assert demo.main(["--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert f"--out {out}: " in err and "it must be a folder" in err and err.count("\n") == 1
    assert afile.read_text() == "mine"


def test_an_interrupted_regeneration_is_rerun_and_its_litter_removed(tmp_path, monkeypatch, capsys):
    """A set replaced in part when the generator was stopped: its rerun is not refused for
    the runs/ beside it (demo.json, the record of the runs' settings, was kept as
    demo.pending.json) and removes the temp files a kill left; other settings stay refused."""
    a = tmp_path / "a"
    generate(a, subjects=3, seed=SEED, folds=3, dmarkers=False)
    first = tree_bytes(a)
    (a / "runs" / "demo-deepmarkernet-seed0").mkdir(parents=True)

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(demo, "_write_videos", stopped)
        assert demo.main(["--out", str(a), "--subjects", "3", "--seed", str(SEED), "--folds", "3",
                          "--no-dmarkers"]) == 130  # fmt: skip
    assert "interrupted: " in capsys.readouterr().err
    assert not (a / "demo.json").exists() and (a / demo.PENDING).is_file()
    hint = str(no_landmarks("demo", a, a / "npy"))  # what training says meanwhile
    assert hint.endswith(
        f"run python -m data.demo --out {a.absolute()} --seed {SEED} --subjects 3 --folds 3"
    )
    litter = a / f"{temp_prefix(a / 'labels.csv')}k2j3h4g5.tmp"  # a kill's, mid-write
    litter.write_text("video,la")
    with pytest.raises(ValueError, match=r"other settings \(seed\) would replace"):
        generate(a, subjects=3, seed=SEED + 1, folds=3, dmarkers=False)
    generate(a, subjects=3, seed=SEED, folds=3, dmarkers=False)
    assert tree_bytes(a) == first and (a / "runs" / "demo-deepmarkernet-seed0").is_dir()
    assert not litter.exists() and not (a / demo.PENDING).exists()


def test_a_set_being_written_is_not_written_by_a_second_generator(tmp_path):
    """Two generators at once in one folder left one seed's labels beside the other's videos."""
    a = tmp_path / "a"
    with claimed(a / demo.LOCK, f"the demo set {a}"):  # this process stands for the first
        assert "is being written" in str(no_landmarks("demo", a, a))
        with pytest.raises(ValueError, match=rf"the demo set {a} is being written by pid \d+"):
            generate(a, subjects=3, seed=SEED, folds=3, dmarkers=False)
    assert [p.name for p in a.iterdir()] == [demo.LOCK]  # the first one's, nothing written
    generate(a, subjects=3, seed=SEED, folds=3, dmarkers=False)
    assert (a / "demo.json").is_file() and not held(a / demo.LOCK)


def test_sigterm_stops_the_generator_as_ctrl_c_does(tmp_path):
    """A cluster's scancel or preemption sends SIGTERM: the command says it was stopped and gives
    its folder's lock back (it died at once, holding it, before)."""
    out = tmp_path / "d"
    cmd = [sys.executable, "-m", "data.demo", "--out", str(out), "--subjects", "40"]
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 120
    while not list(out.glob("npy/*.npy")) and time.time() < deadline:  # generating
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted: " in stderr and "Traceback" not in stderr
    assert not held(out / demo.LOCK) and not (out / "demo.json").exists()


def test_the_demo_hint_is_a_command_a_shell_runs(tmp_path):
    """A folder name with a space stays one argument of the command training names."""
    import shlex

    from data.dataset_fixes import demo_command

    root = tmp_path / "my demo"
    assert shlex.split(demo_command(root))[3:5] == ["--out", str(root)]
