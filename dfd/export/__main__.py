"""Entry point: `python -m dfd.export checkpoint=<folder> format=onnx|torchscript output=<file>`.

Writes a checkpoint as one file that runs without dfd or peft, checked against PyTorch; the
work is in `dfd.export.traced`. See conf/export.yaml.
"""

from __future__ import annotations

from omegaconf import DictConfig

from dfd.export.traced import export_checkpoint
from dfd.runtime.cli import entry_point


@entry_point("export")
def main(cfg: DictConfig) -> None:
    """Compose `conf/export.yaml` with the command line and export the checkpoint."""
    export_checkpoint(cfg)


if __name__ == "__main__":
    main()
