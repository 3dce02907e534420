"""Functions that `dfd.bench.memory.isolated` runs in a child process during the tests (a
module of its own, light to import, since the child imports it to find them)."""

from __future__ import annotations

from typing import Any

from dfd.bench.memory import MIB, Probe


def allocate(mib: int, before_mib: int = 0) -> dict[str, Any]:
    """Allocate `before_mib` untimed, then `mib` MiB inside a probe; the probe's record."""
    setup = bytearray(before_mib * MIB)  # noqa: F841 - held through the probe: the baseline
    probe = Probe()
    with probe:
        block = bytearray(mib * MIB)
        block[::4096] = b"x" * len(block[::4096])  # touch every page
    return probe.record()


def fail() -> None:
    raise ValueError("this stage fails on purpose")
