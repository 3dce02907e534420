"""Timing: device-aware clocks, interleaved repeats, and rates reported as median with spread.

Device work is asynchronous, so a region on a CUDA device is timed with CUDA events (and a
region on the CPU with the host clock after a synchronize). Variants compared against each
other run interleaved, in an order rotated every repeat, so that drift of the machine (other
processes, clock changes, a warming page cache) falls on all of them alike; warm-up calls
are never timed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Rate:
    """One figure measured over repeats (images/s, TFLOP/s or a ratio): median and range."""

    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("a Rate needs at least one measured value")

    @property
    def median(self) -> float:
        return float(statistics.median(self.values))

    @property
    def min(self) -> float:
        return float(min(self.values))

    @property
    def max(self) -> float:
        return float(max(self.values))

    @property
    def spread(self) -> float:
        """Half the range over the median: a +-fraction that bounds every repeat."""
        return (self.max - self.min) / 2 / self.median if self.median else float("nan")

    def scaled(self, factor: float) -> Rate:
        return Rate(tuple(v * factor for v in self.values))

    def as_dict(self) -> dict[str, float | list[float]]:
        return {
            "median": self.median,
            "min": self.min,
            "max": self.max,
            "values": list(self.values),
        }


def synchronize(device: torch.device) -> None:
    """Wait for all queued work on `device` (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type != "cpu" and hasattr(torch, "accelerator"):
        torch.accelerator.synchronize(device)


def time_region(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds `fn()` takes, including the device work it queues.

    On CUDA the region lies between two events on the current stream: the start event
    completes once earlier work has, the end event after everything `fn` queued, and host
    waits inside `fn` (a data loader) show up as device idle time between them.
    """
    if device.type == "cuda":
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    synchronize(device)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - t0


def interleaved(
    variants: Mapping[str, Callable[[], object]],
    work: Mapping[str, float],
    repeats: int,
    device: torch.device,
) -> dict[str, Rate]:
    """Time every variant `repeats` times, interleaved; rate = work[name] / seconds.

    Repeat r runs the variants in the order rotated by r, so none is always first or last.
    Callers warm their variants up first (imports, caches, allocator, page cache).
    """
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be >= 1")
    names = list(variants)
    values: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            seconds = time_region(variants[name], device)
            values[name].append(work[name] / seconds)
    return {name: Rate(tuple(v)) for name, v in values.items()}


def paired_ratio(new: Rate, old: Rate) -> Rate:
    """Per-repeat ratios new/old: repeats ran interleaved, so each pair saw the same machine."""
    return Rate(tuple(n / o for n, o in zip(new.values, old.values, strict=True)))
