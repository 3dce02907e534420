"""Entry point: ``python -m dfd.preprocess input_dir=<in> output_dir=<out> dataset=<name>``."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from dfd.preprocess.runner import run_preprocessing


def dataset_alias(args: list[str]) -> list[str]:
    """Command-line overrides with ``dataset=<name>`` spelled ``dataset_name=<name>``.

    conf/dataset/ is the training readers' config group, so Hydra would parse
    ``dataset=<name>`` as a choice in that group ("Could not override 'dataset'"); for this
    command the word names the output folder, which the config keeps in `dataset_name`.
    """
    return [
        "dataset_name=" + a.removeprefix("dataset=") if a.startswith("dataset=") else a
        for a in args
    ]


@hydra.main(config_path="../../conf", config_name="preprocess_faces", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Compose `conf/preprocess_faces.yaml` with the command-line overrides and run it."""
    run_preprocessing(cfg)


if __name__ == "__main__":
    sys.argv = [sys.argv[0], *dataset_alias(sys.argv[1:])]
    main()
