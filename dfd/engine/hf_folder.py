"""A Hugging Face folder written by `dfd.export format=hf`, back into a detector, or refused.

Such a folder is data from anyone, like a checkpoint folder, and nothing in it is run: its
``modeling_dfd.py`` must be byte for byte dfd's own `dfd.models.hf_detector` (compared by
SHA-256), and dfd then builds the model with that module of its own, not with the copy. The
encoder's ``model_type`` must map through transformers' ``AutoModel`` to a class that one of
dfd's backbone options names (the allow-list `dfd.engine.trusted_config` applies to
checkpoint configs), the image processor must be a transformers class named in plain JSON
(no ``auto_map``), and the weights are safetensors.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import transformers

from dfd.data.spec import InputSpec, ProcessorFields
from dfd.engine.trusted_config import allowed_imports
from dfd.models import hf_detector
from dfd.models.backbone import VisionBackbone, feature_dim_of
from dfd.models.detector import Detector

CONFIG, WEIGHTS, PROCESSOR = "config.json", "model.safetensors", "preprocessor_config.json"
MODELING_FILE = "modeling_dfd.py"
MODEL_TYPE = hf_detector.DfdDetectorConfig.model_type
AUTO_MAP = {
    "AutoConfig": "modeling_dfd.DfdDetectorConfig",
    "AutoModel": "modeling_dfd.DfdDetector",
}


class HFFolderError(ValueError):
    """A folder that is not a dfd Hugging Face export, or one whose contents are refused."""


def modeling_source() -> Path:
    """dfd's own modeling file, the one every export ships as ``modeling_dfd.py``."""
    return Path(hf_detector.__file__)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_hf_folder(folder: Path) -> bool:
    """Whether `folder` looks like a Hugging Face model folder (a ``config.json``, no dfd
    ``trainable.safetensors``); whether dfd accepts it is `check_hf_folder`'s call."""
    folder = Path(folder).expanduser()
    return (folder / CONFIG).is_file() and not (folder / "trainable.safetensors").is_file()


def encoder_class(model_type: str) -> str:
    """The import path of the class ``AutoModel`` builds for an encoder ``model_type``."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    name = MODEL_MAPPING_NAMES.get(model_type)
    return f"transformers.{name}" if name else ""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise HFFolderError(f"{path} is not readable JSON: {err}") from err
    if not isinstance(data, dict):
        raise HFFolderError(f"{path} must hold a JSON object")
    return data


def check_hf_folder(folder: Path) -> dict[str, Any]:
    """The folder's ``config.json`` once every check passed; `HFFolderError` naming what failed.

    Nothing of the folder is imported or run: the checks read JSON and hash a file.
    """
    folder = Path(folder).expanduser()
    fix = "export the checkpoint again with `python -m dfd.export format=hf` of this dfd"
    for name in (CONFIG, WEIGHTS, PROCESSOR, MODELING_FILE):
        if not (folder / name).is_file():
            raise HFFolderError(
                f"no {name} in {folder}: pass a checkpoint folder of a dfd run or a folder "
                f"written by `python -m dfd.export format=hf`"
            )
    config = _read_json(folder / CONFIG)
    if config.get("model_type") != MODEL_TYPE or config.get("auto_map") != AUTO_MAP:
        raise HFFolderError(
            f"{folder / CONFIG} is not a dfd detector (model_type {config.get('model_type')!r}, "
            f"auto_map {config.get('auto_map')!r}): refused, nothing in it was run; {fix}"
        )
    theirs, ours = sha256_of(folder / MODELING_FILE), sha256_of(modeling_source())
    if theirs != ours:
        raise HFFolderError(
            f"{folder / MODELING_FILE} is not dfd's own modeling file (sha256 {theirs[:12]}..., "
            f"dfd's {ours[:12]}...): refused, nothing in it was run; {fix}"
        )
    model_type = (config.get("encoder") or {}).get("model_type")
    cls = encoder_class(str(model_type))
    if cls not in allowed_imports()["model_class"]:
        raise HFFolderError(
            f"{folder / CONFIG}: encoder model_type {model_type!r} (class {cls or 'none'}) is not "
            f"one of dfd's backbone classes: refused; {fix}"
        )
    if (config.get("head") or {}).get("kind") not in hf_detector.HEAD_KINDS:
        raise HFFolderError(
            f"{folder / CONFIG}: head {config.get('head')!r} is not one of "
            f"{hf_detector.HEAD_KINDS}: refused; {fix}"
        )
    processor = _read_json(folder / PROCESSOR)
    kind = str(processor.get("image_processor_type", ""))
    if "auto_map" in processor or not kind.isidentifier() or not hasattr(transformers, kind):
        raise HFFolderError(
            f"{folder / PROCESSOR}: image_processor_type {kind!r} is not a transformers image "
            f"processor (or the file names code by auto_map): refused; {fix}"
        )
    return config


def input_spec_of(folder: Path) -> InputSpec:
    """The input spec the folder's ``preprocessor_config.json`` describes, read as plain JSON."""
    data = _read_json(Path(folder) / PROCESSOR)
    names = {f.name for f in fields(ProcessorFields)}
    return InputSpec.from_processor(
        ProcessorFields(**{k: v for k, v in data.items() if k in names})
    )


def load_hf_detector(folder: Path) -> tuple[Detector, dict[str, Any]]:
    """A checked export folder as a dfd `Detector` (eval mode, CPU) and its ``dfd`` record.

    The model is dfd's own `DfdDetector` loaded from the folder's safetensors, so its
    forward pass is the one ``AutoModel.from_pretrained(folder, trust_remote_code=True)``
    runs; wrapped as a `Detector`, it goes through dfd's scoring code (`dfd.scoring.faces`).
    """
    folder = Path(folder).expanduser()
    config = check_hf_folder(folder)
    model = hf_detector.DfdDetector.from_pretrained(str(folder.resolve()), use_safetensors=True)
    record = dict(config.get("dfd") or {})
    name = str((record.get("backbone") or {}).get("name", "encoder"))
    backbone = VisionBackbone(
        model.encoder,
        input_spec_of(folder),
        feature_dim_of(model.encoder.config, name),
        layernorm_modules=[],
        feature=model.config.feature,
        name=name,
    )
    return Detector(backbone, model.head).eval(), record


def hf_identity(folder: Path, record: dict[str, Any]) -> dict[str, Any]:
    """What names an export folder in predictions: the folder, the SHA-256 of its weights,
    and the checkpoint it was exported from (as the export recorded it)."""
    folder = Path(folder).expanduser()
    source = dict(record.get("checkpoint") or {})
    return {
        "path": str(folder.resolve()),
        "sha256": sha256_of(folder / WEIGHTS),
        "config": str((folder / CONFIG).resolve()),
        "backbone": str(source.get("backbone", "")),
        "data": str(source.get("data", "")),
        "peft": str(source.get("peft", "")),
        "head": str(source.get("head", "")),
        "epoch": source.get("epoch"),
        "exported_from": source.get("path"),
    }
