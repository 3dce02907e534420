"""A run's results as files and text: the end-of-run table, metrics.json, per-frame predictions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

COLUMNS = ("video_auc", "frame_auc", "video_eer", "video_ap", "video_acc", "n_videos")


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
    """The target table plus the mean video AUC line, from a Results dict."""
    targets = results["test"]
    mean = results["mean"]["video_auc"]
    return f"{metrics_table(targets)}\nmean video_auc over {len(targets)} targets: {mean:.4f}"


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
