"""Entry point: ``python -m dfd.preprocess input_dir=<in> output_dir=<out> dataset_name=<name>``."""

from __future__ import annotations

from omegaconf import DictConfig

from dfd.preprocess.runner import run_preprocessing
from dfd.runtime.cli import entry_point


@entry_point("preprocess_faces")
def main(cfg: DictConfig) -> None:
    """Compose `conf/preprocess_faces.yaml` with the command-line overrides and run it."""
    run_preprocessing(cfg)


if __name__ == "__main__":
    main()
