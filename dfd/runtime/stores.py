"""Stores a user names by URI (an sqlite file, a database server, an MLflow tracking server):
checked before the first contact, and every way they fail said in one line.

Without these checks a mistyped sqlite path silently becomes a new, empty database (MLflow and
Optuna create one on first use), a text file or another program's database ends in a
SQLAlchemy traceback, and an unreachable server is retried for minutes (MLflow: 7 retries
with exponential backoff, about 4 minutes; a dropped TCP connect: about 2 minutes). Here:
- a database server gets `CONNECT_TIMEOUT_S` to answer the first connection;
- an MLflow tracking server gets one plain HTTP request of `PROBE_TIMEOUT_S` before MLflow's
  own retrying client is used;
- an sqlite file locked by another writer is waited on for `LOCK_WAIT_S`, then reported.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Collection
from pathlib import Path

from dfd.runtime.errors import UserError
from dfd.runtime.redact import redact

CONNECT_TIMEOUT_S = 10
PROBE_TIMEOUT_S = 5
LOCK_WAIT_S = 60
SQLITE_HEADER = b"SQLite format 3\x00"
# tables that say which program a sqlite file belongs to
MLFLOW_TABLES = frozenset({"experiments", "runs"})
OPTUNA_TABLES = frozenset({"studies", "trials"})


class StoreError(UserError):
    """A store that is missing, unreadable, of another kind, read-only, locked or unreachable."""


def sqlite_path(url: str) -> Path | None:
    """The file of an ``sqlite:///<path>`` URL (None for any other URL or an in-memory one)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    path = path.removeprefix("file:")  # sqlite's URI form: sqlite:///file:<path>?mode=ro&uri=true
    if not path or path == ":memory:":
        return None
    return Path(path)


