"""Shared fixtures: compose the real Hydra config, shrunk for tests, with outputs in tmp folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

import dfd.config  # noqa: F401  (registers the config resolvers)

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose_train(overrides: list[str] | None = None, output_dir: Path | None = None) -> DictConfig:
    """The composed `conf/train.yaml` with `overrides`, as `python -m dfd.train` would see it."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides or []))
    if output_dir is not None:
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
    return cfg


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory) -> Path:
    """One generated demo benchmark shared by the whole test session (generation takes seconds)."""
    return tmp_path_factory.mktemp("cache")


def small_run_overrides(tmp: Path, cache: Path) -> list[str]:
    """Overrides that turn the default job into a seconds-long real run writing only under `tmp`."""
    return [
        f"paths.cache_dir={cache}",
        f"tracking.uri=sqlite:///{tmp}/mlflow.db",
        "trainer.max_epochs=1",
        "trainer.max_steps=3",
        "trainer.batch_size=8",
        "trainer.eval_batch_size=64",
        "data.frames_per_video.train=1",
        "data.frames_per_video.eval=1",
        "tracking.log_plots=false",
    ]
