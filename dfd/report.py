"""The end-of-run table of target metrics."""

from __future__ import annotations

from collections.abc import Mapping

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
