"""A results table drawn: grouped bars (one group per target, one bar per row, ± std as error
bars) or a heatmap (rows x targets, the value written in each cell). Used for the paper-format
table of `python -m dfd.report` and for a sweep's ablation table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: training machines have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dfd.tables import Stat, Table  # noqa: E402

PLOT_KINDS = ("bars", "heatmap")


def _values(table: Table, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    index = [table.columns.index(c) for c in columns]
    means = np.full((len(table.rows), len(columns)), np.nan)
    stds = np.zeros_like(means)
    for r, (_, cells) in enumerate(table.rows):
        for j, i in enumerate(index):
            cell = cells[i]
            if isinstance(cell, Stat):
                means[r, j], stds[r, j] = cell.mean, cell.std if cell.n > 1 else 0.0
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
    """Draw `columns` of `table` (numbers or mean ± std cells) as a PNG at `path`."""
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
