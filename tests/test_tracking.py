"""MLflow runs end FINISHED, FAILED or KILLED: never left RUNNING."""

from __future__ import annotations

import json
import os
import signal

import mlflow
import pytest
from omegaconf import OmegaConf

from dfd.tracking.pending import PENDING_FILE
from dfd.tracking.tracker import Tracker, flatten
from tests.conftest import fresh_mlflow_uri


def _status(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/m.db")
    (run,) = mlflow.search_runs(experiment_names=["t"], output_format="list")
    return run


def _tracker(tmp_path):
    return Tracker(uri=fresh_mlflow_uri(tmp_path, "m.db"), experiment="t")


CFG = OmegaConf.create({"a": {"b": 1, "c": [1, 2]}, "d": "x"})


def test_finished_run_holds_flat_params(tmp_path):
    with _tracker(tmp_path).run(CFG) as t:
        t.log_metrics({"m": 0.5, "skipped_nan": float("nan")})
    run = _status(tmp_path)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"a.b": "1", "a.c": "[1, 2]", "d": "x"}
    assert run.data.metrics == {"m": 0.5}
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())


def test_exception_marks_failed(tmp_path):
    with pytest.raises(RuntimeError), _tracker(tmp_path).run(CFG):
        raise RuntimeError("boom")
    assert _status(tmp_path).info.status == "FAILED"


def test_interrupt_and_sigterm_mark_killed(tmp_path):
    with pytest.raises(KeyboardInterrupt), _tracker(tmp_path).run(CFG):
        os.kill(os.getpid(), signal.SIGTERM)  # what torchrun or a scheduler sends
    assert _status(tmp_path).info.status == "KILLED"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_inactive_tracker_writes_nothing(tmp_path):
    with Tracker(uri=f"sqlite:///{tmp_path}/m.db", experiment="t").run(CFG, active=False) as t:
        t.log_metrics({"m": 1.0})
    assert not (tmp_path / "m.db").exists()


def test_flatten_nested():
    assert flatten({"x": {"y": {"z": 1}}, "e": {}}) == {"x.y.z": "1", "e": "{}"}


_START = """
import sys
from dfd.tracking import Tracker
t = Tracker(uri=sys.argv[1], experiment="dfd")
t.start()
t.end("FINISHED")
"""


@pytest.mark.slow
def test_processes_starting_together_on_a_new_sqlite_store_all_succeed(tmp_path):
    import subprocess
    import sys

    uri = f"sqlite:///{tmp_path}/new/mlflow.db"  # does not exist yet: the first touch migrates it
    procs = [
        subprocess.Popen([sys.executable, "-c", _START, uri], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    errors = [p.communicate(timeout=240)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["dfd"], output_format="list")
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 3
    exp = mlflow.get_experiment_by_name("dfd")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"


@pytest.mark.slow
def test_a_tracking_server_lost_mid_training_never_stops_the_run(tmp_path, demo_cache, capfd):
    # a real `mlflow server`, killed after epoch 1; training goes on and writes its results;
    # the server restarted on the same store and port gets the run's metrics on resume
    from mlflow import MlflowClient

    from dfd.engine.callbacks import Callback
    from dfd.train import train
    from tests.conftest import compose_train, small_run_overrides
    from tests.test_sweep_postgres import _free_port, mlflow_server

    port, backend = _free_port(), f"sqlite:///{tmp_path}/server.db"
    first = mlflow_server(backend, tmp_path, port=port)
    url = first.__enter__().replace("http://", "http://dfd:serverPW@")  # never shown anywhere

    class KillServer(Callback):
        def on_validation_end(self, run, metrics):
            if run.epoch == 1:
                first.__exit__(None, None, None)

    overrides = [
        *small_run_overrides(tmp_path / "run", demo_cache),
        f"tracking.uri={url}",
        "tracking.retry_every_s=1",
        "trainer.max_epochs=2",
        "trainer.max_steps=null",
        "data.frames_per_video.train=1",
    ]
    try:
        results = train(compose_train(overrides, tmp_path / "run"), callbacks=[KillServer()])
    finally:
        first.__exit__(None, None, None)
    run_dir = tmp_path / "run"
    assert json.loads((run_dir / "metrics.json").read_text())["mean"] == results["mean"]
    assert (run_dir / "checkpoint" / "trainable.safetensors").is_file()
    assert sorted(p.name for p in (run_dir / "predictions").iterdir())
    pending = run_dir / PENDING_FILE
    kept = [json.loads(line)["op"] for line in pending.read_text().splitlines()]
    assert "metrics" in kept and kept[-1] == "terminate"  # what the dead server missed
    run_id = json.loads((run_dir / "resume" / "state.json").read_text())["run_id"]

    with mlflow_server(backend, tmp_path, port=port):
        train(compose_train([*overrides, f"trainer.resume={run_dir}"], run_dir))
        assert not pending.exists()  # everything kept was sent
        run = MlflowClient(url).get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.data.metrics["test/mean/video_auc"] == pytest.approx(
            results["mean"]["video_auc"]
        )
        epochs = [m.step for m in MlflowClient(url).get_metric_history(run_id, "val/video_auc")]
        assert {0, 1, 2} <= set(epochs)  # epoch 2 was logged while the server was down
        assert run.data.params["tracking.uri"] == url.replace("serverPW", "***")
    printed = capfd.readouterr()
    assert "serverPW" not in printed.out + printed.err
    assert not [p for p in run_dir.rglob("*") if p.is_file() and b"serverPW" in p.read_bytes()]
