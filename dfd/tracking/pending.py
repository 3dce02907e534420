"""What a tracking server did not take: kept in the run folder, sent when it answers again.

A run outlives its tracking server: when a call to MLflow fails for a reason that can pass
(the server is down, restarting, unreachable, or answers 5xx), the call is appended to
``<run folder>/mlflow_pending.jsonl``, one JSON object a line, with its original timestamp,
and training goes on. The file is sent, in order, when the server answers again (the
`Tracker` retries every ``tracking.retry_every_s``), at the end of the run, when the run is
resumed, or by the next dfd command that finds the run on the same host left RUNNING by a
process that has ended; it is deleted once everything in it was taken.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from dfd.runtime.redact import redacted_output

PENDING_FILE = "mlflow_pending.jsonl"
# MLflow's limits on one log_batch call
_MAX_METRICS, _MAX_PARAMS, _MAX_TAGS = 1000, 100, 100


def is_transient(err: BaseException) -> bool:
    """Whether a failed MLflow call may succeed later: no connection, a timeout, a 5xx answer,
    a locked or unreachable database (an invalid value, a 4xx, would fail again)."""
    import requests
    import sqlalchemy

    if isinstance(err, requests.RequestException | OSError | sqlalchemy.exc.OperationalError):
        return True
    if isinstance(err, MlflowException):
        return err.get_http_status_code() >= 500
    return False


def metric_call(metrics: Mapping[str, float], step: int | None) -> dict:
    return {"op": "metrics", "metrics": dict(metrics), "step": step, "time": _now_ms()}


def params_call(params: Mapping[str, str]) -> dict:
    return {"op": "params", "params": dict(params)}


def tags_call(tags: Mapping[str, str]) -> dict:
    return {"op": "tags", "tags": dict(tags)}


def artifact_call(path: Path, artifact_path: str | None) -> dict:
    return {"op": "artifact", "path": str(Path(path).resolve()), "artifact_path": artifact_path}


def terminate_call(status: str) -> dict:
    return {"op": "terminate", "status": status, "time": _now_ms()}


def send(client: MlflowClient, run_id: str, call: Mapping[str, Any]) -> None:
    """Make one recorded call on run `run_id` (what `Tracker` does live, from the record)."""
    op = call["op"]
    if op == "metrics":
        step = call["step"] or 0
        items = [Metric(k, float(v), call["time"], step) for k, v in call["metrics"].items()]
        for i in range(0, len(items), _MAX_METRICS):
            client.log_batch(run_id, metrics=items[i : i + _MAX_METRICS], synchronous=True)
    elif op == "params":
        items = [Param(k, str(v)) for k, v in call["params"].items()]
        for i in range(0, len(items), _MAX_PARAMS):
            client.log_batch(run_id, params=items[i : i + _MAX_PARAMS], synchronous=True)
    elif op == "tags":
        items = [RunTag(k, str(v)) for k, v in call["tags"].items()]
        for i in range(0, len(items), _MAX_TAGS):
            client.log_batch(run_id, tags=items[i : i + _MAX_TAGS], synchronous=True)
    elif op == "artifact":
        path = Path(call["path"])
        if path.is_dir():
            client.log_artifacts(run_id, str(path), call["artifact_path"])
        elif path.is_file():
            client.log_artifact(run_id, str(path), call["artifact_path"])
        # a file deleted since (a moved run folder): nothing left to send
    elif op == "terminate":
        with redacted_output():  # MLflow prints a link made from the URI, password included
            client.set_terminated(run_id, call["status"], end_time=call["time"])
    else:
        raise ValueError(f"unknown pending tracking call {op!r}")


class PendingCalls:
    """The calls one run could not make, in the order they were made (`PENDING_FILE`)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __len__(self) -> int:
        return len(self._read()) if self.path.is_file() else 0

    def keep(self, call: Mapping[str, Any]) -> None:
        """Append a call that failed (or was not tried: the server is known to be down)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(call, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def send(self, client: MlflowClient, run_id: str, skip_terminate: bool = False) -> bool:
        """Send every kept call, oldest first; True when none is left (the file is gone).

        A transient failure keeps the calls not yet sent, and returns False; any other error
        is raised. `skip_terminate` leaves out the recorded end of the run (a resumed run
        ends again by itself).
        """
        if not self.path.is_file():
            return True
        calls = self._read()
        for i, call in enumerate(calls):
            if skip_terminate and call["op"] == "terminate":
                continue
            try:
                send(client, run_id, call)
            except Exception as err:
                if not is_transient(err):
                    raise
                self._write(calls[i:])
                return False
        self.path.unlink(missing_ok=True)
        return True

    def _read(self) -> list[dict]:
        calls = []
        for line in self.path.read_text().splitlines():
            try:
                calls.append(json.loads(line))
            except ValueError:
                continue  # a line cut short by a kill while it was written
        return calls

    def _write(self, calls: list[dict]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(json.dumps(c, default=str) + "\n" for c in calls))
        os.replace(tmp, self.path)


def _now_ms() -> int:
    return int(time.time() * 1000)
