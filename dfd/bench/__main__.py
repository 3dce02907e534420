"""Entry point: `python -m dfd.bench [overrides]` measures dfd's throughput. See conf/bench.yaml.

Sections: data-pipeline images/s per worker (current vs dfd's previous pipeline), model
step images/s on synthetic tensors, end-to-end training images/s from PNG crops, and the
achieved TFLOP/s against a matmul ceiling measured in the same run.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import dfd.config  # noqa: F401  (registers the config resolvers)
from dfd.bench.runner import run_bench


@hydra.main(version_base="1.3", config_path="../../conf", config_name="bench")
def main(cfg: DictConfig) -> None:
    run_bench(cfg)


if __name__ == "__main__":
    main()
