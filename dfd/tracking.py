"""MLflow: one run per training, with the resolved config, metrics, plots and checkpoint.

Only the main process talks to MLflow. A run that raises ends FAILED, one interrupted
(Ctrl-C, SIGTERM from a scheduler or torchrun) ends KILLED: never left RUNNING.
"""

from __future__ import annotations

import contextlib
import math
import signal
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import RunStatus
from omegaconf import DictConfig, OmegaConf

# MLflow caps one param value at 6000 characters and a batch at 100 params
_MAX_PARAM_CHARS, _BATCH = 6000, 100


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


class Tracker:
    """Thin wrapper around an MLflow run; a disabled tracker (or a non-main process) does nothing."""

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

    @contextlib.contextmanager
    def run(self, cfg: DictConfig, active: bool = True) -> Iterator[Tracker]:
        """Start a run, log the config as params, and end it FINISHED, FAILED or KILLED."""
        self.enabled = self.enabled and active
        if not self.enabled:
            yield self
            return
        mlflow.set_tracking_uri(self.uri)
        if mlflow.get_experiment_by_name(self.experiment) is None:
            mlflow.create_experiment(self.experiment, artifact_location=self._artifact_uri())
        mlflow.set_experiment(self.experiment)
        run = mlflow.start_run(run_name=self.run_name, nested=self.nested, tags=self.tags or None)
        self.run_id = run.info.run_id
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        status = RunStatus.to_string(RunStatus.FAILED)
        try:
            self.log_params(flatten(OmegaConf.to_container(cfg, resolve=True)))
            yield self
            status = RunStatus.to_string(RunStatus.FINISHED)
        except KeyboardInterrupt:
            status = RunStatus.to_string(RunStatus.KILLED)
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
            mlflow.end_run(status=status)

    def _artifact_uri(self) -> str | None:
        """Where a new experiment keeps artifacts: as configured, else beside a sqlite store.

        MLflow's own default is ./mlartifacts under the current directory, which would make
        results depend on where the command was started.
        """
        if self.artifact_location:
            return Path(self.artifact_location).resolve().as_uri()
        if self.uri.startswith("sqlite:///"):
            return (
                Path(self.uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts"
            ).as_uri()
        return None  # a tracking server decides

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        items = [(k, str(v)[:_MAX_PARAM_CHARS]) for k, v in params.items()]
        for start in range(0, len(items), _BATCH):
            mlflow.log_params(dict(items[start : start + _BATCH]))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if not self.enabled:
            return
        clean = {
            k: float(v) for k, v in metrics.items() if v is not None and not math.isnan(float(v))
        }
        mlflow.log_metrics(clean, step=step)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if not self.enabled:
            return
        if Path(path).is_dir():
            mlflow.log_artifacts(str(path), artifact_path)
        else:
            mlflow.log_artifact(str(path), artifact_path)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"received signal {signum}")
