"""A short real training run on the tiny backbone and the demo, through the real entry point."""

from __future__ import annotations

import json
import math

import mlflow
import pandas as pd
import pytest

from dfd.engine.callbacks import Callback
from dfd.engine.checkpoint import read_checkpoint
from dfd.train import train
from tests.conftest import compose_train, fresh_mlflow_uri, small_run_overrides


def _finished_run(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["dfd"], output_format="list")
    assert len(runs) == 1
    return runs[0]


def test_user_command_trains_and_logs_every_target(tmp_path, demo_cache):
    cfg = compose_train(
        ["peft=ln", "loss=hypersphere", *small_run_overrides(tmp_path, demo_cache)], tmp_path
    )
    results = train(cfg)

    run = _finished_run(tmp_path)
    assert run.info.status == "FINISHED"
    targets = list(cfg.data.test)
    assert len(targets) >= 3
    for name in targets:
        for metric in ["frame_auc", "video_auc", "video_eer", "video_ap", "video_acc"]:
            logged = run.data.metrics[f"test/{name}/{metric}"]
            assert logged == pytest.approx(results["test"][name][metric])
        # every metric carries its level; counts are params
        assert not {f"test/{name}/{m}" for m in ("acc", "ap", "eer")} & set(run.data.metrics)
        assert f"test/{name}/n_videos" not in run.data.metrics
        assert int(run.data.params[f"test/{name}/n_videos"]) == results["test"][name]["n_videos"]
    mean = sum(results["test"][n]["video_auc"] for n in targets) / len(targets)
    assert run.data.metrics["test/mean/video_auc"] == pytest.approx(mean)
    assert int(run.data.params["trainable_params"]) > 0
    assert int(run.data.params["total_params"]) > int(run.data.params["trainable_params"])
    assert run.data.params["peft._target_"] == "dfd.models.adapters.PeftAdapter"
    assert "val/video_auc" in run.data.metrics and "train/loss" in run.data.metrics

    # per-frame predictions in MLflow recompute every logged AUC (scikit-learn, 1e-9)
    from mlflow.artifacts import download_artifacts
    from sklearn.metrics import roc_auc_score

    folder = download_artifacts(
        run_id=run.info.run_id, artifact_path="predictions", dst_path=str(tmp_path / "dl")
    )
    pooled = []
    val_threshold = results["val"]["video_eer_threshold"]
    for name in targets:
        frames = pd.read_parquet(f"{folder}/{name}.parquet")
        assert list(frames.columns)[:5] == ["path", "video_id", "source", "label", "p_fake"]
        frame_auc = roc_auc_score(frames.label, frames.p_fake)
        videos = frames.groupby("video_id").agg(label=("label", "first"), p=("p_fake", "mean"))
        video_auc = roc_auc_score(videos.label, videos.p)
        assert abs(frame_auc - run.data.metrics[f"test/{name}/frame_auc"]) < 1e-9
        assert abs(video_auc - run.data.metrics[f"test/{name}/video_auc"]) < 1e-9
        # the selection set's video EER threshold, applied to this target's videos
        transfer = ((videos.p >= val_threshold) == videos.label).mean()
        assert abs(transfer - run.data.metrics[f"test/{name}/video_acc_at_val_eer"]) < 1e-9
        pooled.append(videos)
        # TPR at low FPR, the EER threshold and the transfer, at both levels; the interval
        for level in ("frame", "video"):
            for m in ("tpr_at_1pct_fpr", "tpr_at_5pct_fpr", "eer_threshold", "acc_at_val_eer"):
                assert f"test/{name}/{level}_{m}" in run.data.metrics
        low = run.data.metrics[f"test/{name}/video_auc_ci_low"]
        high = run.data.metrics[f"test/{name}/video_auc_ci_high"]
        assert low <= video_auc <= high and low < high
    # every target's videos together (a video id is unique per target only)
    pooled = pd.concat(pooled)
    assert len(pooled) == sum(results["test"][n]["n_videos"] for n in targets)
    pooled_auc = roc_auc_score(pooled.label, pooled.p)
    assert abs(pooled_auc - run.data.metrics["test/pooled/video_auc"]) < 1e-9
    assert "test/pooled/frame_auc" in run.data.metrics
    assert "test/mean/video_eer_threshold" not in run.data.metrics  # a threshold is not averaged
    # the results table: each target's video AUC with its interval, the mean, the pooled row
    table = (tmp_path / "results" / "results.md").read_text()
    for name in targets:
        m = results["test"][name]
        cell = f"{m['video_auc']:.4f} [{m['video_auc_ci_low']:.4f}, {m['video_auc_ci_high']:.4f}]"
        assert f"| {name} | {cell} |" in table
    assert "| mean | " in table and f"| pooled | {results['pooled']['video_auc']:.4f} [" in table
    header = (tmp_path / "results" / "results.csv").read_text().splitlines()[0]
    assert header.startswith("dataset,video_auc,video_auc_ci_low,video_auc_ci_high,frame_auc")
    metrics_json = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics_json["protocol"]["data"] == "demo"
    assert metrics_json["protocol"]["data_hash"] == run.data.tags["dfd.data.hash"]

    # the checkpoint holds exactly the trainable tensors, and its config rebuilds the run
    state, saved_cfg = read_checkpoint(tmp_path / "checkpoint")
    assert sum(t.numel() for t in state.values()) == int(run.data.params["trainable_params"])
    assert saved_cfg.loss._target_ == cfg.loss._target_


