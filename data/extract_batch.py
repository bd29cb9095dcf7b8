"""Batch landmark extraction: jobs (:mod:`data.extract_jobs`) -> worker processes, resume, summary.

Output names follow the published landmark files: ``<video file name>.npy`` (UvA-NEMO, BBC, any
video), ``<session id>.npy`` (MMI), ``<clip folder>.npy`` (SPOS and other frame folders), each with
its sidecar ``.json`` (see data.io). An output is complete, and skipped on a rerun, when its sidecar
exists, names the same backend and stride (and frame rate, for a frame folder) and the same
max-frames or a whole video, records the source's current size and mtime (and each frame's name,
size and mtime, for a frame folder), and the array loads with the recorded shape (its own mtime
does not matter: a source dated ahead by a skewed clock is not redone on every run). A
``--max-frames`` run also skips (keeps) a whole-video output, even a stale one: one
``--max-frames`` did not cut short or a published file without sidecar; ``--overwrite`` redoes
every job.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data.contact_sheet import contact_sheet
from data.extract_jobs import Job
from data.extraction import extract_video, make_backend
from data.files import check_folder, check_writable, temp_prefix
from data.io import META_KEYS, cut_short, load_meta, meta_path, save_landmarks
from data.video import natural_key, open_source


@dataclass(frozen=True)
class Settings:
    """How to extract. ``plot``: None (no sheet), a folder, or a ``.png`` file (one job)."""

    backend: str = "mediapipe"
    stride: int = 1
    max_frames: int | None = None
    frame_fps: float = 25.0
    overwrite: bool = False
    plot: Path | None = None


@dataclass
class JobResult:
    name: str
    source: str
    status: str  # "done" | "skipped" | "failed"
    reason: str = ""
    frames: int = 0
    face_frames: int | None = 0  # None: unknown (a published file without sidecar)
    timings: dict = field(default_factory=dict)
    sheet_error: str = ""  # why the contact sheet of a done or skipped job was not drawn

    @property
    def ok(self) -> bool:
        """Everything asked of this job was written (landmarks, and any contact sheet)."""
        return self.status != "failed" and not self.sheet_error


# ---------------------------------------------------------------- one job


#: Reason of a job skipped because ``--max-frames`` would replace a whole-video output.
WHOLE_KEPT = "whole-video output kept"


def skip_reason(job: Job, settings: Settings) -> str | None:
    """Why ``job`` is not extracted: "" when its output is complete, :data:`WHOLE_KEPT` when it is
    a whole-video extraction that a ``--max-frames`` run must not replace (even where its video
    changed since: a copied dataset's videos all look changed); None when the job runs (always
    with ``--overwrite``)."""
    if settings.overwrite:
        return None
    meta = _finished(job, settings)
    if meta is not None and _same_settings(meta, job, settings):
        return ""
    return WHOLE_KEPT if settings.max_frames is not None and _whole_video(job) else None


def _whole_video(job: Job) -> bool:
    """Whether ``job.output`` holds a whole video: one ``--max-frames`` did not cut short (a
    sidecar that says so in full, :func:`data.io.cut_short`) or a published file (an array
    without sidecar)."""
    try:
        meta = load_meta(job.output)
        if meta is None:  # published, unless an extraction was killed before its sidecar's rename
            left = job.output.parent.glob(f"{temp_prefix(meta_path(job.output))}*.tmp")
            return job.output.exists() and next(left, None) is None
        whole = all(k in meta for k in META_KEYS) and not cut_short(meta)
        return whole and _holds(job.output, meta)  # not an array of a run killed between renames
    except (OSError, ValueError):  # an unreadable sidecar or array: nothing worth keeping
        return False


def _holds(output: Path, meta: dict) -> bool:
    """Whether ``output`` is the float32 array its sidecar ``meta`` describes."""
    arr = np.load(output, mmap_mode="r", allow_pickle=False)
    return arr.dtype == np.float32 and arr.shape == (meta["n_frames"], meta["n_landmarks"], 3)


def _same_settings(meta: dict, job: Job, settings: Settings) -> bool:
    """Whether ``meta`` records the backend, stride and frame rate asked for, and as many frames:
    a whole-video output holds what any ``--max-frames`` asks."""
    if (meta["backend"], meta["stride"]) != (settings.backend, settings.stride):
        return False
    if meta["max_frames"] != settings.max_frames and cut_short(meta):
        return False
    return not job.source.is_dir() or meta["source_fps"] == settings.frame_fps


def _finished(job: Job, settings: Settings) -> dict | None:
    """The sidecar of ``job.output`` when the output is a finished extraction of the source as it
    is now, whatever its settings (a rotated video's frames upright: outputs of versions that read
    them sideways are redone); else None."""
    try:
        meta = load_meta(job.output)
        if meta is None or any(k not in meta for k in META_KEYS):
            return None
        source = open_source(job.source, settings.frame_fps)
        if meta.get("rotation", 0) != source.rotation:
            return None
        now = source.fingerprint()
        if not _same_source(meta, now):  # its exact size and mtime: a clock's skew is no change
            return None
        return meta if _holds(job.output, meta) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _same_source(meta: dict, now: dict) -> bool:
    """Whether the sidecar ``meta`` records the source's fingerprint ``now`` (mtime to 1 us). A
    frame folder's sidecar of an earlier version, without ``source_frames``, is judged on size
    and mtime as it was then (not every SPOS clip redone)."""
    mtime = math.isclose(meta["source_mtime"], now["source_mtime"], rel_tol=0, abs_tol=1e-6)
    fields = [k for k in now if k != "source_mtime" and (k in meta or k != "source_frames")]
    return mtime and all(meta.get(k) == now[k] for k in fields)


def plot_path(job: Job, plot: Path | None) -> Path | None:
    """Where the contact sheet of ``job`` goes: ``plot`` itself if it ends in .png, else
    ``<plot>/<name>.png``."""
    if plot is None:
        return None
    return plot if plot.suffix.lower() == ".png" else plot / f"{job.name}.png"


def _clean_temp_files(*targets: Path) -> None:
    """Remove temp files a killed run left for these files (data.files.temp_prefix)."""
    for target in targets:
        for tmp in target.parent.glob(f"{temp_prefix(target)}*.tmp"):
            tmp.unlink(missing_ok=True)


def run_job(job: Job, settings: Settings, backend) -> JobResult:
    """Extract one job (or skip it, see :func:`skip_reason`); never raises for a bad source."""
    result = JobResult(job.name, str(job.source), "failed", reason=job.error)
    if job.error:
        return result
    t0 = time.perf_counter()
    png = plot_path(job, settings.plot)
    try:
        reason = skip_reason(job, settings)
        if reason is not None:
            _skip(job, settings, result, reason, png)
            return result
        _clean_temp_files(job.output, meta_path(job.output))
        check_writable(job.output)  # before decoding the video, not after
        source = open_source(job.source, settings.frame_fps)
        ext = extract_video(
            source, backend, name=job.name, stride=settings.stride, max_frames=settings.max_frames
        )  # a failure here leaves a previous output as it was
        save_landmarks(job.output, ext.landmarks, ext.meta)
        result.status = "done"
        result.frames, result.face_frames = ext.meta["n_frames"], sum(ext.meta["face_found"])
        if png is not None:
            _plot(job, settings, ext.landmarks, ext.meta, png, result)
        result.timings = {**ext.timings, "total_s": time.perf_counter() - t0}
    except Exception as e:  # the batch goes on; the reason is reported
        result.status, result.reason = "failed", _reason(e)
    return result


def _reason(e: Exception) -> str:
    return str(e) if isinstance(e, (OSError, ValueError)) else f"{type(e).__name__}: {e}"


def _skip(job: Job, settings: Settings, result: JobResult, reason: str, png: Path | None) -> None:
    """Mark ``result`` skipped, with the saved output's counts; draw its missing contact sheet."""
    result.status, result.reason = "skipped", reason
    meta = load_meta(job.output)
    if meta is None:  # a published file kept by a quick run: no face counts, no sheet to draw
        result.frames = len(np.load(job.output, mmap_mode="r", allow_pickle=False))
        result.face_frames = None
        if png is not None:
            result.reason += "; no contact sheet: no sidecar says which rows found a face"
        return
    result.frames, result.face_frames = meta["n_frames"], sum(meta["face_found"])
    if png is not None and not png.is_file():
        _plot(job, settings, np.load(job.output, allow_pickle=False), meta, png, result)


