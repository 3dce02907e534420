"""The reporting side of a full evaluation suite, measured without a model: memory and time of
per-frame predictions, plots, MLflow logging and `dfd.report` for, by default, 14 targets and
500,000 frames (the size of the 2026 suite at 32 frames per video).

Each target's index is written as the index cache would hold it; every stage then runs, in a
fresh process (`dfd.bench.memory.isolated`), the code a run runs after its forward passes:
the targets' indexes loaded (every process of a run holds them), per-frame scores turned into
metrics and predictions tables (`score_targets` minus the model, with the scores drawn at
random), the plots, the MLflow callback and the report. The predictions stage runs twice:
written as each target is scored (`PredictionWriter`, what runs do) and kept in memory until
the end (what they did before), so that the table shows what streaming saves.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dfd.bench.memory import Probe
from dfd.bench.stages import CONFIG, REPORT, Stage
from dfd.data.index import FAKE, REAL, FrameIndex
from dfd.engine.callbacks import RunState
from dfd.report.compare import write_report
from dfd.report.plots import plot_results
from dfd.report.results import PredictionWriter, write_metrics
from dfd.scoring.metrics import detection_metrics
from dfd.scoring.targets import frame_predictions, mean_over_targets
from dfd.tracking.callback import MLflowCallback
from dfd.tracking.tracker import prepare_experiment


def write_suite_indexes(folder: Path, targets: int, frames: int, frames_per_video: int) -> None:
    """`targets` indexes of `frames` frames in all (split evenly), half the videos fake, as
    parquet files of the index cache under ``folder/index``, with paths as long as real ones."""
    out = folder / "index"
    out.mkdir(parents=True, exist_ok=True)
    per_target = max(frames // targets, frames_per_video)
    for t in range(targets):
        name = f"target{t:02d}"
        videos = max(per_target // frames_per_video, 2)
        rows = [
            (
                f"/data/faces/{name}/{source}/{source[:4]}_video_{v:06d}/{f:03d}.png",
                label,
                f"{source}/{source[:4]}_video_{v:06d}",
                source,
            )
            for v in range(videos)
            for source, label in [
                ("real" if v % 2 == 0 else "synthesis", REAL if v % 2 == 0 else FAKE)
            ]
            for f in range(frames_per_video)
        ]
        paths, labels, video_ids, sources = (list(c) for c in zip(*rows, strict=True))
        index = FrameIndex(
            name, paths, np.asarray(labels), video_ids, sources, ["test"] * len(rows)
        )
        pq.write_table(index.to_arrow(), out / f"{name}.parquet")


def _indexes(folder: Path) -> dict[str, FrameIndex]:
    """What `load_targets` holds after a cache hit: every target's index."""
    return {
        p.stem: FrameIndex.from_arrow(pq.read_table(p))
        for p in sorted((folder / "index").glob("*.parquet"))
    }


def _frames(indexes: dict[str, FrameIndex]) -> int:
    return sum(len(i) for i in indexes.values())


def suite_index(folder: Path) -> dict[str, Any]:
    """Every target's index loaded from the index cache (every process of a run holds them)."""
    probe = Probe()
    with probe:
        indexes = _indexes(folder)
    return {**probe.record(), "frames": _frames(indexes)}


def _predictions(folder: Path, stream: bool) -> dict[str, Any]:
    indexes = _indexes(folder)
    rng = np.random.default_rng(0)
    writer = PredictionWriter(folder / "run" / "predictions")
    probe = Probe()
    with probe:
        per_target, predictions = {}, {}
        for name, index in indexes.items():
            # a detector that separates the classes a little, so that the curves are not flat
            scores = np.clip(rng.normal(0.4 + 0.2 * index.labels, 0.2), 0.0, 1.0)
            per_target[name] = detection_metrics(index.video_ids, index.labels, scores)
            table = frame_predictions(index, scores)
            predictions[name] = writer(name, table) if stream else table
        if not stream:  # the previous ending: every target's table written at the end
            for name, table in predictions.items():
                writer(name, table)
    results = {"test": per_target, "mean": mean_over_targets(per_target)}
    write_metrics(folder / "run" / "metrics.json", results)
    return {**probe.record(), "frames": _frames(indexes)}


def suite_predictions_kept(folder: Path) -> dict[str, Any]:
    """Metrics and per-frame predictions of every target, all tables held until the end."""
    return _predictions(folder, stream=False)


def suite_predictions(folder: Path) -> dict[str, Any]:
    """Metrics and per-frame predictions of every target, each written when it is scored."""
    return _predictions(folder, stream=True)


def _written(folder: Path) -> tuple[dict[str, Path], dict]:
    paths = {p.stem: p for p in sorted((folder / "run" / "predictions").glob("*.parquet"))}
    return paths, json.loads((folder / "run" / "metrics.json").read_text())


def suite_plots(folder: Path) -> dict[str, Any]:
    """ROC curves and score histograms of every target, read back from the parquet files."""
    paths, results = _written(folder)
    probe = Probe()
    with probe:
        plot_results(paths, results, folder / "run" / "plots")
    return {**probe.record(), "frames": sum(pq.read_metadata(p).num_rows for p in paths.values())}


def suite_logging(folder: Path) -> dict[str, Any]:
    """The MLflow callback's end of a run: metrics, results table, plots, predictions."""
    cfg = OmegaConf.load(folder / CONFIG)
    prepare_experiment(cfg.tracking.uri, cfg.tracking.experiment)
    paths, results = _written(folder)
    run = RunState(cfg=cfg, output_dir=folder / "run", extra={"overrides": []})
    run.predictions = paths
    callback = MLflowCallback(instantiate(cfg.tracking))
    probe = Probe()
    with probe:
        callback.on_fit_start(run)
        callback.on_test_end(run, results)
        callback.teardown(run)
    return {**probe.record(), "frames": sum(pq.read_metadata(p).num_rows for p in paths.values())}


def suite_report(folder: Path) -> dict[str, Any]:
    """`python -m dfd.report` over the store the logging stage wrote to."""
    cfg = OmegaConf.load(folder / REPORT)
    probe = Probe()
    with probe:
        table, _ = write_report(cfg)
    return {**probe.record(), "frames": len(table.rows)}


SUITE_STAGES: tuple[Stage, ...] = (
    Stage("targets' indexes loaded (every process)", "suite_index", suite_index),
    Stage(
        "predictions kept until the end (before)", "suite_predictions_kept", suite_predictions_kept
    ),
    Stage("predictions written per target (now)", "suite_predictions", suite_predictions),
    Stage("plots", "suite_plots", suite_plots),
    Stage("MLflow logging (plots included)", "suite_logging", suite_logging),
    Stage("dfd.report", "suite_report", suite_report),
)
BY_KEY = {stage.key: stage for stage in SUITE_STAGES}


def run_suite_stage(key: str, folder: Path) -> dict[str, Any]:
    """Run the suite stage named `key` on the suite's folder in this process; its record."""
    return BY_KEY[key].run(Path(folder))