class _Crash(Callback):
    def on_train_epoch_end(self, run, metrics):
        raise RuntimeError("boom after epoch 1")


def test_a_crashing_run_is_marked_failed_with_its_error(tmp_path, demo_cache):
    cfg = compose_train(small_run_overrides(tmp_path, demo_cache), tmp_path)
    with pytest.raises(RuntimeError, match="boom"):
        train(cfg, callbacks=[_Crash()])
    run = _finished_run(tmp_path)
    assert run.info.status == "FAILED"
    assert "boom after epoch 1" in run.data.tags["dfd.error"]
    # the epoch-0 checkpoint and the resume state survive the crash
    assert (tmp_path / "checkpoint" / "trainable.safetensors").is_file()
    assert (tmp_path / "resume" / "state.json").is_file()


def test_a_bad_data_root_fails_before_any_run_or_weights(tmp_path, demo_cache):
    overrides = [*small_run_overrides(tmp_path, demo_cache), "data.test.mouth.split=nosuchsplit"]
    cfg = compose_train(overrides, tmp_path)
    with pytest.raises(Exception, match="nosuchsplit"):
        train(cfg)
    mlflow.set_tracking_uri(cfg.tracking.uri)
    assert mlflow.search_runs(experiment_names=["dfd"], output_format="list") == []


def test_no_training_lands_at_chance_level_metrics_are_finite(tmp_path, demo_cache):
    cfg = compose_train(
        [*small_run_overrides(tmp_path, demo_cache), "trainer.max_epochs=0"], tmp_path
    )
    results = train(cfg)
    assert results["best_epoch"] == 0
    assert all(math.isfinite(m["video_auc"]) for m in results["test"].values())


def test_bf16_and_gradient_accumulation_train(tmp_path, demo_cache):
    overrides = [
        *small_run_overrides(tmp_path, demo_cache),
        "trainer.precision=bf16",
        "trainer.grad_accum_steps=2",
        "trainer.max_steps=2",
        "tracking=none",
    ]
    results = train(compose_train(overrides, tmp_path))
    assert results["best_epoch"] in (0, 1)
    assert all(math.isfinite(m["video_auc"]) for m in results["test"].values())


@pytest.mark.slow
def test_command_line_runs_are_named_and_tagged_by_their_overrides(tmp_path, demo_cache):
    import subprocess
    import sys

    uri = fresh_mlflow_uri(tmp_path)
    shared = [
        f"paths.cache_dir={demo_cache}",
        f"tracking.uri={uri}",
        "trainer.max_epochs=1",
        "trainer.max_steps=2",
        "data.frames_per_video.eval=1",
        "tracking.log_plots=false",
        "tracking.log_model=none",
    ]
    # both at once: the suite's wall time, and two runs starting together on one store
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dfd.train", *extra, *shared, f"hydra.run.dir={tmp_path}/r{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i, extra in enumerate([["peft=lora"], ["head=linear", "loss=ce"]])
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out.decode()[-3000:]
    mlflow.set_tracking_uri(uri)
    runs = {
        r.info.run_name: r
        for r in mlflow.search_runs(experiment_names=["dfd"], output_format="list")
    }
    common = "max_epochs=1 · max_steps=2 · eval=1"
    assert set(runs) == {f"lora · {common}", f"linear · ce · {common}"}
    lora = runs[f"lora · {common}"]
    assert lora.data.tags["dfd.overrides"].startswith("peft=lora paths.cache_dir=")
    # issue 19: the split tag names the rule and the set, no longer just "val"
    assert lora.data.tags["dfd.selection.split"] == "source_val (data.val)"
    assert lora.data.tags["dfd.data"] == "demo" and lora.data.tags["dfd.selection.leaky"] == "false"
    # one click shows the cross-dataset row: the description and the results artifact
    assert "| mean |" in lora.data.tags["mlflow.note.content"]
    client = mlflow.MlflowClient(uri)
    assert {f.path for f in client.list_artifacts(lora.info.run_id, "results")} == {
        "results/results.md",
        "results/results.csv",
    }
    exp = client.get_experiment_by_name("dfd")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
