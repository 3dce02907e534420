"""Exact resume: a run stopped after epoch 2 and resumed ends exactly as the uninterrupted run."""

from __future__ import annotations

import json
import subprocess

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from dfd.engine.callbacks import Callback
from dfd.engine.resume import ResumeError
from dfd.tracking.tracker import mark_dead_runs
from dfd.train import train
from tests.conftest import compose_train, fresh_mlflow_uri

EPOCHS = 3


def _overrides(tmp, cache, uri):
    return [
        f"paths.cache_dir={cache}",
        f"tracking.uri={uri}",
        f"trainer.max_epochs={EPOCHS}",
        "trainer.batch_size=32",
        "trainer.eval_batch_size=64",
        "data.frames_per_video.train=1",
        "data.frames_per_video.eval=1",
        "tracking.log_plots=false",
        "tracking.log_model=none",
        # slerp draws from torch's RNG every step: resume must restore it exactly
        "loss.slerp=true",
        "augment=paper",  # augmentations: per (seed, epoch, frame) streams
        "~data.test.eyes",
        "~data.test.swap",
        "~data.test.jpeg",
    ]


class _Die(Callback):
    """Stands in for a kill right after the resume state of epoch `after` was written."""

    def __init__(self, after: int, step: int | None = None) -> None:
        self.after, self.step = after, step

    def on_validation_end(self, run, metrics):
        if self.step is None and run.epoch == self.after:
            raise KeyboardInterrupt("killed")

    def on_train_batch_end(self, run):
        if self.step is not None and run.step == self.step:
            raise KeyboardInterrupt("killed mid-epoch")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, demo_cache):
    full_dir = tmp_path_factory.mktemp("full")
    full = compose_train(_overrides(full_dir, demo_cache, fresh_mlflow_uri(full_dir)), full_dir)
    return full_dir, train(full)


@pytest.mark.parametrize("mid_epoch", [False, True], ids=["epoch_end", "mid_epoch"])
def test_resumed_run_ends_exactly_like_the_uninterrupted_one(
    tmp_path, demo_cache, uninterrupted, mid_epoch
):
    full_dir, expected = uninterrupted
    cut_dir = tmp_path / "cut"

    uri = fresh_mlflow_uri(cut_dir)
    extra = ["trainer.resume_every_steps=3"] if mid_epoch else []
    cut = compose_train([*_overrides(cut_dir, demo_cache, uri), *extra], cut_dir)
    # 240 training frames / 32 = 7 steps per epoch: a state at step 9, killed at 10 (epoch 2)
    die = _Die(after=2, step=10 if mid_epoch else None)
    with pytest.raises(KeyboardInterrupt):
        train(cut, callbacks=[die])
    client = MlflowClient(uri)
    (killed,) = client.search_runs(["1"])
    assert killed.info.status == "KILLED"

    resumed_dir = tmp_path / "resumed-hydra-folder"
    again = compose_train(
        [*_overrides(cut_dir, demo_cache, uri), *extra, f"trainer.resume={cut_dir}"], resumed_dir
    )
    result = train(again)

    assert result == expected
    assert json.loads((cut_dir / "metrics.json").read_text()) == json.loads(
        (full_dir / "metrics.json").read_text()
    )
    assert (cut_dir / "checkpoint" / "trainable.safetensors").read_bytes() == (
        full_dir / "checkpoint" / "trainable.safetensors"
    ).read_bytes()
    (run,) = client.search_runs(["1"])  # one MLflow run, continued
    assert run.info.run_id == killed.info.run_id and run.info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val/video_auc")]
    assert sorted(set(steps)) == list(range(EPOCHS + 1))


def test_resume_refuses_a_different_config_naming_the_key(tmp_path, demo_cache):
    uri = fresh_mlflow_uri(tmp_path)
    cfg = compose_train(_overrides(tmp_path, demo_cache, uri), tmp_path)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[_Die(after=0)])
    changed = compose_train(
        [
            *_overrides(tmp_path, demo_cache, uri),
            "trainer.optimizer.lr=0.1",
            f"trainer.resume={tmp_path}",
        ],
        tmp_path / "again",
    )
    with pytest.raises(ResumeError, match="trainer.optimizer.lr"):
        train(changed)


def test_a_run_whose_process_died_is_marked_failed_by_the_next_command(tmp_path):
    uri = fresh_mlflow_uri(tmp_path)
    mlflow.set_tracking_uri(uri)
    exp = mlflow.create_experiment("dfd")
    dead = subprocess.Popen(["true"])
    dead.wait()
    import socket

    with mlflow.start_run(experiment_id=exp) as orphan:
        mlflow.set_tags({"dfd.host": socket.gethostname(), "dfd.pid": str(dead.pid)})
    client = MlflowClient(uri)
    client.update_run(orphan.info.run_id, "RUNNING")
    with mlflow.start_run(experiment_id=exp) as alive:
        mlflow.set_tags({"dfd.host": socket.gethostname(), "dfd.pid": "1"})
        assert mark_dead_runs(uri, "dfd") == [orphan.info.run_id]
    run = client.get_run(orphan.info.run_id)
    assert run.info.status == "FAILED"
    assert "died without ending the run" in run.data.tags["dfd.failure"]
    assert client.get_run(alive.info.run_id).info.status == "FINISHED"
