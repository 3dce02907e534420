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


# At or below this many cores, `threads=null` means one torch thread (see `set_torch_threads`)
FEW_CORES = 4
# torch's own choice (one per core, or OMP_NUM_THREADS), before dfd set anything
_TORCH_DEFAULT_THREADS = torch.get_num_threads()


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def set_torch_threads(threads: int | None, key: str = "trainer.threads") -> int:
    """Set torch's intra-op threads of the calling (main) process; return the number set.

    An integer is taken as it is. None picks: one thread on a machine with at most
    `FEW_CORES` cores, where torch's OpenMP threads spin-wait for each other and for the
    loader workers (on a shared 2-core CPU, 2 threads ran a tiny_clip epoch up to 10x
    slower than 1), and torch's own default (one per core) above that, where the big
    matrix products of a CPU run gain from them and a GPU run does not care. Anything else
    is a `UserError` naming `key`.
    """
    from dfd.runtime.errors import UserError

    if threads is None:
        chosen = 1 if available_cores() <= FEW_CORES else _TORCH_DEFAULT_THREADS
    elif isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1:
        chosen = threads
    else:
        raise UserError(
            f"{key}={threads!r} must be a positive integer (torch threads of the main process) "
            f"or null (1 on a machine with at most {FEW_CORES} cores, else torch's default)"
        )
    torch.set_num_threads(chosen)
    return chosen
