"""Entry point: `python -m dfd.convert input=<model.ckpt> output=<folder>`.

Turns the authors' released Lightning checkpoint into a dfd checkpoint folder that
`dfd.evaluate` loads; the work is in `dfd.convert.lightning`. Like every command it goes
through `dfd.runtime.cli.entry_point`: a checkpoint dfd cannot read or represent ends with
one line and exit status 1.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from dfd.convert.lightning import convert
from dfd.runtime.cli import entry_point


@entry_point("convert")
def main(cfg: DictConfig) -> None:
    """Compose `conf/convert.yaml` with the command line and convert the checkpoint."""
    convert(Path(cfg.input), Path(cfg.output), list(cfg.overrides))


if __name__ == "__main__":
    main()
