"""A checkpoint folder back into a detector: rebuilt from its trusted config, its tensors
loaded, and named (which file, which method) wherever its scores or exports go."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from accelerate.utils import set_seed
from omegaconf import DictConfig

from dfd.engine.checkpoint import (
    CONFIG,
    META,
    WEIGHTS,
    load_trainable,
    read_checkpoint,
    resolve_checkpoint_config,
)
from dfd.models.build import build_detector
from dfd.models.detector import Detector


def load_detector(
    folder: Path, output_dir: Path | str | None = None
) -> tuple[Detector, DictConfig]:
    """Rebuild a checkpoint's detector from its trusted config and load its tensors.

    Returns ``(detector, cfg)`` with the detector in eval mode on the CPU. A backbone built
    at random (``backbone.pretrained=false``) gets its frozen weights back from the
    training seed, as training built them.
    """
    folder = Path(folder).expanduser()
    state, raw = read_checkpoint(folder)
    cfg = resolve_checkpoint_config(raw, output_dir or folder, str(folder / CONFIG))
    set_seed(int(cfg.seed))
    model, _ = build_detector(cfg)
    load_trainable(model, state, source=str(folder))
    return model.eval(), cfg


def selected_val_metrics(folder: Path) -> dict[str, float]:
    """The selection-set metrics of the epoch a checkpoint holds (its ``meta.json`` ``val``);
    empty for a checkpoint without them (one written by dfd.convert)."""
    meta_path = Path(folder) / META
    if not meta_path.is_file():
        return {}
    val = json.loads(meta_path.read_text()).get("val") or {}
    return {k: float(v) for k, v in val.items() if isinstance(v, int | float)}


def checkpoint_identity(folder: Path, train_cfg: DictConfig) -> dict[str, Any]:
    """What names a checkpoint in predictions and exported models: its folder, the SHA-256 of
    its tensors, the method it was trained with and the epoch it was selected at."""
    digest = hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()
    meta_path = folder / META
    epoch = json.loads(meta_path.read_text()).get("epoch") if meta_path.is_file() else None
    peft = train_cfg.peft.get("config", train_cfg.peft)  # the peft method, else the adapter
    return {
        "path": str(folder.resolve()),
        "sha256": digest,
        "config": str((folder / CONFIG).resolve()),
        "backbone": str(train_cfg.backbone.get("name", "")),
        "peft": str(peft.get("_target_", "")),
        "head": str(train_cfg.head._target_),
        "epoch": epoch,
    }
