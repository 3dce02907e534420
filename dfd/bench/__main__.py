"""Entry point: `python -m dfd.bench [overrides]` measures dfd's throughput. See conf/bench.yaml.

Sections: data-pipeline images/s per worker (current vs dfd's previous pipeline), model
step images/s on synthetic tensors, end-to-end training images/s from PNG crops, and the
achieved TFLOP/s against a matmul ceiling measured in the same run.
"""

from __future__ import annotations

from omegaconf import DictConfig

from dfd.bench.runner import run_bench
from dfd.runtime.cli import entry_point


@entry_point("bench")
def main(cfg: DictConfig) -> None:
    run_bench(cfg)


if __name__ == "__main__":
    main()
