"""dmarker.py, the CLI over data/dmarker_cache.py: failures listed at the end, --plot, one-line
errors, Ctrl-C, run as a script."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pytest
from dmarker_synth import H, W, smile_video, three_videos, write_video

import dmarker as cli
from data.dmarker_table import load_dmarker_table
from data.files import temp_prefix


@pytest.fixture
def dataset(tmp_path):
    return three_videos(tmp_path)


def test_cli_reports_failures_at_the_end(dataset, capsys):
    write_video(dataset, "published.mp4", smile_video(), sidecar=False)
    assert cli.main(["--landmarks", str(dataset), "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert "D-Markers of 3 videos" in out and "computed 3, reused 0" in out
    assert err.strip().splitlines()[0] == "failed (1):"
    assert "published.mp4" in err and "--frame-size" in err
    csv = dataset.parent / "labels.csv"
    assert cli.main(["--landmarks", str(dataset), "--labels", str(csv), "--quiet"]) == 2
    assert f"error: {csv}: no such file; --labels takes" in capsys.readouterr().err
    csv.write_text("video,label,subject\npublished.mp4,1,s1\n")
    assert cli.main(["--landmarks", str(dataset), "--labels", str(csv), "--quiet"]) == 2
    assert f"error: {csv}: no fps, width or height in it" in capsys.readouterr().err
    csv.write_text(f"video,label,subject,fps,width,height\npublished.mp4,1,s1,25,{W},{H}\n")
    assert cli.main(["--landmarks", str(dataset), "--labels", str(csv), "--quiet"]) == 0
    assert "computed 1, reused 3" in capsys.readouterr().out
    args = ["--landmarks", str(dataset), "--fps", "25", "--frame-size", f"{W}x{H}", "--quiet"]
    assert cli.main(args) == 0  # the same rate and size: reused
    assert "computed 0, reused 4" in capsys.readouterr().out


def test_cli_plot(dataset, capsys, monkeypatch):
    assert cli.main(["--landmarks", str(dataset), "--plot", "b", "--quiet"]) == 0
    png = dataset / "b.mp4.dmarkers.png"
    assert f"plot: {png}" in capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    write_video(dataset, "new.mp4", smile_video())
    assert cli.main(["--landmarks", str(dataset), "--plot", "bb.mp4", "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert f"--plot: 'bb.mp4' names no single landmark file in {dataset}; closest: b.mp4" in err
    assert "rebuild" not in err and err.count("\n") == 1
    for typed in ("NE", "nwe"):  # a part of the name, a typo
        assert cli.main(["--landmarks", str(dataset), "--plot", typed, "--quiet"]) == 2
        assert "; closest: new.mp4" in capsys.readouterr().err
    assert out == "" and "new.mp4" not in load_dmarker_table(dataset / "dmarkers.npz")  # not built
    assert cli.main(["--landmarks", str(dataset), "--plot", "zz", "--quiet"]) == 2
    assert "'zz' names no single landmark file" in (err := capsys.readouterr().err)
    assert "; it holds a.mp4, b.mp4, c.avi, ..." in err  # nothing close: what there is
    latin = os.fsdecode(b"caf\xe9.mp4")  # a name that is not valid UTF-8
    write_video(dataset, latin, smile_video())
    printed = io.BytesIO()  # printed as its bytes: not text pytest's capture could decode
    with monkeypatch.context() as m:
        m.setattr(sys, "stdout", io.TextIOWrapper(printed, "utf-8", errors="strict"))
        assert cli.main(["--landmarks", str(dataset), "--plot", latin, "--quiet"]) == 0
        sys.stdout.flush()
        assert b"caf\xe9.mp4.dmarkers.png" in printed.getvalue()
    assert (dataset / f"{latin}.dmarkers.png").stat().st_size > 20_000


def test_cli_errors(tmp_path, dataset, capsys):
    assert cli.main(["--landmarks", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and len(err.splitlines()) == 1
    npy = next(dataset.glob("*.npy"))
    assert cli.main(["--landmarks", str(npy)]) == 2
    assert f"{npy}: not a folder; give the folder that holds the" in capsys.readouterr().err
    root = tmp_path / "root"  # a dataset root given, not its npy/
    (root / "npy").parent.mkdir()
    (root / "npy").symlink_to(dataset)
    assert cli.main(["--landmarks", str(root)]) == 2
    assert f"a dataset root? give its landmark folder: --landmarks {root / 'npy'}" in (
        capsys.readouterr().err
    )
    os.mkfifo(tmp_path / "pipe")
    assert cli.main(["--landmarks", str(tmp_path / "pipe")]) == 2
    assert f"{tmp_path / 'pipe'}: not a folder; give the folder" in capsys.readouterr().err
    assert cli.main(["--landmarks", str(dataset), "--output", str(tmp_path)]) == 2
    assert f"a folder; give the table's file, e.g. {tmp_path / 'dmarkers.npz'}" in (
        capsys.readouterr().err
    )
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "t.npz"
    assert cli.main(["--landmarks", str(dataset), "--output", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert f"--output's folder {out.parent}: is a file; it must be a folder" in err
    for other in (npy, dataset / "notes.csv", tmp_path / "other.npz"):  # never written over
        if other.suffix == ".csv":
            other.write_text("video,label,subject\n")
        elif other.suffix == ".npz":
            np.savez(other, weights=np.zeros(3))
        before = other.read_bytes()
        assert cli.main(["--landmarks", str(dataset), "--output", str(other), "--quiet"]) == 2
        why = "exists and is not a D-Marker" if other.suffix == ".npz" else "the table is an .npz"
        assert f"{other}: {why}" in capsys.readouterr().err
        assert other.read_bytes() == before
    typo = dataset / "table.npy"  # an .npz written under a .npy name would pass for landmarks
    assert cli.main(["--landmarks", str(dataset), "--output", str(typo), "--quiet"]) == 2
    assert "give --output a name ending in .npz" in capsys.readouterr().err
    assert not typo.exists()
    with pytest.raises(SystemExit):
        cli.main(["--landmarks", str(tmp_path), "--frame-size", "640by480"])
    for rate in ("-3", "0.001"):
        with pytest.raises(SystemExit):
            cli.main(["--landmarks", str(tmp_path), "--fps", rate])
        assert "expected a frame rate of at least 0.01" in capsys.readouterr().err


def test_ctrl_c_is_one_line(dataset, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "plot_video", interrupted)  # while drawing: the table is written
    assert cli.main(["--landmarks", str(dataset), "--plot", "a", "--quiet"]) == 130
    table = dataset / "dmarkers.npz"
    assert f"interrupted: no plot; the table is written ({table})" in capsys.readouterr().err
    assert table.is_file()
    monkeypatch.setattr(cli, "build_dmarker_table", interrupted)
    assert cli.main(["--landmarks", str(dataset), "--quiet"]) == 130
    assert (
        capsys.readouterr().err.strip() == "interrupted: nothing written (a previous table is kept)"
    )


def test_cli_as_a_script(dataset, repo_root):
    run = subprocess.run(
        [sys.executable, "dmarker.py", "--landmarks", str(dataset), "--quiet"],
        cwd=repo_root, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "D-Markers of 3 videos" in run.stdout


def test_a_folder_still_being_extracted_is_noted(dataset, capsys):
    """dmarker.py run while extract_landmarks.py writes the folder made a table of the files
    finished so far and said nothing; its own leftover temp file is no such sign."""
    table = dataset / "dmarkers.npz"
    (dataset / f"{temp_prefix(table)}k2j3h4g5.tmp").write_bytes(b"")  # a killed dmarker.py's
    assert cli.main(["--landmarks", str(dataset), "--quiet"]) == 0
    assert "note:" not in capsys.readouterr().out
    (dataset / f"{temp_prefix(dataset / 'late.mp4.npy')}a1b2c3d4.tmp").write_bytes(b"\x93NUMPY")
    assert cli.main(["--landmarks", str(dataset), "--quiet"]) == 0
    assert (
        f"note: {dataset} holds 1 temp file(s) of landmark files being written"
        in capsys.readouterr().out
    )
