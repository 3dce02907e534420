"""`run_preprocessing(cfg)`: discover videos, skip finished ones, process the rest in a pool."""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from tqdm.contrib.logging import logging_redirect_tqdm

from dfd import __version__
from dfd.preprocess.errors import PreprocessError
from dfd.preprocess.extract import OutputDirs, VideoResult, process_video
from dfd.preprocess.faces import build_face_detector
from dfd.preprocess.inputs import VideoJob, discover_videos
from dfd.preprocess.manifest import FORMAT, MANIFEST_NAME, load_manifest, summarize, write_manifest
from dfd.preprocess.pipeline import FacePipeline, FaceSettings, detector_config
from dfd.runtime.progress import progress
from dfd.runtime.workers import one_thread_per_worker

log = logging.getLogger(__name__)
ON_ERROR = ("raise", "skip")


def _as_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def _resolve(path: str) -> Path:
    return Path(path).expanduser().resolve()


def _output_settings(cfg: DictConfig, settings: FaceSettings) -> dict[str, Any]:
    """The settings that decide the crops, as recorded in the manifest."""
    detector = detector_config(cfg.faces)
    detector.pop("num_threads", None)  # speed only
    fields = asdict(settings)
    for key in ("image_extensions", "video_extensions"):
        fields.pop(key)
    return {**fields, "detector": detector}


# One pipeline per worker process, built once by the pool initializer: building it per video
# would reload the detector's models each time, and detectors cannot be pickled into the pool.
_worker_state: dict[str, Any] = {}


def _init_worker(
    detector_cfg: dict, settings: FaceSettings, on_error: str, dirs: OutputDirs
) -> None:
    one_thread_per_worker()  # the pool already uses the cores; more threads would oversubscribe
    pipeline = FacePipeline(build_face_detector(detector_cfg), settings)
    _worker_state.update(pipeline=pipeline, on_error=on_error, dirs=dirs)


def _work(job: VideoJob) -> VideoResult:
    state = _worker_state
    return process_video(job, state["pipeline"], state["on_error"], state["dirs"])


def _run_jobs(
    jobs: list[VideoJob],
    pipeline: FacePipeline,
    detector_cfg: dict,
    on_error: str,
    dirs: OutputDirs,
    num_workers: int,
) -> Iterator[VideoResult]:
    """Results as videos finish: in this process (``num_workers=0``) or in a process pool.

    Jobs are fed to the pool a few at a time, so a consumer that stops early (``on_error=raise``)
    leaves at most the videos in flight running.
    """
    if num_workers == 0:
        for job in jobs:
            yield process_video(job, pipeline, on_error, dirs)
        return
    # spawn: fresh workers, no copied locks or threads of the parent (and the macOS default)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        num_workers,
        context,
        initializer=_init_worker,
        initargs=(detector_cfg, pipeline.settings, on_error, dirs),
    ) as pool:
        pending: set[Future] = set()
        queue = iter(jobs)
        try:
            while True:
                for job in queue:
                    pending.add(pool.submit(_work, job))
                    if len(pending) >= 2 * num_workers:
                        break
                if not pending:
                    return
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()


def _previous_entries(
    manifest: dict | None, settings: dict[str, Any], overwrite: bool, path: Path
) -> dict[str, dict]:
    if manifest is None:
        return {}
    done = [k for k, v in manifest["videos"].items() if v["status"] == "done"]
    if manifest.get("settings") != settings and done and not overwrite:
        old = manifest.get("settings", {})
        changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        raise ValueError(
            f"{path} lists {len(done)} videos made with other settings (changed: {changed}); "
            "pass overwrite=true to redo them all, or write to another dataset or output_dir"
        )
    return dict(manifest["videos"])


def _log_sources(jobs: list[VideoJob]) -> None:
    counts = Counter(job.source for job in jobs)
    for source, n in sorted(counts.items()):
        # the frame readers label a source real iff its name contains "real"
        label = "real (0)" if "real" in source.lower() else "fake (1)"
        log.info("  source %-24s %6d videos -> label %s", source, n, label)


