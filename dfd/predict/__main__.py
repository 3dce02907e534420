"""Entry point: `python -m dfd.predict checkpoint=<folder> input=<image|folder|video|glob>`.

Scores the faces of images and videos with a trained detector and writes a CSV or JSON file;
the work is in `dfd.predict.predictor`. See conf/predict.yaml.
"""

from __future__ import annotations

from omegaconf import DictConfig

from dfd.predict.predictor import run_prediction
from dfd.runtime.cli import entry_point


@entry_point("predict")
def main(cfg: DictConfig) -> None:
    """Compose `conf/predict.yaml` with the command line and score the inputs."""
    run_prediction(cfg)


if __name__ == "__main__":
    main()
