"""Cross-dataset evaluation of the selected checkpoint on every target, with MLflow logging."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from accelerate import Accelerator

from dfd.data.frames import FrameTransform
from dfd.data.index import FrameIndex
from dfd.data.loading import make_loader
from dfd.engine.inference import evaluate
from dfd.metrics import video_scores
from dfd.models.detector import Detector
from dfd.plots import plot_roc_curves, plot_score_histogram
from dfd.tracking import Tracker


def evaluate_targets(
    model: Detector,
    targets: Mapping[str, FrameIndex],
    transform: FrameTransform,
    accelerator: Accelerator,
    tracker: Tracker,
    batch_size: int,
    num_workers: int,
    plots_dir: Path,
) -> dict[str, dict[str, float]]:
    """Score every target dataset; log ``test/<name>/<metric>`` and ``test/mean/video_auc``.

    Returns {target name: metrics}, with a ``mean`` row holding the mean of every AUC over
    the targets. ROC curves (video level) and score histograms go to MLflow as artifacts.
    """
    results: dict[str, dict[str, float]] = {}
    curves = {}
    for name, index in targets.items():
        loader = accelerator.prepare(
            make_loader(index, transform, batch_size, num_workers, train=False, seed=0)
        )
        metrics, scores = evaluate(model, loader.dataset, loader, accelerator, desc=f"test {name}")
        results[name] = metrics
        tracker.log_metrics({f"test/{name}/{k}": v for k, v in metrics.items()})
        _, v_labels, v_scores = video_scores(index.video_ids, index.labels, scores)
        curves[name] = (v_labels, v_scores, metrics["video_auc"])
        if tracker.enabled and tracker.log_plots:
            plots_dir.mkdir(parents=True, exist_ok=True)
            hist = plot_score_histogram(
                v_labels, v_scores, f"{name}: video scores", plots_dir / f"hist_{name}.png"
            )
            tracker.log_artifact(hist, "plots")
    mean = {k: float(np.mean([m[k] for m in results.values()])) for k in ("video_auc", "frame_auc")}
    results["mean"] = mean
    tracker.log_metrics({f"test/mean/{k}": v for k, v in mean.items()})
    if tracker.enabled and tracker.log_plots:
        roc = plot_roc_curves(
            curves, "video-level ROC on target datasets", plots_dir / "roc_targets.png"
        )
        tracker.log_artifact(roc, "plots")
    return results
