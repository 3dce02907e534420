"""Entry point: `python -m dfd.export checkpoint=<folder> format=onnx|torchscript|hf output=<path>`.

Writes a checkpoint as one file that runs without dfd or peft (`dfd.export.traced`), or as a
Hugging Face model folder with a generated model card (`dfd.export.hf`), checked against
PyTorch. See conf/export.yaml.
"""

from __future__ import annotations

from omegaconf import DictConfig

from dfd.export.hf import export_hf
from dfd.export.traced import export_checkpoint
from dfd.runtime.cli import entry_point


@entry_point("export")
def main(cfg: DictConfig) -> None:
    """Compose `conf/export.yaml` with the command line and export the checkpoint."""
    if cfg.format == "hf":
        export_hf(cfg)
    else:
        export_checkpoint(cfg)


if __name__ == "__main__":
    main()
