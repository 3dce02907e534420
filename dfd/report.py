"""Entry point: `python -m dfd.report [select...]` prints and writes the paper's table of the
runs in an MLflow store (one row per run, a column per target's video AUC, the mean).

See conf/report.yaml for the selection (experiment, tags, sweep, run ids), the metrics, the
grouping over seeds and the formats.
"""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient
from omegaconf import DictConfig, OmegaConf

import dfd.config  # noqa: F401  (registers the config resolvers)
from dfd.cli import entry_point
from dfd.compare import Selection, comparison_table, select_runs
from dfd.table_plot import plot_table
from dfd.tables import Table, to_csv, to_latex, to_markdown

FORMATS = {"markdown": "md", "csv": "csv", "latex": "tex"}


def write_report(cfg: DictConfig) -> tuple[Table, list[Path]]:
    """Select the runs `cfg.select` names in `cfg.tracking.uri`, build their table, print it
    and write it (and its plot) to `cfg.output_dir`; return the table and the files."""
    unknown = [f for f in cfg.formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"formats: {unknown} unknown; choose from {list(FORMATS)}")
    select = OmegaConf.to_container(cfg.select, resolve=True)
    runs = select_runs(MlflowClient(str(cfg.tracking.uri)), Selection(**select))
    table = comparison_table(runs, list(cfg.metrics), bool(cfg.group_seeds))
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in cfg.formats:
        text = {
            "markdown": lambda: to_markdown(table),
            "csv": lambda: to_csv(table),
            "latex": lambda: to_latex(table, percent=bool(cfg.latex_percent)),
        }[fmt]()
        path = out / f"{cfg.name}.{FORMATS[fmt]}"
        path.write_text(text if text.endswith("\n") else text + "\n")
        written.append(path)
    if cfg.plot:
        columns = [c for c in table.columns if c != "runs"]
        written.append(
            plot_table(
                table,
                columns,
                out / f"{cfg.name}.png",
                f"{' / '.join(cfg.metrics)} per target, {len(runs)} runs",
                kind=str(cfg.plot),
                ylabel=" / ".join(cfg.metrics),
            )
        )
    print(to_markdown(table))
    print(f"\n{len(runs)} runs; written: " + ", ".join(str(p) for p in written))
    return table, written


@entry_point("report")
def main(cfg: DictConfig) -> None:
    """Print and write the table of the selected runs."""
    write_report(cfg)


if __name__ == "__main__":
    main()
