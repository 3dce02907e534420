"""Entry point: `python -m dfd.report [select...]` prints and writes the paper's table of the
runs in an MLflow store (one row per run, a column per target's video AUC, the mean).

See conf/report.yaml for the selection (experiment, tags, sweep, run ids), the metrics, the
grouping over seeds and the formats; the work is in `dfd.report.compare`.
"""

from __future__ import annotations

from omegaconf import DictConfig

from dfd.report.compare import write_report
from dfd.runtime.cli import entry_point


@entry_point("report")
def main(cfg: DictConfig) -> None:
    """Print and write the table of the selected runs."""
    write_report(cfg)


if __name__ == "__main__":
    main()