def _plot(
    job: Job, settings: Settings, landmarks: np.ndarray, meta: dict, png: Path, result: JobResult
) -> None:
    """Draw the contact sheet of saved landmarks; a failure goes to ``result.sheet_error`` (the
    landmarks stay done)."""
    try:
        _clean_temp_files(png)
        _draw(job, settings, landmarks, meta, png)
    except Exception as e:
        result.sheet_error = f"contact sheet not drawn: {_reason(e)}"


def _draw(job: Job, settings: Settings, landmarks: np.ndarray, meta: dict, png: Path) -> None:
    source = open_source(job.source, settings.frame_fps)
    found = np.asarray(meta["face_found"])
    title = (
        f"{job.name}  {meta['backend']} {meta['n_landmarks']} points  "
        f"face in {int(found.sum())}/{len(found)} rows  stride {meta['stride']}"
    )
    if "variable_frame_rate" in meta:  # rows are resampled in time: tile r shows frame r * stride
        title += "  variable frame rate: overlays approximate"
    contact_sheet(source, landmarks, found, png, stride=meta["stride"], title=title)


# ---------------------------------------------------------------- workers

_WORKER_BACKEND = None


def _exit_with_parent(parent: int) -> None:
    """Leave when the parent is gone (kill -9 of the run): orphans would wait on it forever."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _init_worker(backend_name: str, parent: int) -> None:
    import cv2

    global _WORKER_BACKEND
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    cv2.setNumThreads(1)  # one process per core already
    _WORKER_BACKEND = make_backend(backend_name)


def _worker_job(job: Job, settings: Settings) -> JobResult:
    return run_job(job, settings, _WORKER_BACKEND)


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def run_batch(
    jobs: list[Job], settings: Settings, *, workers: int | None = None, progress: bool = True
) -> list[JobResult]:
    """Run every job with ``workers`` processes (default: all cores; 1 = in this process), with a
    tqdm bar over videos. Returns one result per job, in natural order of names."""
    workers = max(1, min(workers or default_workers(), len(jobs)))
    ordered = sorted(jobs, key=_source_bytes, reverse=True)  # longest first balances workers
    bar = tqdm(total=len(jobs), unit="video", desc="extract", disable=not progress)
    results = []

    def record(r: JobResult) -> None:
        results.append(r)
        bar.update(1)
        bar.set_postfix(failed=sum(x.status == "failed" for x in results), refresh=False)

    try:
        if workers == 1:
            backend = make_backend(settings.backend)
            for job in ordered:
                record(run_job(job, settings, backend))
        else:
            _run_pool(ordered, settings, workers, record)
    finally:
        bar.close()
    return sorted(results, key=lambda r: natural_key(r.name))


def _run_pool(jobs: list[Job], settings: Settings, workers: int, record, work=None) -> None:
    """Run ``jobs`` in a process pool. A worker that dies (a crash in the backend) breaks the pool
    and loses every job still queued; those are retried each in a process of its own, ``workers``
    at a time, so only the job that crashes again is reported failed and the rest of the batch
    still finishes on every worker."""
    work = work or _worker_job
    lost = _pool_pass(jobs, settings, workers, record, work)
    lock = threading.Lock()

    def locked(result: JobResult) -> None:
        with lock:
            record(result)

    def alone(job: Job) -> None:
        if _pool_pass([job], settings, 1, locked, work):
            reason = "worker process died (crash in the backend?); rerun to retry"
            locked(JobResult(job.name, str(job.source), "failed", reason))

    with ThreadPoolExecutor(workers) as threads:
        list(threads.map(alone, lost))


def _pool_pass(jobs: list[Job], settings: Settings, workers: int, record, work) -> list[Job]:
    """One pool over ``jobs``; returns the jobs lost to a dead worker."""
    ctx = multiprocessing.get_context("spawn")  # no fork of a parent with threads
    init_args = (settings.backend, os.getpid())
    lost = []
    with ProcessPoolExecutor(workers, ctx, _init_worker, init_args) as pool:
        futures = {pool.submit(work, job, settings): job for job in jobs}
        try:
            for fut in as_completed(futures):
                try:
                    record(fut.result())
                except BrokenProcessPool:
                    lost.append(futures[fut])
        except KeyboardInterrupt:  # stop the running videos too (their writes are atomic)
            for proc in list(pool._processes.values()):  # no public API stops a running task
                proc.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return lost


def _source_bytes(job: Job) -> int:
    try:
        if job.source.is_dir():
            return sum(p.stat().st_size for p in job.source.iterdir())
        return job.source.stat().st_size
    except OSError:
        return 0


# ---------------------------------------------------------------- summary


def format_summary(results: list[JobResult], output: Path, max_rows: int = 50) -> str:
    """Counts per status, one row per video (past ``max_rows``, only those that failed or lack
    their contact sheet), then a note when whole-video outputs were kept from a ``--max-frames``
    run."""
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    no_sheet = sum(bool(r.sheet_error) for r in results)
    lines = [
        f"summary: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed "
        f"of {len(results)} -> {output}"
        + (f"; {no_sheet} contact sheet(s) not drawn" if no_sheet else "")
    ]
    rows = results if len(results) <= max_rows else [r for r in results if not r.ok]
    if rows:
        width = max(len("video"), *(len(r.name) for r in rows))
        lines.append(f"  {'video':<{width}}  {'status':<7}  {'frames':>6}  {'face':>5}  reason")
        for r in rows:
            face = (
                f"{100 * r.face_frames / r.frames:.0f}%"
                if r.frames and r.face_frames is not None
                else "-"
            )
            frames = r.frames or "-"
            reason = "; ".join(x for x in (r.reason, r.sheet_error) if x)
            lines.append(
                f"  {r.name:<{width}}  {r.status:<7}  {frames:>6}  {face:>5}  {reason}".rstrip()
            )
    kept = sum(r.reason == WHOLE_KEPT for r in results)
    if kept:
        lines.append(
            f"note: {kept} whole-video output(s) kept: a --max-frames run does not replace them "
            "(--overwrite does; --output DIR writes the quick run elsewhere)"
        )
    return "\n".join(lines)


def with_plot_default(settings: Settings, plot: str | None, output: Path, n_jobs: int) -> Settings:
    """Resolve ``--plot``: "" -> next to the outputs; a .png path needs a single job, any other
    path must be a folder."""
    if plot is None:
        return settings
    target = output if plot == "" else Path(plot)
    if target.suffix.lower() == ".png" and n_jobs > 1:
        raise ValueError(
            f"--plot {plot}: a single .png file needs a single video ({n_jobs} found); "
            "give a folder instead"
        )
    if target.suffix.lower() != ".png":
        check_folder(target, "--plot")
    return replace(settings, plot=target)
