"""Checks for detector backends whose weights and runtime the user installs."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType


def require_weights(weights_path: str | None, what: str, where: str) -> Path:
    """The weights file at `weights_path`, or a FileNotFoundError naming the config key.

    `what` names the file to get and `where` says where to download it.
    """
    if not weights_path:
        raise FileNotFoundError(
            f"faces.detector.weights_path is not set: this detector needs {what}. "
            f"Download it from {where} and pass faces.detector.weights_path=/path/to/file"
        )
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"faces.detector.weights_path={weights_path}: no such file. This detector "
            f"needs {what}; download it from {where}"
        )
    return path


def require_module(module: str, install: str) -> ModuleType:
    """Import `module`, or raise ModuleNotFoundError saying which package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ModuleNotFoundError(
            f"this detector needs the Python module {module!r}, which is not installed: `{install}`"
        ) from err
