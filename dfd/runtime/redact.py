"""Passwords out of everything dfd prints or stores: one masking rule for URIs with credentials.

A storage or tracking URI may carry a password (``postgresql+psycopg2://user:pw@host/db``,
``http://user:pw@mlflow-host:5000``). dfd needs it to connect, and nowhere else: every
message, log record, MLflow param or tag, saved config (Hydra's ``.hydra/*.yaml``, a
checkpoint's ``config.yaml``, a resume state) and traceback goes through `redact` first,
which keeps the user name and the host (what a reader needs to tell stores apart) and
replaces the password with ``***``, as SQLAlchemy's ``render_as_string(hide_password=True)``
writes it.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

MASK = "***"

# scheme://user:password@host... ; the user info ends at the last "@" of the authority (a
# password with a raw "@" in it is masked whole), the authority at the first "/" or space
_URI_CREDENTIALS = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s'\"]*):(?P<password>[^/\s'\"]*)@"
)


def redact(text: Any) -> str:
    """`text` (any object, as its string) with the password of every URI in it masked."""
    text = str(text)
    if "://" not in text:
        return text
    return _URI_CREDENTIALS.sub(_masked, text)


def _masked(match: re.Match) -> str:
    return f"{match['scheme']}{match['user']}:{MASK}@"


def redact_values(value: Any) -> Any:
    """A plain config (dicts, lists, scalars) with every string in it passed through `redact`."""
    if isinstance(value, dict):
        return {k: redact_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_values(v) for v in value)
    if isinstance(value, str):
        return redact(value)
    return value


def redact_files(paths: Iterable[Path]) -> None:
    """Rewrite each text file in `paths` with its passwords masked (files without one are left
    untouched): Hydra saves the command line and the composed config of a run in clear."""
    for path in paths:
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError):
            continue
        masked = redact(text)
        if masked != text:
            Path(path).write_text(masked)


class RedactingFilter(logging.Filter):
    """A logging filter that masks passwords in every record it passes (message and args)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def redact_logging() -> None:
    """Mask passwords in every record of every handler configured so far: the root logger's
    (the console and Hydra's job log file) and those libraries attach to their own loggers
    (MLflow's writes to stderr without propagating)."""
    loggers = [logging.getLogger()]
    loggers += [
        x for x in logging.Logger.manager.loggerDict.values() if isinstance(x, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())


class _RedactingStream:
    """A text stream that masks passwords in what is written to it (a library's own
    ``sys.stdout.write``, e.g. MLflow's "View run ... at: <tracking URI>" line)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(redact(text) if "://" in text else text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def redacted_output() -> Iterator[None]:
    """Within the block, `sys.stdout` and `sys.stderr` mask passwords in what they print."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _RedactingStream(saved[0]), _RedactingStream(saved[1])
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
