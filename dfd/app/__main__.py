"""Entry point: `python -m dfd.app checkpoint=<dfd checkpoint folder | dfd.export format=hf folder>`.

Serves a Gradio page on 127.0.0.1 (by default) that scores uploaded images and videos with
the checkpoint; the work is in `dfd.app.server`. See conf/app.yaml.
"""

from __future__ import annotations

from omegaconf import DictConfig

from dfd.app.server import serve
from dfd.runtime.cli import entry_point


@entry_point("app")
def main(cfg: DictConfig) -> None:
    """Compose `conf/app.yaml` with the command line and serve the page until interrupted."""
    serve(cfg)


if __name__ == "__main__":
    main()
