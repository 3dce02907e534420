"""The selected detector as an MLflow model of its run: listed with the run's cross-dataset
AUCs, loadable as a pyfunc that scores face crops as dfd.predict does, registrable, servable,
and loaded without running anything from the artifact but dfd's own code."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_dir

from dfd.engine.trusted_config import UntrustedConfigError
from dfd.evaluate import evaluate_checkpoint
from dfd.export.mlflow_model import _load_pyfunc, encode_crop
from dfd.runtime.errors import UserError
from dfd.train import train
from tests.conftest import CONF_DIR, compose_train, small_run_overrides
from tests.test_export_hf import smooth_crop
from tests.test_predict import predict, write_png

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tracked(demo_cache, tmp_path_factory) -> dict:
    """A demo training run tracked in its own store, logging its detector (the default form)."""
    run = tmp_path_factory.mktemp("tracked")
    overrides = [*small_run_overrides(run, demo_cache), "tracking.log_model=checkpoint"]
    cfg = compose_train(overrides, run)
    results = train(cfg)
    mlflow.set_tracking_uri(cfg.tracking.uri)
    experiment = mlflow.get_experiment_by_name(cfg.tracking.experiment)
    (model,) = mlflow.search_logged_models(
        experiment_ids=[experiment.experiment_id], output_format="list"
    )
    return {"run": run, "uri": cfg.tracking.uri, "results": results, "model": model}


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("crops")
    return [write_png(folder / f"{i}.png", smooth_crop(10 + i, side)) for i, side in
            enumerate((256, 64, 200))]  # fmt: skip


def dfd_predict(checkpoint: Path, crops: list[Path], tmp: Path) -> np.ndarray:
    rows = predict(checkpoint, crops[0].parent, tmp / "p.json", "crop=false")
    return np.array([r.p_fake for r in sorted(rows, key=lambda r: r.input)])


def test_training_logs_the_detector_linked_to_the_runs_cross_dataset_aucs(tracked):
    model, results = tracked["model"], tracked["results"]
    mlflow.set_tracking_uri(tracked["uri"])
    run = mlflow.get_run(model.source_run_id)
    assert [o.model_id for o in run.outputs.model_outputs] == [model.model_id]
    assert run.data.tags["dfd.logged_model"] == f"models:/{model.model_id}"
    linked = {(m.key, m.step): m.value for m in model.metrics}
    for target, metrics in results["test"].items():
        assert linked[(f"test/{target}/video_auc", 0)] == pytest.approx(metrics["video_auc"])
    assert linked[("test/mean/video_auc", 0)] == pytest.approx(results["mean"]["video_auc"])
    # and the selection metric of the selected epoch
    assert linked[("val/video_auc", results["best_epoch"])] == pytest.approx(
        results["val"]["video_auc"]
    )
    assert not [k for k, step in linked if k.startswith("val/") and step != results["best_epoch"]]


def test_the_default_artifact_holds_the_checkpoint_not_the_encoder(tracked):
    mlflow.set_tracking_uri(tracked["uri"])
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{tracked['model'].model_id}"))
    data = local / "data" / "checkpoint"
    assert sorted(p.name for p in data.iterdir()) == sorted(
        p.name for p in (tracked["run"] / "checkpoint").iterdir()
    )
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    assert mlmodel["flavors"]["python_function"]["loader_module"] == "dfd.export.mlflow_model"
    assert not list(local.rglob("*.pkl")) and not list(local.rglob("*.py"))  # no code, no pickle
    signature = mlmodel["signature"]
    assert json.loads(signature["inputs"]) == [
        {"type": "binary", "name": "image", "required": True}
    ]
    assert json.loads(signature["outputs"]) == [
        {"type": "double", "name": "p_fake", "required": True}
    ]
    assert (local / "input_example.json").is_file()


def test_pyfunc_scores_crops_as_dfd_predict_and_registers(tracked, crops, tmp_path):
    mlflow.set_tracking_uri(tracked["uri"])
    uri = f"models:/{tracked['model'].model_id}"
    pyfunc = mlflow.pyfunc.load_model(uri)
    frame = pd.DataFrame({"image": [p.read_bytes() for p in crops]})
    got = pyfunc.predict(frame)["p_fake"].to_numpy()
    expected = dfd_predict(tracked["run"] / "checkpoint", crops, tmp_path)
    assert np.abs(got - expected).max() <= 1e-6, (got, expected)
    version = mlflow.register_model(uri, "dfd-demo-detector")
    assert int(version.version) == 1
    assert mlflow.pyfunc.load_model("models:/dfd-demo-detector/1").predict(frame)[
        "p_fake"
    ].to_numpy() == pytest.approx(got, abs=1e-9)


def test_a_bad_crop_is_named_by_its_row(tracked):
    model = _load_pyfunc(str(tracked["run"] / "checkpoint"))
    good = encode_crop(smooth_crop(0, 64))
    with pytest.raises(ValueError, match="row 1: image is not an image file"):
        model.predict(pd.DataFrame({"image": [good, b"not an image"]}))


def test_loading_refuses_an_artifact_whose_config_names_other_code(tracked, tmp_path):
    data = tmp_path / "checkpoint"
    shutil.copytree(tracked["run"] / "checkpoint", data)
    config = yaml.safe_load((data / "config.yaml").read_text())
    config["head"]["_target_"] = "os.system"
    (data / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(UntrustedConfigError, match="os.system"):
        _load_pyfunc(str(data))


def evaluation(checkpoint: Path, out: Path, uri: str, *extra: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(
            config_name="evaluate",
            overrides=[
                f"checkpoint={checkpoint}",
                f"tracking.uri={uri}",
                "tracking.log_plots=false",
                f"paths.output_dir={out}",
                *extra,
            ],
        )


def test_evaluate_logs_the_full_model_on_request(tracked, crops, tmp_path, demo_cache):
    checkpoint = tracked["run"] / "checkpoint"
    # the training run's own data config, with its demo root, scores two targets
    cfg = evaluation(
        checkpoint,
        tmp_path / "eval",
        tracked["uri"],
        "log_model=true",
        "tracking.log_model=full",
        "data=demo",
        f"data.root={demo_cache / 'demo'}",
        "~data.test.eyes",
        "~data.test.jpeg",
        "data.frames_per_video.eval=1",
    )
    evaluate_checkpoint(cfg)
    mlflow.set_tracking_uri(tracked["uri"])
    run = mlflow.search_runs(
        experiment_names=["dfd"], filter_string="tags.`dfd.logged_model` LIKE 'models:/%'",
        output_format="list",
    )  # fmt: skip
    evaluated = [r for r in run if r.info.run_name.startswith("evaluate")]
    assert len(evaluated) == 1
    uri = evaluated[0].data.tags["dfd.logged_model"]
    local = Path(mlflow.artifacts.download_artifacts(uri))
    assert (local / "data" / "hf" / "model.safetensors").is_file()  # the encoder is inside
    got = mlflow.pyfunc.load_model(uri).predict(
        pd.DataFrame({"image": [p.read_bytes() for p in crops]})
    )["p_fake"]
    assert np.abs(got.to_numpy() - dfd_predict(checkpoint, crops, tmp_path)).max() <= 1e-6


def test_evaluate_refuses_log_model_without_a_form(tracked, tmp_path):
    cfg = evaluation(
        tracked["run"] / "checkpoint",
        tmp_path / "eval",
        tracked["uri"],
        "log_model=true",
        "tracking.log_model=none",
    )
    with pytest.raises(UserError, match="log_model=true needs"):
        evaluate_checkpoint(cfg)


# ----------------------------------------------------------------------------- serving


def free_port() -> int | None:
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    except OSError:
        return None


@pytest.mark.slow
def test_mlflow_models_serve_answers_with_dfd_predicts_scores(tracked, crops, tmp_path):
    port = free_port()
    if port is None:
        pytest.skip("no TCP port can be bound on 127.0.0.1 here: cannot serve a model")
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracked["uri"],
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        # the server runs `uvicorn` from this environment's bin folder
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "models",
        "serve",
        "-m",
        f"models:/{tracked['model'].model_id}",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the server did not answer /ping in 180 s"
            time.sleep(1)
        body = {
            "dataframe_split": {
                "columns": ["image"],
                "data": [[base64.b64encode(p.read_bytes()).decode()] for p in crops],
            }
        }
        request = urllib.request.Request(
            f"{base}/invocations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as r:
            answer = json.loads(r.read())
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()
    got = np.array([row["p_fake"] for row in answer["predictions"]])
    expected = dfd_predict(tracked["run"] / "checkpoint", crops, tmp_path)
    assert np.abs(got - expected).max() <= 1e-6, (got, expected)
