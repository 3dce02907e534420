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
import logging
import math
import os
import signal
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from dfd.runtime.interprocess import file_lock, pid_alive
from dfd.runtime.redact import redact, redact_logging, redacted_output
from dfd.runtime.stores import StoreError, check_tracking_server, describe_store_error
from dfd.tracking.pending import (
    PENDING_FILE,
    PendingCalls,
    artifact_call,
    is_transient,
    metric_call,
    params_call,
    send,
    tags_call,
    terminate_call,
)

log = logging.getLogger(__name__)

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
        pending = PendingCalls(Path(where) / PENDING_FILE)
        # its process ended while the server was down: what it kept may end the run
        sent = len(pending) and pending.send(client, run.info.run_id)
        if sent and client.get_run(run.info.run_id).info.status != "RUNNING":
            print(f"MLflow run {run.info.run_id}: sent what its process kept in {where}")
            continue
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
    """Thin wrapper around one MLflow run; a disabled tracker (or a non-main process) does nothing.

    A server lost mid-run never stops the run: once the run has started, a call that fails for
    a reason that can pass (`dfd.tracking.pending.is_transient`) is kept in `journal` (a file
    in the run folder) and the tracker stops calling the server; every `retry_every_s` it
    tries again, and sends what it kept, in order, as soon as the server answers (also at the
    end of the run, and on resume). MLflow's own HTTP retries are bounded to seconds per call
    (`HTTP_RETRY_LIMITS`). Without a `journal`, such a failure is raised.
    """

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
        log_model: str = "checkpoint",
        retry_every_s: float = 30.0,
    ) -> None:
        self.uri, self.experiment = uri, experiment
        self.artifact_location = artifact_location
        self.run_name, self.enabled, self.log_plots = run_name, enabled, log_plots
        # nested: a child of the run active in this process (a sweep's trials under the sweep)
        self.nested = nested
        self.tags = {str(k): str(v) for k, v in (tags or {}).items()}
        # the selected detector as an MLflow model: checkpoint | full | none
        # (dfd.tracking.logged_model)
        self.log_model = log_model
        self.retry_every_s = float(retry_every_s)
        self.run_id: str | None = None
        self.journal: Path | None = None
        self._offline_until: float | None = None  # monotonic time of the next try, when down

    def check_reachable(self) -> None:
        """Fail in seconds, naming the URI, when the tracking server does not answer (call it
        before slow work: a run should not load its data only to find no server)."""
        if self.enabled:
            check_tracking_server(self.uri)

    def start(self, run_id: str | None = None, tags: Mapping[str, str] | None = None) -> str:
        """Start a new run, or continue `run_id` (a resumed run); returns its id.

        The first contact: a store that cannot be reached (or read) fails here in one line.
        A resumed run first sends what its journal kept from before.
        """
        bound_http_retries()
        redact_logging()  # MLflow's own handlers too: they would print the URI as given
        check_tracking_server(self.uri)
        mlflow.set_tracking_uri(self.uri)
        try:
            experiment_id = prepare_experiment(self.uri, self.experiment, self.artifact_location)
            dead = mark_dead_runs(self.uri, self.experiment, skip={run_id} if run_id else set())
        except Exception as err:
            message = describe_store_error(self.uri, err, "MLflow store", "tracking.uri")
            if message is None:
                raise
            raise StoreError(message) from None
        for rid in dead:
            print(f"MLflow run {rid} was left RUNNING by a process that died: marked FAILED")
        all_tags = {k: redact(v) for k, v in {**self.tags, **(tags or {})}.items()}
        if run_id:
            run = mlflow.start_run(run_id=run_id, nested=self.nested)
            self.run_id = run.info.run_id
            if self.journal is not None and len(PendingCalls(self.journal)):
                kept = len(PendingCalls(self.journal))
                if PendingCalls(self.journal).send(self._client(), run_id, skip_terminate=True):
                    log.warning("MLflow: sent %d calls this run could not make before", kept)
            self._send(tags_call(all_tags))
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
        """End the run with `status`; a server that is down gets it (and everything kept) later."""
        if not (self.enabled and self.run_id):
            return
        if self._offline_until is None:
            failed = None
            try:
                # pops this process's active run even if it fails; MLflow prints a link to the
                # run made from the tracking URI as given (password included): masked
                with redacted_output():
                    mlflow.end_run(status=status)
                return
            except Exception as err:
                if self.journal is None or not is_transient(err):
                    raise
                failed = err
            # outside the except block: a log record made there would carry MLflow's
            # exception, URI and password, into any traceback a handler prints
            self._went_offline(failed)
        else:
            _pop_active_run()
        pending = PendingCalls(self.journal)
        pending.keep(terminate_call(status))
        if pending.send(self._client(), self.run_id):
            log.warning("MLflow: the server answers again; every kept call was sent")
            return
        log.warning(
            "MLflow: %d calls of run %s could not reach %s; they are kept in %s and sent when "
            "this run is resumed (trainer.resume=%s) or by the next dfd command on this host "
            "once the server answers",
            len(pending),
            self.run_id,
            redact(self.uri),
            self.journal,
            self.journal.parent,
        )

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
            self._send(params_call(dict(items[start : start + _BATCH])))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if not self.enabled:
            return
        clean = {
            k: float(v) for k, v in metrics.items() if v is not None and not math.isnan(float(v))
        }
        if clean:
            self._send(metric_call(clean, step))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self.enabled and self.run_id:
            self._send(tags_call({k: redact(v) for k, v in tags.items()}))

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if not self.enabled:
            return
        self._send(artifact_call(path, artifact_path))

    # -- a server that stops answering ---------------------------------------------------
    def _client(self) -> MlflowClient:
        return MlflowClient(self.uri)

    def _send(self, call: dict) -> None:
        """Make one call on the run, or keep it while the server is down (see the class doc)."""
        if self._offline_until is not None:
            if time.monotonic() < self._offline_until or not _answers(self.uri):
                self._offline_until = time.monotonic() + self.retry_every_s
                PendingCalls(self.journal).keep(call)
                return
            pending = PendingCalls(self.journal)
            pending.keep(call)
            if pending.send(self._client(), self.run_id):
                self._offline_until = None
                log.warning("MLflow: %s answers again; every kept call was sent", redact(self.uri))
            else:
                self._offline_until = time.monotonic() + self.retry_every_s
            return
        failed = None
        try:
            send(self._client(), self.run_id, call)
        except Exception as err:
            if self.journal is None or not is_transient(err):
                raise
            failed = err
        if failed is not None:  # (not in the except block: see `end`)
            self._went_offline(failed)
            PendingCalls(self.journal).keep(call)

    def _went_offline(self, err: BaseException) -> None:
        self._offline_until = time.monotonic() + self.retry_every_s
        reason = redact(
            str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        )
        log.warning(
            "MLflow: %s does not answer (%s); the run goes on, its calls are kept in %s and "
            "sent when the server answers again (tried every %.0f s) or on resume",
            redact(self.uri),
            reason[:300],
            self.journal,
            self.retry_every_s,
        )


# MLflow's defaults retry one HTTP call 7 times with exponential backoff (about 4 minutes)
# and wait 120 s for an answer; a run that logs every epoch needs seconds. Set only where the
# user has not set them.
HTTP_RETRY_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}


def bound_http_retries() -> None:
    """Bound MLflow's HTTP retries (`HTTP_RETRY_LIMITS`) unless the environment sets them."""
    for name, value in HTTP_RETRY_LIMITS.items():
        os.environ.setdefault(name, value)


def _answers(uri: str) -> bool:
    """Whether the store answers now (a quick probe; local stores always do)."""
    try:
        check_tracking_server(uri, timeout=2)
    except StoreError:
        return False
    return True


def _pop_active_run() -> None:
    """End this process's active run locally, without telling the server (it is down)."""
    from mlflow.tracking.fluent import _active_run_stack

    stack = _active_run_stack.get()
    if stack:
        stack.pop()


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"received signal {signum}")
