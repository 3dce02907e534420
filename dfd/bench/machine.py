"""What a benchmark ran on: CPU model and cores, GPU, and the versions of the stack."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

import torch

import dfd

_PACKAGES = ("torch", "transformers", "peft", "accelerate", "pillow", "opencv-python-headless")


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask), which a container may cap."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def describe_machine(device: torch.device) -> dict[str, str]:
    """Machine and versions as flat strings, for printing and for MLflow params."""
    info = {
        "cpu": cpu_model(),
        "cores": f"{usable_cores()} usable of {os.cpu_count()}",
        "torch_threads": str(torch.get_num_threads()),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "none",
        "python": platform.python_version(),
        "dfd": dfd.__version__,
    }
    for package in _PACKAGES:
        try:
            info[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            info[package] = "not installed"
    if device.type == "cuda":
        info["cuda"] = str(torch.version.cuda)
    return info
