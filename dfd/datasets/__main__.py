"""Entry point: ``python -m dfd.datasets data=<protocol> paths.data_dir=<folder>`` checks a
protocol's datasets: found or missing, videos and frames per label and source, problems by
reason, the face pipeline of the crops, and the command that makes each missing one.

Exit status 1 when a dataset the protocol needs is missing or unusable. See conf/datasets.yaml.
"""

from __future__ import annotations

from omegaconf import DictConfig

from dfd.datasets.doctor import run_doctor
from dfd.runtime.cli import entry_point


@entry_point("datasets")
def main(cfg: DictConfig) -> None:
    """Print the protocol's datasets and fail if any is missing."""
    run_doctor(cfg)


if __name__ == "__main__":
    main()