def sqlite_tables(path: Path) -> set[str]:
    """The table names of an sqlite file, read without writing to it."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=LOCK_WAIT_S)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


def check_sqlite_store(
    url: str,
    what: str,
    key: str,
    *,
    must_exist: bool,
    tables: Collection[str] = (),
    foreign: Collection[str] = (),
) -> None:
    """Refuse an sqlite store that cannot be what `what` needs, naming the file and the fix.

    `must_exist`: a reader (``dfd.report``) never creates a store, so a missing or empty file
    is an error rather than a new database. An existing file must be an sqlite database; if
    it holds tables, it must hold `tables` (its program's) and none of `foreign` (another
    program's, whose file was given by mistake). Other URLs pass unchecked.
    """
    path = sqlite_path(url)
    if path is None:
        return
    shown = redact(url)
    if not path.exists() or (path.is_file() and path.stat().st_size == 0 and must_exist):
        if must_exist:
            state = "does not exist" if not path.exists() else "is empty"
            raise StoreError(
                f"{what} {shown}: {path} {state}; dfd does not create one here. Point {key} at "
                f"an existing store (relative paths are from the current folder: "
                f"sqlite:////abs/path.db for an absolute one)"
            )
        return
    if path.is_dir():
        raise StoreError(f"{what} {shown}: {path} is a folder; point {key} at the database file")
    try:
        with open(path, "rb") as f:
            header = f.read(len(SQLITE_HEADER))
    except OSError as err:
        raise StoreError(f"{what} {shown}: {path} cannot be read ({err.strerror})") from None
    if header and header != SQLITE_HEADER:
        raise StoreError(
            f"{what} {shown}: {path} is not an sqlite database (it starts with {header[:8]!r}); "
            f"point {key} at the right file"
        )
    try:
        found = sqlite_tables(path) if header else set()
    except sqlite3.Error as err:
        raise StoreError(f"{what} {shown}: {path} {_sqlite_problem(str(err), key)}") from None
    others = sorted(found & set(foreign))
    if found and (others or not set(tables) <= found):
        kind = f" (tables {others})" if others else ""
        raise StoreError(
            f"{what} {shown}: {path} is an sqlite database of another program{kind}; point "
            f"{key} at the {what}"
        )


def describe_store_error(url: str, err: BaseException, what: str, key: str) -> str | None:
    """One line for a database error raised while using the store at `url`, or None when the
    error says nothing about the store (then it is not the user's to fix)."""
    text = str(getattr(err, "orig", None) or err)
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    shown = redact(url)
    path = sqlite_path(url)
    if path is not None:
        problem = _sqlite_problem(first, key)
        if problem is not None:
            return f"{what} {shown}: {path} {problem}"
        return None
    if re.search(
        r"could not connect|connection (to server|refused)|could not translate host|"
        r"timeout expired|Can't connect|Unknown MySQL server host|Name or service not known",
        text,
        flags=re.IGNORECASE,
    ):
        return (
            f"{what} {shown} cannot be reached ({redact(first)}; waited at most "
            f"{CONNECT_TIMEOUT_S} s): start the database server, or correct the host, port and "
            f"credentials in {key}"
        )
    status = re.search(r"API request to endpoint (\S+) failed with error code (\d+)", text)
    if status is not None:
        return (
            f"{what} {shown} answered HTTP {status[2]} to {status[1]}: it is not an MLflow "
            f"tracking server (or not of a compatible version); correct {key}"
        )
    if re.search(r"password authentication failed|access denied", text, flags=re.IGNORECASE):
        return f"{what} {shown} refused the credentials: correct the user and password in {key}"
    return None


def _sqlite_problem(message: str, key: str) -> str | None:
    lowered = message.lower()
    if "readonly" in lowered or "read-only" in lowered:
        return (
            "is read-only: make the file and its folder writable, or point "
            f"{key} at a writable copy"
        )
    if "not a database" in lowered or "malformed" in lowered or "file is encrypted" in lowered:
        return (
            f"is damaged or not an sqlite database ({message}); restore it from a copy, or "
            f"point {key} at another file"
        )
    if "locked" in lowered or "busy" in lowered:
        return (
            f"stayed locked by another process for {LOCK_WAIT_S} s ({message}); wait for "
            f"that process, or use a database server for many writers"
        )
    if "unable to open" in lowered:
        return f"cannot be opened ({message}); check that its folder exists and is writable"
    return None


def connect_args(url: str) -> dict:
    """SQLAlchemy ``connect_args`` that bound the first connection (servers) and the wait on
    a locked file (sqlite)."""
    if url.startswith("sqlite"):
        return {"timeout": LOCK_WAIT_S}
    if url.startswith(("postgresql", "mysql", "mariadb")):
        return {"connect_timeout": CONNECT_TIMEOUT_S}
    return {}


def check_database_server(url: str, what: str, key: str) -> None:
    """Fail in at most `CONNECT_TIMEOUT_S`, in one line naming the URL, when the database
    server of a SQLAlchemy URL (PostgreSQL, MySQL) does not take a connection. MLflow alone
    retries a database it cannot reach 10 times over about 100 s, each try waiting on TCP."""
    if url.startswith("sqlite") or "://" not in url or url.startswith(("http://", "https://")):
        return
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url, connect_args=connect_args(url))
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError):
        return  # not a database URL SQLAlchemy knows: the store's own code reports it
    try:
        with engine.connect():
            pass
    except sa.exc.SQLAlchemyError as err:
        message = describe_store_error(url, err, what, key)
        if message is None:
            raise
        raise StoreError(message) from None
    finally:
        engine.dispose()


def check_tracking_server(
    uri: str, key: str = "tracking.uri", timeout: float = PROBE_TIMEOUT_S
) -> None:
    """Fail in seconds, naming the URI, when an MLflow tracking server does not answer.

    One plain request to the server's ``/health`` (any HTTP answer counts as reachable: a
    proxy may not route that path); MLflow's own client would retry for minutes first. A
    database URL (MLflow storing in PostgreSQL directly) gets one connection
    (`check_database_server`); an sqlite file, nothing.
    """
    if not uri.startswith(("http://", "https://")):
        check_database_server(uri, "MLflow store", key)
        return
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=timeout)
    except requests.RequestException as err:
        raise StoreError(
            f"MLflow tracking server {redact(uri)} cannot be reached ({_reason(err)}; waited "
            f"at most {timeout:g} s): start it (`mlflow server --host <host> --port "
            f"<port>`), correct {key}, or run without tracking (tracking=none)"
        ) from None


def _reason(err: BaseException) -> str:
    text = str(err)
    found = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    if found:
        return found.group(0).strip()
    if "timed out" in text.lower():
        return "timed out"
    return type(err).__name__
