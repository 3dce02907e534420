"""The many-machine recipe for real: a PostgreSQL study and an MLflow tracking server, both
started here on 127.0.0.1, and two `python -m dfd.sweep` workers on one grid against them.

Needs Debian's `postgresql` package (initdb, pg_ctl) and psycopg2; where either is missing or
a server does not start, the test says why and skips.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CONF_DIR

pytestmark = pytest.mark.slow

TINY_GRID = """\
study_name: pg_grid
direction: maximize
rows:
  ln: [peft=ln]
  probe: [peft=linear_probe, head=linear, loss=ce]
seeds: [0, 1]
reference: ln
bootstrap: 50
base_overrides:
  - trainer.max_epochs=1
  - trainer.max_steps=2
  - trainer.batch_size=8
  - trainer.eval_batch_size=128
  - data.frames_per_video.train=1
  - data.frames_per_video.eval=1
  - ~data.test.eyes
  - ~data.test.jpeg
  - tracking.log_plots=false
  - tracking.log_model=none
  - tracking.experiment=pg_grid
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _tail(path: Path, n: int = 1500) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else "(no log)"


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 and a random port; yields its base URL
    (`postgresql+psycopg2://dfd@127.0.0.1:<port>`: SQLAlchemy 2.1 reads a bare
    `postgresql://` as psycopg 3, not psycopg2). Run as the `postgres` user when this is root
    (PostgreSQL refuses to run as root)."""
    pytest.importorskip("psycopg2", reason="psycopg2-binary (dev dependency) is not installed")
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL's initdb/pg_ctl not found: apt-get install -y postgresql")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="dfd-pg-"))
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root and no runuser to start PostgreSQL as another user")
        try:
            shutil.chown(root, "postgres")
        except (LookupError, PermissionError) as err:
            pytest.skip(f"running as root and no usable `postgres` user: {err}")
        root.chmod(0o755)
        as_user = ["runuser", "-u", "postgres", "--"]
    port, data, log = _free_port(), root / "data", root / "postgres.log"
    try:
        init = subprocess.run(
            [*as_user, initdb, "-D", str(data), "-U", "dfd", "--auth=trust", "-E", "UTF8"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if init.returncode != 0:
            pytest.skip(f"initdb failed: {init.stderr[-1500:]}")
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        start = subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "start"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if start.returncode != 0:
            pytest.skip(f"PostgreSQL did not start: {start.stderr[-500:]} {_tail(log)}")
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user="dfd", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE optuna")
            cur.execute("CREATE DATABASE mlflow")
        conn.close()
        yield f"postgresql+psycopg2://dfd@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def mlflow_server(
    backend: str, folder: Path, timeout_s: float = 90, port: int | None = None
) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1 and `port` (default: a free one) over `backend`; yields
    its URL."""
    port, log = port or _free_port(), folder / "mlflow-server.log"
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    with log.open("a") as out:
        proc = subprocess.Popen(
            [
                str(mlflow_cli),
                "server",
                "--backend-store-uri",
                backend,
                "--artifacts-destination",
                str(folder / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.skip(f"mlflow server did not answer /health: {_tail(log)}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_two_workers_on_postgres_and_an_mlflow_server_train_each_point_once(tmp_path, demo_cache):
    import mlflow
    import optuna
    import sqlalchemy as sa

    from dfd.data.demo import ensure_demo

    ensure_demo(demo_cache / "demo")  # once here, not raced by the two workers
    sweeps = tmp_path / "search" / "sweep"
    sweeps.mkdir(parents=True)
    (sweeps / "pg_grid.yaml").write_text(TINY_GRID)
    with postgres_server() as pg, mlflow_server(f"{pg}/mlflow", tmp_path) as tracking:
        storage = f"{pg}/optuna"
        env = {**os.environ, "PYTHONPATH": str(CONF_DIR.parent)}
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dfd.sweep",
                    "sweep=pg_grid",
                    f"hydra.searchpath=[file://{tmp_path / 'search'}]",
                    f"storage={storage}",
                    f"paths.output_root={tmp_path / 'out'}",
                    f"paths.cache_dir={demo_cache}",
                    f"hydra.run.dir={tmp_path / f'worker{i}'}",
                    f'overrides=["tracking.uri={tracking}"]',
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for i in range(2)
        ]
        logs = [w.communicate(timeout=300)[0] for w in workers]
        for w, text in zip(workers, logs, strict=True):
            assert w.returncode == 0, text[-3000:]

        study = optuna.load_study(study_name="pg_grid", storage=storage)
        points = ["ln/seed=0", "ln/seed=1", "probe/seed=0", "probe/seed=1"]
        done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
        assert sorted(t.user_attrs["point"] for t in done) == points  # every point once
        assert len(study.trials) == len(points)  # none trained twice, none thrown away
        engine = sa.create_engine(storage)
        with engine.connect() as conn:
            claimed = conn.execute(sa.text("SELECT point FROM dfd_grid_claims")).scalars().all()
        engine.dispose()
        assert sorted(claimed) == points

        client = mlflow.MlflowClient(tracking)
        for trial in done:
            run = client.get_run(trial.user_attrs["mlflow_run_id"])
            assert run.info.status == "FINISHED"
            assert run.data.tags["dfd.sweep.row"] == trial.params["row"]
        experiment = client.get_experiment_by_name("pg_grid")
        parents = client.search_runs(
            [experiment.experiment_id], filter_string="tags.`dfd.role` = 'sweep'"
        )
        assert len(parents) == 2 and all(p.info.status == "FINISHED" for p in parents)