def _check_paths(cfg: DictConfig) -> tuple[Path, str, OutputDirs]:
    """Input folder, dataset name and output folders, each checked with a message naming its key."""
    input_dir, output_dir = _resolve(cfg.input_dir), _resolve(cfg.output_dir)
    if not input_dir.is_dir():
        raise FileNotFoundError(f"input_dir={cfg.input_dir} is not an existing folder")
    dataset = str(cfg.dataset_name)
    if not dataset or dataset in (".", "..") or "/" in dataset or "\\" in dataset:
        raise ValueError(
            f"dataset={dataset!r} (dataset_name) must be a plain folder name, e.g. ff or cdf_v2"
        )
    if output_dir == input_dir or input_dir in output_dir.parents:
        raise ValueError(
            f"output_dir={output_dir} lies inside input_dir={input_dir}: a rerun would read the "
            "crops back as image folders; choose an output_dir outside it"
        )
    dirs = OutputDirs(
        frames=output_dir / dataset,
        landmarks=_resolve(cfg.landmarks_dir),
        work=_resolve(cfg.work_dir),
    )
    return input_dir, dataset, dirs


def _make_output_dirs(dirs: OutputDirs) -> None:
    for folder in (dirs.frames, dirs.landmarks, dirs.work):
        folder.mkdir(parents=True, exist_ok=True)
    if len({folder.stat().st_dev for folder in (dirs.frames, dirs.landmarks, dirs.work)}) > 1:
        # finished videos are renamed out of work_dir: a rename cannot cross file systems
        raise ValueError(
            f"work_dir={dirs.work}, landmarks_dir and output_dir must be on one file system "
            "(the defaults put them all under output_dir)"
        )


def _split_finished(
    jobs: list[VideoJob], dirs: OutputDirs, entries: dict[str, dict], overwrite: bool
) -> tuple[list[VideoJob], int]:
    """Jobs still to do, and how many are finished (their crop folder exists)."""
    todo, finished = [], 0
    for job in jobs:
        frames_dir, _ = dirs.final(job)
        if overwrite or not frames_dir.is_dir():
            todo.append(job)
            continue
        finished += 1
        if entries.get(job.video_id, {}).get("status") != "done":
            # finished by a run whose manifest was lost (e.g. killed): rebuild what the disk shows
            entries[job.video_id] = {
                "status": "done",
                "input": job.path,
                "frames_written": len(list(frames_dir.glob("*.png"))),
                "note": "found finished on disk; its other counts were not recorded",
            }
    return todo, finished


