"""A run's results as files and text: the end-of-run table, metrics.json, per-frame predictions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from dfd.report.plots import plot_robustness
from dfd.report.tables import LEAKY_MARK, leaky_note, results_markdown_csv
from dfd.runtime.redact import redact

if TYPE_CHECKING:  # scoring needs torch; reading results does not
    from dfd.engine.callbacks import RunState
    from dfd.scoring.robustness import RobustnessResults

# the console table at the end of a run
COLUMNS = ("video_auc", "frame_auc", "video_eer", "video_ap", "video_acc", "n_videos")
# the results table of each run: the paper's headline level first, the authors' mAP last
RESULTS_FILE_COLUMNS = ("video_auc", "frame_auc", "video_eer", "video_ap", "video_map")


def metrics_table(
    results: Mapping[str, Mapping[str, float]], columns: tuple[str, ...] = COLUMNS
) -> str:
    """A fixed-width text table, one row per dataset, `columns` as named metric keys."""
    width = max([len("dataset"), *(len(n) for n in results)]) + 2
    lines = ["dataset".ljust(width) + "".join(c.rjust(11) for c in columns)]
    for name, m in results.items():
        cells = []
        for c in columns:
            v = m.get(c, float("nan"))
            cells.append(f"{int(v):>11d}" if c.startswith("n_") else f"{v:>11.4f}")
        lines.append(name.ljust(width) + "".join(cells))
    return "\n".join(lines)


def results_summary(results: Mapping) -> str:
    """The target table, the mean video AUC line and the pooled one (every target's videos
    together, with its bootstrap interval), from a Results dict; a leaky selection's note."""
    targets = results["test"]
    mean = results["mean"]["video_auc"]
    lines = [metrics_table(targets), f"mean video_auc over {len(targets)} targets: {mean:.4f}"]
    pooled = results.get("pooled")
    if pooled:
        interval = ""
        if "video_auc_ci_low" in pooled:
            interval = f" [{pooled['video_auc_ci_low']:.4f}, {pooled['video_auc_ci_high']:.4f}]"
        lines.append(
            f"pooled video_auc over {int(pooled['n_videos'])} videos of {len(targets)} targets: "
            f"{pooled['video_auc']:.4f}{interval}"
        )
    selection = (results.get("protocol") or {}).get("selection") or {}
    if selection.get("leaky"):
        lines.append(leaky_note(selection.get("target", "?")))
    return "\n".join(lines)


def write_metrics(path: Path, results: Mapping) -> Path:
    """The run's Results as JSON beside its checkpoint, for scripts that do not query MLflow."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True))
    return path


def write_predictions(folder: Path, predictions: Mapping[str, pa.Table]) -> list[Path]:
    """One ``<target>.parquet`` per target: path, video_id, source, label, p_fake per frame."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, table in predictions.items():
        pq.write_table(table, folder / f"{name}.parquet")
        paths.append(folder / f"{name}.parquet")
    return paths


class PredictionWriter:
    """A `score_targets` sink: writes each target's per-frame predictions to
    ``<folder>/<target>.parquet`` as soon as the target is scored and returns the file's path,
    so that no process holds more than one target's rows. Only an `enabled` writer (the main
    process's) writes; every process gets the same paths back."""

    def __init__(self, folder: Path, enabled: bool = True) -> None:
        self.folder = Path(folder)
        self.enabled = enabled

    def __call__(self, name: str, table: pa.Table) -> Path:
        path = self.folder / f"{name}.parquet"
        if self.enabled:
            self.folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path)
        return path


def write_results_table(results: Mapping, folder: Path) -> str:
    """``results.md`` and ``results.csv`` in `folder`: one row per target plus the mean over
    targets; returns the Markdown (the MLflow run's description shows it)."""
    markdown, csv = results_markdown_csv(results, RESULTS_FILE_COLUMNS)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.md").write_text(markdown + "\n")
    (folder / "results.csv").write_text(csv)
    return markdown


def write_robustness(robust: RobustnessResults, folder: Path) -> Path:
    """``robustness.json`` (every level's description and metrics) and ``robustness.png``
    (video AUC against severity) in `folder`; returns the plot."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "robustness.json").write_text(
        json.dumps({"levels": robust.levels, "results": robust.results}, indent=2)
    )
    return plot_robustness(robust.results, robust.values, folder / "robustness.png")


def print_run_results(run: RunState, results: Mapping) -> None:
    """The end of a training run on the console: the selected epoch and the set that selected
    it, the targets' table, the frames that could not be read, and where MLflow holds the run."""
    value = run.best_val.get(run.monitor, float("nan"))
    selection = (results.get("protocol") or {}).get("selection") or {}
    where = {
        "heldout": f"held-out sets {', '.join(selection.get('sets', []))}:",
        "test_set": f"{LEAKY_MARK} LEAKY, test target {selection.get('target')}:",
    }.get(selection.get("rule"), "val")
    print(f"\nselected epoch {run.best_epoch} ({where} {run.monitor} {value:.4f})")
    print(results_summary(results))
    lost = {k: v for k, v in run.extra.get("unreadable", {}).items() if v}
    if lost:
        print("unreadable frames skipped: " + ", ".join(f"{k} {v}" for k, v in lost.items()))
    if run.run_id:
        print(f"MLflow run {run.run_id} in {redact(run.cfg.tracking.uri)}")
