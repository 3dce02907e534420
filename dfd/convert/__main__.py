"""Entry point: `python -m dfd.convert input=<file or folder> output=<folder> [format=...]`.

Turns a released detector (the authors' Lightning checkpoint, GenD's Hub folders, Effort's
and FSFM's checkpoints) into a dfd checkpoint folder that `dfd.evaluate` loads; the format
is detected from the input unless named (`dfd.convert.formats`). Like every command
it goes through `dfd.runtime.cli.entry_point`: a checkpoint dfd cannot read or represent
ends with one line and exit status 1.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from dfd.convert.formats import convert_input
from dfd.runtime.cli import entry_point


@entry_point("convert")
def main(cfg: DictConfig) -> None:
    """Compose `conf/convert.yaml` with the command line and convert the checkpoint."""
    convert_input(Path(cfg.input), Path(cfg.output), list(cfg.overrides), cfg.format)


if __name__ == "__main__":
    main()
