"""Processes on one machine taking turns: an exclusive file lock, and whether a pid is alive.

Used by the MLflow sqlite store's first-use lock (`dfd.tracking`), its dead-run check, and
the frame store's build lock and leftover clean-up (`dfd.data.store`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


@contextlib.contextmanager
def file_lock(path: Path, required: bool = True) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` (created if missing) for the block.

    With ``required=False`` a file system that cannot lock (Lustre mounted without flock:
    ENOSYS) runs the block unlocked, with a warning, instead of failing.
    """
    with open(path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
        except OSError as err:
            if required:
                raise
            log.warning("cannot lock %s (%s): going on without the lock", path, err)
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
