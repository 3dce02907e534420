"""Worker processes with one torch and one OpenCV thread each, started safely by fork.

N worker processes x M intra-op threads oversubscribe the cores and slow decoding down, so
every worker (DataLoader workers, the frame store's builders, the preprocessing pool) pins
itself to one thread. OpenCV needs care: once a process has run a parallel OpenCV call its
thread pool exists, and `cv2.setNumThreads` in a child forked from it waits forever for the
pool's threads, which fork did not copy (seen as a DataLoader that never yields a batch
after the benchmark had written its crops with `cv2.resize`). Importing this module
registers a fork handler that shrinks the parent's pool to one thread for the instant of
the fork and restores it after, so a child starts with no pool threads to wait for.
"""

from __future__ import annotations

import os

import cv2
import torch

_saved_threads: list[int] = []


def _before_fork() -> None:
    _saved_threads.append(cv2.getNumThreads())
    cv2.setNumThreads(1)


def _after_fork_in_parent() -> None:
    if _saved_threads:
        cv2.setNumThreads(_saved_threads.pop())


def _after_fork_in_child() -> None:
    _saved_threads.clear()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


def one_thread_per_worker(worker_id: int | None = None) -> None:
    """Pin the calling worker process to one torch and one OpenCV thread (a worker_init_fn)."""
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
