"""Shared fixtures: compose the real Hydra config, shrunk for tests, with outputs in tmp folders."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

import dfd.runtime.config  # noqa: F401  (registers the config resolvers)

# the tests' models are tiny: one intra-op thread beats two fighting over the cores (and a
# busy machine), and results are the same either way
torch.set_num_threads(1)

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


@functools.cache
def _initialized_mlflow_store() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="dfd-test-mlflow-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    from mlflow import MlflowClient

    MlflowClient(f"sqlite:///{folder}/mlflow.db").search_experiments()
    return folder / "mlflow.db"


def fresh_mlflow_uri(folder: Path, name: str = "mlflow.db") -> str:
    """A tracking URI of an empty sqlite store in `folder`.

    The store is a copy of one initialized once per session: MLflow's schema migration of a
    new sqlite file takes seconds, a copy milliseconds.
    """
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(_initialized_mlflow_store(), folder / name)
    return f"sqlite:///{folder / name}"


def small_run_overrides(tmp: Path, cache: Path) -> list[str]:
    """Overrides that turn the default job into a seconds-long real run writing only under `tmp`."""
    return [
        f"paths.cache_dir={cache}",
        f"tracking.uri={fresh_mlflow_uri(tmp)}",
        "trainer.max_epochs=1",
        "trainer.max_steps=3",
        "trainer.batch_size=8",
        "trainer.eval_batch_size=64",
        "data.frames_per_video.train=1",
        "data.frames_per_video.eval=1",
        "tracking.log_plots=false",
        # logging the detector as an MLflow model takes ~2 s a run; tests/test_mlflow_model.py
        # turns it on
        "tracking.log_model=none",
    ]
