"""Entry point: `python -m dfd.convert input=<model.ckpt> output=<folder>`.

Turns the authors' released Lightning checkpoint into a dfd checkpoint folder that
`dfd.evaluate` loads; the work is in `dfd.convert.lightning`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from dfd.convert.lightning import ConversionError, convert
from dfd.runtime.config import CONF_DIR  # (importing dfd.runtime.config registers the resolvers)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="convert")
def main(cfg: DictConfig) -> None:
    try:
        convert(Path(cfg.input), Path(cfg.output), list(cfg.overrides))
    except ConversionError as err:
        print(f"dfd.convert: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
