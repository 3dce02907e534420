"""Figures a person would rather look at than read: ROC curves and score histograms of a run's
targets, and a results table drawn as grouped bars (one group per target, one bar per row, ± std
as error bars) or a heatmap (rows x targets), for `python -m dfd.report` and a sweep's ablation."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: training machines have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dfd.report.tables import Interval, Stat, Table  # noqa: E402
from dfd.scoring.metrics import roc_curve  # noqa: E402

PLOT_KINDS = ("bars", "heatmap")


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
    every target in one figure, and one histogram of video scores per target.

    `predictions` maps each target to its per-frame table or to its parquet file
    (`dfd.report.results.PredictionWriter`); files are read one at a time, three columns
    each, and only the video scores stay in memory for the joint ROC figure.
    """
    import pyarrow.parquet as pq

    from dfd.scoring.metrics import video_scores

    folder.mkdir(parents=True, exist_ok=True)
    paths, curves = [], {}
    for name, source in predictions.items():
        table = source
        if isinstance(source, str | Path):
            table = pq.read_table(source, columns=["video_id", "label", "p_fake"])
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


def _values(table: Table, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    index = [table.columns.index(c) for c in columns]
    means = np.full((len(table.rows), len(columns)), np.nan)
    stds = np.zeros_like(means)
    for r, (_, cells) in enumerate(table.rows):
        for j, i in enumerate(index):
            cell = cells[i]
            if isinstance(cell, Stat):
                means[r, j], stds[r, j] = cell.mean, cell.std if cell.n > 1 else 0.0
            elif isinstance(cell, Interval):
                means[r, j] = cell.value  # the bars' error is the spread over seeds only
            elif isinstance(cell, float | int) and not isinstance(cell, bool):
                means[r, j] = float(cell)
    return means, np.nan_to_num(stds)


def plot_table(
    table: Table,
    columns: Sequence[str],
    path: Path,
    title: str,
    kind: str = "bars",
    ylabel: str = "video AUC",
) -> Path:
    """Draw `columns` of `table` (numbers, mean ± std or interval cells: their value) as a
    PNG at `path`."""
    if kind not in PLOT_KINDS:
        raise ValueError(f"plot kind {kind!r} unknown; choose one of {PLOT_KINDS}")
    means, stds = _values(table, columns)
    labels = [label for label, _ in table.rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "heatmap":
        fig, ax = plt.subplots(
            figsize=(1.2 * len(columns) + 3, 0.45 * len(labels) + 1.8), layout="constrained"
        )
        finite = means[np.isfinite(means)]
        low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        image = ax.imshow(
            means, cmap="viridis", vmin=low, vmax=max(high, low + 1e-6), aspect="auto"
        )
        for r in range(means.shape[0]):
            for c in range(means.shape[1]):
                if math.isfinite(means[r, c]):
                    bright = (means[r, c] - low) / max(high - low, 1e-6) > 0.6
                    ax.text(
                        c,
                        r,
                        f"{means[r, c]:.3f}",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="black" if bright else "white",
                    )
        ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        fig.colorbar(image, ax=ax, label=ylabel)
    else:
        width = 0.8 / max(len(labels), 1)
        fig, ax = plt.subplots(
            figsize=(min(12.0, max(6.5, 0.25 * len(columns) * len(labels) + 3)), 4.8),
            layout="constrained",
        )
        x = np.arange(len(columns))
        for r, label in enumerate(labels):
            ax.bar(
                x + (r - (len(labels) - 1) / 2) * width,
                means[r],
                width,
                yerr=stds[r] if stds[r].any() else None,
                capsize=2,
                label=label,
            )
        finite = means[np.isfinite(means)]
        if finite.size:
            ax.set_ylim(max(0.0, finite.min() - 0.1), min(1.0, finite.max() + 0.05))
        ax.set_xticks(x, columns)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=7, ncols=2 if len(labels) > 4 else 1, loc="best")
        ax.grid(axis="y", alpha=0.3)
    ax.set_title(title)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_robustness(
    results: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]],
    values: Mapping[str, tuple[str, Sequence[float]]],
    path: Path,
) -> Path:
    """Video AUC against severity: one panel per perturbation, one line per target, plus their mean.

    `values` gives each perturbation's parameter name and its value at severities 1, 2, ...,
    shown under the severity numbers.
    """
    names = list(results)
    cols = min(len(names), 4)
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.4 * cols + 1.6, 3.2 * rows), squeeze=False, sharey=True
    )
    lowest = 1.0
    for ax, name in zip(axes.flat, names, strict=False):
        severities = list(results[name])
        x = np.arange(len(severities))
        targets = list(results[name][severities[0]])
        aucs = np.array(
            [[results[name][s][t]["video_auc"] for s in severities] for t in targets]
        )  # (targets, severities)
        for target, row in zip(targets, aucs, strict=True):
            ax.plot(x, row, marker="o", markersize=3, linewidth=1.2, label=target)
        ax.plot(x, np.nanmean(aucs, axis=0), "k--", linewidth=1.5, label="mean of targets")
        ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
        parameter, levels = values[name]
        ax.set_xticks(
            x, ["0\nclean"] + [f"{s}\n{v:.3g}" for s, v in zip(severities[1:], levels, strict=True)]
        )
        ax.tick_params(axis="x", labelsize=7)
        ax.set_title(name)
        ax.set_xlabel(f"severity ({parameter})")
        ax.grid(alpha=0.3)
        if np.isfinite(aucs).any():
            lowest = min(lowest, float(np.nanmin(aucs)))
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("video AUC")
    axes[0, 0].set_ylim(min(0.45, lowest - 0.05), 1.01)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8)
    fig.suptitle("Video AUC under test-time perturbations (severity 0 = clean; dotted: chance)")
    fig.tight_layout(rect=(0, 0, 1 - 1.6 / fig.get_figwidth(), 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
