"""Figures a person would rather look at than read: ROC curves and score histograms."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: training machines have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dfd.metrics import roc_curve  # noqa: E402


def plot_roc_curves(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray, float]], title: str, path: Path
) -> Path:
    """One ROC curve per dataset: {name: (labels, scores, auc)} -> PNG at `path`."""
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (labels, scores, auc) in curves.items():
        fpr, tpr = roc_curve(labels, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=title,
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_score_histogram(labels: np.ndarray, scores: np.ndarray, title: str, path: Path) -> Path:
    """Histogram of p(fake) for real and fake samples of one dataset."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    bins = np.linspace(0, 1, 31)
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, label="real")
    ax.hist(scores[labels == 1], bins=bins, alpha=0.6, label="fake")
    ax.set(xlabel="p(fake)", ylabel="count", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_results(
    predictions: Mapping, results: Mapping, folder: Path, aggregate: str = "mean"
) -> list[Path]:
    """A run's target plots from its per-frame predictions: the video-level ROC curves of
    every target in one figure, and one histogram of video scores per target."""
    from dfd.metrics import video_scores

    folder.mkdir(parents=True, exist_ok=True)
    paths, curves = [], {}
    for name, table in predictions.items():
        scores = np.asarray(table.column("p_fake").to_numpy(zero_copy_only=False), dtype=float)
        keep = ~np.isnan(scores)
        ids = np.asarray(table.column("video_id").to_pylist(), dtype=object)[keep]
        labels = np.asarray(table.column("label").to_numpy())[keep]
        _, v_labels, v_scores = video_scores(ids.tolist(), labels, scores[keep], aggregate)
        curves[name] = (v_labels, v_scores, results["test"][name]["video_auc"])
        paths.append(
            plot_score_histogram(
                v_labels, v_scores, f"{name}: video scores", folder / f"hist_{name}.png"
            )
        )
    paths.append(
        plot_roc_curves(curves, "video-level ROC on target datasets", folder / "roc_targets.png")
    )
    return paths
