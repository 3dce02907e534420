"""Stores named by URI (sqlite files, database servers, MLflow servers): one line for every way
they fail, passwords masked everywhere, nothing created by a command that only reads."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from dfd.runtime import stores
from dfd.runtime.stores import StoreError, check_sqlite_store
from tests.conftest import CONF_DIR, fresh_mlflow_uri

ENV = {
    **{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"},
    "PYTHONPATH": str(CONF_DIR.parent),
}


def _closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mlflow_check(url: str) -> None:
    check_sqlite_store(
        url,
        "MLflow store",
        "tracking.uri",
        must_exist=True,
        tables=stores.MLFLOW_TABLES,
        foreign=stores.OPTUNA_TABLES,
    )


def test_report_never_creates_a_store_and_names_a_wrong_file(tmp_path):
    from dfd.report.compare import open_tracking_store

    missing = tmp_path / "mlflwo.db"  # a typo
    with pytest.raises(StoreError, match=r"mlflwo\.db does not exist; dfd does not create one"):
        open_tracking_store(f"sqlite:///{missing}")
    assert not missing.exists()
    (tmp_path / "notes.db").write_text("hello\n")
    with pytest.raises(StoreError, match=r"notes\.db is not an sqlite database"):
        _mlflow_check(f"sqlite:///{tmp_path / 'notes.db'}")
    optuna_db = tmp_path / "optuna.db"
    with sqlite3.connect(optuna_db) as conn:
        conn.execute("CREATE TABLE studies (x)")
        conn.execute("CREATE TABLE trials (x)")
    with pytest.raises(StoreError, match=r"another program \(tables \['studies', 'trials'\]\)"):
        _mlflow_check(f"sqlite:///{optuna_db}")
    _mlflow_check(fresh_mlflow_uri(tmp_path / "ok"))  # a real MLflow store passes


def test_store_errors_are_one_line_naming_the_store_and_the_fix(tmp_path):
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'x.db'}"
    for text, expected in [
        ("attempt to write a readonly database", "is read-only: make the file"),
        ("database disk image is malformed", "is damaged or not an sqlite database"),
        ("database is locked", f"stayed locked by another process for {stores.LOCK_WAIT_S} s"),
    ]:
        err = sa.exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError(text))
        message = stores.describe_store_error(url, err, "sweep storage", "storage")
        assert message.startswith(f"sweep storage {url}: {tmp_path / 'x.db'} {expected}")
    secret = "postgresql+psycopg2://me:s3cret@db-host:5432/optuna"
    err = sa.exc.OperationalError(
        "connect", {}, Exception('could not translate host name "db-host" to address')
    )
    message = stores.describe_store_error(secret, err, "sweep storage", "storage")
    assert "me:***@db-host" in message and "s3cret" not in message
    assert "cannot be reached" in message and "storage" in message


def test_a_locked_sweep_storage_is_waited_on_then_named(tmp_path, monkeypatch):
    from dfd.sweep.storage import check_storage

    monkeypatch.setattr(stores, "LOCK_WAIT_S", 1)
    db = tmp_path / "optuna.db"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("CREATE TABLE studies (x)")
    holder.execute("CREATE TABLE trials (x)")
    holder.execute("BEGIN EXCLUSIVE")  # another writer holds it
    try:
        with pytest.raises(StoreError, match=r"stayed locked by another process for 1 s"):
            check_storage(f"sqlite:///{db}")
    finally:
        holder.close()
    check_storage(f"sqlite:///{db}")  # free again: fine


def test_a_read_only_sweep_storage_is_named(tmp_path):
    import optuna

    from dfd.sweep.storage import open_study, storage_errors

    db = tmp_path / "optuna.db"
    optuna.create_study(storage=f"sqlite:///{db}", study_name="other")
    url = f"sqlite:///file:{db}?mode=ro&uri=true"  # read-only even for root
    cfg = OmegaConf.create(
        {
            "storage": url,
            "heartbeat_interval": None,
            "sweep": {"study_name": "new", "direction": "maximize", "rows": {"a": []}},
        }
    )
    with pytest.raises(StoreError, match=r"optuna\.db is read-only"), storage_errors(url):
        open_study(cfg, "val/video_auc")


def _files_holding(folder: Path, text: str) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and text.encode() in path.read_bytes():
            found.append(str(path))
    return found


def test_an_unreachable_sweep_storage_is_one_line_and_its_password_appears_nowhere(tmp_path):
    pytest.importorskip("psycopg2", reason="psycopg2-binary (dev dependency) is not installed")
    port = _closed_port()
    storage = f"postgresql+psycopg2://me:storagePW@127.0.0.1:{port}/optuna"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dfd.sweep",
            "sweep=demo_ablation",
            f"storage={storage}",
            f"paths.output_root={tmp_path}",
            'overrides=["tracking.uri=http://me:trackingPW@127.0.0.1:9"]',
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,  # seconds, where SQLAlchemy and MLflow alone retried for minutes
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"sweep storage postgresql+psycopg2://me:***@127.0.0.1:{port}/optuna" in lines[0]
    assert "cannot be reached" in lines[0]
    for password in ("storagePW", "trackingPW"):
        assert password not in done.stdout + done.stderr
        assert _files_holding(tmp_path, password) == []
    saved = list(tmp_path.rglob(".hydra/overrides.yaml"))
    assert saved and "me:***@127.0.0.1" in saved[0].read_text()  # kept, masked


@pytest.mark.slow
def test_an_unreachable_tracking_server_is_one_line_for_train_and_report(tmp_path):
    port = _closed_port()
    uri = f"http://me:trainPW@127.0.0.1:{port}"
    for command in (
        ["dfd.train", f"tracking.uri={uri}", f"hydra.run.dir={tmp_path / 'run'}"],
        ["dfd.report", f"tracking.uri={uri}", f"hydra.run.dir={tmp_path / 'report'}"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", *command, f"paths.output_root={tmp_path}"],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=120,
        )
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert (
            f"MLflow tracking server http://me:***@127.0.0.1:{port} cannot be reached" in (lines[0])
        )
        assert "trainPW" not in done.stdout + done.stderr
    assert _files_holding(tmp_path, "trainPW") == []
    assert list((tmp_path / "run").rglob("overrides.yaml"))  # the run's saved command, masked


def test_what_libraries_print_or_log_is_masked(capsys):
    import logging

    from dfd.runtime.redact import redact_logging, redacted_output

    # MLflow writes its "View run ... at: <tracking URI>" link to sys.stdout itself
    with redacted_output():
        sys.stdout.write("View run x at: http://me:s3cret@host:5000/#/experiments/1\n")
    assert capsys.readouterr().out == "View run x at: http://me:***@host:5000/#/experiments/1\n"
    # and logs through its own handler, which does not propagate to the root logger
    import io

    stream = io.StringIO()
    logger = logging.getLogger("dfd_test_library")
    logger.addHandler(logging.StreamHandler(stream))
    logger.propagate = False
    redact_logging()
    logger.warning("store %s unreachable", "postgresql://me:s3cret@db/optuna")
    assert stream.getvalue() == "store postgresql://me:***@db/optuna unreachable\n"
