"""Wall time and peak resident memory of one piece of work, attributable to that work alone.

Two things make a peak RSS honest: the process holds nothing from earlier work, and the peak
is read over the work only. `isolated` runs a function in a fresh child process forked from
a server process that imported dfd once (multiprocessing's forkserver), so every stage starts
from the same clean state without paying the imports again; inside, `Probe` resets the
kernel's high-water mark just before the work (writing ``5`` to ``/proc/self/clear_refs``,
Linux >= 4.0) and reads ``VmHWM`` after it. Where the reset is not allowed the peak is the
child's whole-life ``ru_maxrss``, which then includes its setup; `Probe.method` says which.
``VmHWM`` counts the pages of memory-mapped files the work touched (a frame store read
through the page cache: shared between processes and dropped by the kernel under pressure)
as well as what the process allocated, so the probe also samples ``RssAnon``, the allocated
part alone.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1 << 20


def _status_bytes(field: str) -> int | None:
    """A ``VmXXX`` line of /proc/self/status in bytes; None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def rss_bytes() -> int:
    """The resident set of this process now."""
    now = _status_bytes("VmRSS")
    return now if now is not None else peak_rss_bytes()


def peak_rss_bytes() -> int:
    """The high-water mark of this process's resident set (since the last reset)."""
    peak = _status_bytes("VmHWM")
    if peak is not None:
        return peak
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def reset_peak_rss() -> bool:
    """Set the high-water mark to the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its waited-for children (loader workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class _AnonSampler(threading.Thread):
    """Samples ``RssAnon`` (memory the process itself allocated, not files it maps) every
    `interval` seconds; the kernel keeps no high-water mark of it alone."""

    def __init__(self, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = _status_bytes("RssAnon") or 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self.interval):
            self.peak = max(self.peak, _status_bytes("RssAnon") or 0)

    def finish(self) -> int:
        self._done.set()
        self.join()
        return max(self.peak, _status_bytes("RssAnon") or 0)


@dataclass
class Probe:
    """Times a block and reads the peak RSS over it: ``with probe: work()``.

    After the block: `seconds` (wall), `cpu_seconds` (user + system, children included),
    `start_rss` (bytes when it began), `peak_rss` (the kernel's high-water mark during it:
    memory the process allocated plus the pages of files it maps, such as a frame store read
    through the page cache), `start_anon` and `peak_anon` (allocated memory alone, sampled
    every 10 ms) and `method` (how the peak was attributed).
    """

    seconds: float = float("nan")
    cpu_seconds: float = float("nan")
    start_rss: int = 0
    peak_rss: int = 0
    start_anon: int = 0
    peak_anon: int = 0
    method: str = ""
    used: bool = False

    def __enter__(self) -> Probe:
        if self.used:
            raise RuntimeError("a Probe times one block; make another for the next")
        self.used = True
        self.method = "VmHWM reset at start" if reset_peak_rss() else "ru_maxrss of the process"
        self.start_rss = rss_bytes()
        self.start_anon = _status_bytes("RssAnon") or 0
        self._sampler = _AnonSampler()
        self._sampler.start()
        self._cpu0 = _cpu_seconds()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0
        self.cpu_seconds = _cpu_seconds() - self._cpu0
        self.peak_anon = self._sampler.finish()
        self.peak_rss = peak_rss_bytes()

    def record(self) -> dict[str, Any]:
        if not self.used:
            raise RuntimeError("the stage never entered its Probe")
        return {
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "peak_rss_mib": self.peak_rss / MIB,
            "growth_mib": max(self.peak_rss - self.start_rss, 0) / MIB,
            "anon_growth_mib": max(self.peak_anon - self.start_anon, 0) / MIB,
            "start_rss_mib": self.start_rss / MIB,
            "method": self.method,
        }


class StageFailed(RuntimeError):
    """A function run by `isolated` raised or its process died; the message says how."""


def _child(conn, fn: Callable, args: Sequence, log: str | None) -> None:
    if log:  # the stage's own output (progress lines, warnings) goes to its log file
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    try:
        conn.send(("ok", fn(*args)))
    except BaseException as err:  # noqa: BLE001 - reported to the parent, which raises
        traceback.print_exc()
        conn.send(("error", f"{type(err).__name__}: {err}"))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        conn.close()


_context = None


def isolated(
    fn: Callable[..., Any],
    args: Sequence = (),
    preload: Sequence[str] = (),
    log: Path | None = None,
) -> Any:
    """``fn(*args)`` in a fresh process forked from the forkserver; returns what it returned.

    `fn` and `args` must pickle (a module-level function, paths, strings). `preload` names
    modules the server imports once before its first fork (set on the first call only).
    `log` receives the child's stdout and stderr. Raises `StageFailed` naming the error, or
    the exit code of a child that died (killed for memory, a crash).
    """
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(list(preload))
    parent, child = _context.Pipe(duplex=False)
    process = _context.Process(
        target=_child, args=(child, fn, tuple(args), str(log) if log else None)
    )
    process.start()
    child.close()
    try:
        status, value = parent.recv()
    except EOFError:
        process.join()
        raise StageFailed(
            f"{getattr(fn, '__name__', fn)} died with exit code {process.exitcode}"
            + (f" (see {log})" if log else "")
        ) from None
    process.join()
    if status != "ok":
        raise StageFailed(
            f"{getattr(fn, '__name__', fn)} failed: {value}" + (f" (see {log})" if log else "")
        )
    return value
