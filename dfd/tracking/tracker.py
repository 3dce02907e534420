"""MLflow: one run per training or evaluation, and the store it lives in.

`Tracker` is a thin MLflow client for one run (`dfd.tracking.callback.MLflowCallback` plugs
it into the training loop). Only the main process talks to MLflow. A run that raises ends FAILED, one
interrupted (Ctrl-C, SIGTERM from a scheduler or torchrun) or stopped on purpose (a pruned
sweep trial) ends KILLED. A run whose process died without a chance to clean up (SIGKILL,
the OOM killer) is continued by its resume, or found by the next dfd command on the same
store and marked FAILED (`mark_dead_runs`).
"""

from __future__ import annotations

import contextlib
import math
import signal
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from dfd.runtime.interprocess import file_lock, pid_alive
from dfd.runtime.redact import redact

# MLflow caps one param value at 6000 characters and a batch at 100 params
_MAX_PARAM_CHARS, _BATCH = 6000, 100
# the UI opens a model-training experiment on its runs, not on GenAI traces
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
EXPERIMENT_DESCRIPTION = (
    "dfd runs: deepfake detectors trained on a source domain, selected on its validation "
    "split, and scored on unseen target datasets. Columns test/<target>/video_auc and "
    "test/mean/video_auc are the cross-dataset results; each run's results.md holds its row."
)


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> {"a.b.c": "value"}; lists stay whole as their string form."""
    flat: dict[str, str] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Serialize the first touches of a local sqlite store across processes.

    MLflow creates and migrates a new sqlite store on first use; two processes doing so at
    once fail (`table _alembic_tmp_... already exists`). A lock file beside the database
    makes them take turns. Other stores (a tracking server, PostgreSQL) need no lock.
    """
    if not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(db.with_name(db.name + ".lock")):
        yield


def prepare_experiment(uri: str, experiment: str, artifact_location: str | None = None) -> str:
    """Create (migrate) the store and the experiment if needed, safely under concurrency;
    return the experiment id."""
    with store_lock(uri):
        client = MlflowClient(uri)
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            return found.experiment_id
        try:
            return client.create_experiment(
                experiment,
                artifact_location=_artifact_uri(uri, artifact_location),
                tags={**EXPERIMENT_KIND, "mlflow.note.content": EXPERIMENT_DESCRIPTION},
            )
        except MlflowException as err:
            # a tracking server is not locked: another process may have created it meanwhile
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return client.get_experiment_by_name(experiment).experiment_id


def _artifact_uri(uri: str, artifact_location: str | None) -> str | None:
    """Where a new experiment keeps artifacts: as configured, else beside a sqlite store.

    MLflow's own default is ./mlartifacts under the current directory, which would make
    results depend on where the command was started.
    """
    if artifact_location:
        return Path(artifact_location).resolve().as_uri()
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    return None  # a tracking server decides


def mark_dead_runs(uri: str, experiment: str, skip: set[str] = frozenset()) -> list[str]:
    """Mark FAILED every RUNNING run of `experiment` started on this host by a process that
    no longer exists; returns their ids. A dead pid on the same host proves the run can
    never end by itself; runs of other hosts are left alone."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    host = socket.gethostname()
    dead = []
    for run in client.search_runs(
        [exp.experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
    ):
        tags = run.data.tags
        pid = tags.get("dfd.pid")
        if run.info.run_id in skip or tags.get("dfd.host") != host or not (pid and pid.isdigit()):
            continue
        if pid_alive(int(pid)):
            continue
        where = tags.get("dfd.run_dir", "its run folder")
        client.set_tag(
            run.info.run_id,
            "dfd.failure",
            f"process {pid} on {host} died without ending the run (SIGKILL or out of memory?); "
            f"continue it with trainer.resume={where}",
        )
        client.set_terminated(run.info.run_id, "FAILED")
        dead.append(run.info.run_id)
    return dead


class Tracker:
    """Thin wrapper around one MLflow run; a disabled tracker (or a non-main process) does nothing."""

    def __init__(
        self,
        uri: str,
        experiment: str,
        artifact_location: str | None = None,
        run_name: str | None = None,
        enabled: bool = True,
        log_plots: bool = True,
        nested: bool = False,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        self.uri, self.experiment = uri, experiment
        self.artifact_location = artifact_location
        self.run_name, self.enabled, self.log_plots = run_name, enabled, log_plots
        # nested: a child of the run active in this process (a sweep's trials under the sweep)
        self.nested = nested
        self.tags = {str(k): str(v) for k, v in (tags or {}).items()}
        self.run_id: str | None = None

    def start(self, run_id: str | None = None, tags: Mapping[str, str] | None = None) -> str:
        """Start a new run, or continue `run_id` (a resumed run); returns its id."""
        mlflow.set_tracking_uri(self.uri)
        experiment_id = prepare_experiment(self.uri, self.experiment, self.artifact_location)
        dead = mark_dead_runs(self.uri, self.experiment, skip={run_id} if run_id else set())
        for rid in dead:
            print(f"MLflow run {rid} was left RUNNING by a process that died: marked FAILED")
        all_tags = {k: redact(v) for k, v in {**self.tags, **(tags or {})}.items()}
        if run_id:
            run = mlflow.start_run(run_id=run_id, nested=self.nested)
            mlflow.set_tags(all_tags)
        else:
            run = mlflow.start_run(
                experiment_id=experiment_id,
                run_name=redact(self.run_name) if self.run_name else None,
                nested=self.nested,
                tags=all_tags or None,
            )
        self.run_id = run.info.run_id
        return self.run_id

    def end(self, status: str) -> None:
        if self.enabled and self.run_id:
            mlflow.end_run(status=status)

    @contextlib.contextmanager
    def run(self, cfg: DictConfig, active: bool = True) -> Iterator[Tracker]:
        """A run around a block (used by the sweep's parent run): config as params, ended
        FINISHED, FAILED or KILLED."""
        self.enabled = self.enabled and active
        if not self.enabled:
            yield self
            return
        self.start()
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        status = "FAILED"
        try:
            self.log_params(flatten(OmegaConf.to_container(cfg, resolve=True)))
            yield self
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.end(status)

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        items = [(k, redact(v)[:_MAX_PARAM_CHARS]) for k, v in params.items()]
        for start in range(0, len(items), _BATCH):
            mlflow.log_params(dict(items[start : start + _BATCH]))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if not self.enabled:
            return
        clean = {
            k: float(v) for k, v in metrics.items() if v is not None and not math.isnan(float(v))
        }
        if clean:
            mlflow.log_metrics(clean, step=step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self.enabled and self.run_id:
            mlflow.set_tags({k: redact(v) for k, v in tags.items()})

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if not self.enabled:
            return
        if Path(path).is_dir():
            mlflow.log_artifacts(str(path), artifact_path)
        else:
            mlflow.log_artifact(str(path), artifact_path)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"received signal {signum}")
