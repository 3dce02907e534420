"""Entry point: `python -m dfd.convert input=<file or folder> output=<folder> [format=...]`.

Turns a released detector (the authors' Lightning checkpoint, GenD's Hub folders, Effort's
and FSFM's checkpoints) into a dfd checkpoint folder that `dfd.evaluate` loads; the format
is detected from the input unless named (`dfd.convert.formats`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from dfd.convert.formats import convert_input
from dfd.convert.lightning import ConversionError
from dfd.runtime.config import CONF_DIR  # (importing dfd.runtime.config registers the resolvers)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="convert")
def main(cfg: DictConfig) -> None:
    try:
        convert_input(Path(cfg.input), Path(cfg.output), list(cfg.overrides), cfg.format)
    except ConversionError as err:
        print(f"dfd.convert: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