def run_preprocessing(cfg: DictConfig) -> dict[str, Any]:
    """Preprocess every video under ``cfg.input_dir`` into aligned face crops; return the manifest.

    Steps: check the config, build the detector (a missing model fails here, before any
    video), discover videos, skip those whose crop folder exists (unless ``overwrite``),
    process the rest with ``num_workers`` processes, and write
    ``<output_dir>/<dataset>/manifest.json`` -- also when stopped by an error or Ctrl-C.
    Under ``on_error=raise`` the first bad video raises `PreprocessError` naming it.
    """
    if cfg.on_error not in ON_ERROR:
        raise ValueError(f"on_error={cfg.on_error!r} must be one of {ON_ERROR}")
    settings = FaceSettings.from_config(cfg.faces)
    input_dir, dataset, dirs = _check_paths(cfg)
    num_workers = int(cfg.num_workers)
    if num_workers < 0:
        raise ValueError(f"num_workers={num_workers} must be >= 0 (0 = no worker processes)")
    detector_cfg = detector_config(cfg.faces)
    pipeline = FacePipeline(build_face_detector(detector_cfg), settings)

    jobs = discover_videos(
        input_dir,
        settings.video_extensions,
        settings.image_extensions,
        int(cfg.source_part),
        OmegaConf.to_container(cfg.source_rename) if cfg.source_rename is not None else None,
        _as_list(cfg.include),
        str(cfg.video_name),
    )
    if not jobs:
        raise FileNotFoundError(
            f"no videos ({', '.join(settings.video_extensions)}) or image folders under {input_dir}"
        )
    log.info("%d videos under %s -> %s", len(jobs), input_dir, dirs.frames)
    _log_sources(jobs)
    _make_output_dirs(dirs)
    manifest_path = dirs.frames / MANIFEST_NAME
    output_settings = _output_settings(cfg, settings)
    entries = _previous_entries(
        load_manifest(manifest_path), output_settings, cfg.overwrite, manifest_path
    )
    todo, finished = _split_finished(jobs, dirs, entries, cfg.overwrite)
    if finished:
        log.info("%d videos already finished: skipped (overwrite=true redoes them)", finished)

    last_run = {
        "input_dir": str(input_dir),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "processed": 0,
        "failed": 0,
        "previously_done": finished,
    }
    clock = time.perf_counter()
    first_error: str | None = None
    try:
        with logging_redirect_tqdm(), progress(total=len(todo), unit="video", desc=dataset) as bar:
            results = _run_jobs(todo, pipeline, detector_cfg, cfg.on_error, dirs, num_workers)
            for result in results:
                entry = asdict(result)
                entry["input"] = str(input_dir / entry["input"])
                entries[entry.pop("video_id")] = entry
                last_run["processed" if result.status == "done" else "failed"] += 1
                bar.update()
                bar.set_postfix(done=last_run["processed"], failed=last_run["failed"])
                if result.status == "failed":
                    if cfg.on_error == "raise":
                        first_error = result.message
                        results.close()  # stops the pool, cancelling videos not yet started
                        break
                    log.warning("skipped %s", (result.message or "").splitlines()[0])
    finally:
        last_run["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        last_run["seconds"] = round(time.perf_counter() - clock, 2)
        manifest = {
            "format": FORMAT,
            "dfd": __version__,
            "dataset": dataset,
            "output_dir": str(dirs.frames),
            "landmarks_dir": str(dirs.landmarks),
            "settings": output_settings,
            "summary": summarize(entries),
            "last_run": last_run,
            "videos": dict(sorted(entries.items())),
        }
        write_manifest(manifest_path, manifest)
        _remove_empty_dirs(dirs.work)
    if first_error is not None:
        raise PreprocessError(
            f"{first_error} (on_error=raise; on_error=skip records it and goes on)"
        )
    _log_summary(manifest, manifest_path)
    _check_produced(manifest, manifest_path)
    return manifest


def _check_produced(manifest: dict[str, Any], path: Path) -> None:
    """Fail when the dataset holds no finished video: a script must not take that for success."""
    summary = manifest["summary"]
    if summary["done"] > 0:
        return
    reasons = ", ".join(f"{n} {reason}" for reason, n in summary["skipped"].items()) or "none"
    first = next(
        (v["message"] for v in manifest["videos"].values() if v.get("message")), "no message"
    )
    raise PreprocessError(
        f"nothing was produced: all {summary['failed']} videos failed ({reasons}); the first: "
        f"{first.splitlines()[0]}. Every video's reason is in {path}"
    )


def _remove_empty_dirs(root: Path) -> None:
    # finished videos leave their empty <source> folders behind in the work folder
    if not root.is_dir():
        return
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    if not any(root.iterdir()):
        root.rmdir()


def _log_summary(manifest: dict[str, Any], path: Path) -> None:
    summary, run = manifest["summary"], manifest["last_run"]
    log.info(
        "this run: %d videos processed, %d failed, %d already done (%.1f s)",
        run["processed"],
        run["failed"],
        run["previously_done"],
        run["seconds"],
    )
    log.info(
        "dataset %s: %d/%d videos done, %d frames written, frames dropped: %s",
        manifest["dataset"],
        summary["done"],
        summary["videos"],
        summary["frames_written"],
        summary["frames_dropped"] or "none",
    )
    if summary["skipped"]:
        log.warning("skipped items by reason: %s", summary["skipped"])
    log.info("manifest: %s", path)
