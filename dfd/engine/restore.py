"""A checkpoint folder back into a detector: rebuilt from its trusted config, its tensors
loaded, and named (which file, which method) wherever its scores or exports go; and, for
scoring new faces, either a checkpoint folder or a `dfd.export format=hf` folder
(`load_scoring_model`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
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
from dfd.engine.hf_folder import hf_identity, is_hf_folder, load_hf_detector
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


# meta.json keys a converted checkpoint (dfd.convert) carries, as MLflow tags of its evaluations
PROVENANCE_TAGS = {
    "peer": "dfd.checkpoint.peer",
    "format": "dfd.checkpoint.format",
    "source": "dfd.checkpoint.source",
    "sha256": "dfd.checkpoint.source_sha256",
    "preprocessing": "dfd.checkpoint.peer_preprocessing",
    "labels": "dfd.checkpoint.labels",
}


def read_meta(folder: Path) -> dict[str, Any]:
    """A checkpoint folder's ``meta.json`` (its selected epoch, or a converted detector's
    provenance); empty when the folder has none."""
    path = Path(folder) / META
    return json.loads(path.read_text()) if path.is_file() else {}


def released_name(folder: Path) -> str | None:
    """A converted detector's name (meta.json ``detector``); None for dfd's own checkpoints."""
    name = read_meta(folder).get("detector")
    return str(name) if name else None


def provenance_tags(folder: Path) -> dict[str, str]:
    """MLflow tags naming where a converted checkpoint came from (empty for dfd's own)."""
    meta = read_meta(folder)
    return {tag: str(meta[key])[:5000] for key, tag in PROVENANCE_TAGS.items() if key in meta}


def selected_val_metrics(folder: Path) -> dict[str, float]:
    """The selection-set metrics of the epoch a checkpoint holds (its ``meta.json`` ``val``);
    empty for a checkpoint without them (one written by dfd.convert)."""
    val = read_meta(folder).get("val") or {}
    return {k: float(v) for k, v in val.items() if isinstance(v, int | float)}


def checkpoint_identity(folder: Path, train_cfg: DictConfig) -> dict[str, Any]:
    """What names a checkpoint in predictions and exported models: its folder, the SHA-256 of
    its tensors, the method it was trained with and the epoch it was selected at."""
    digest = hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()
    epoch = read_meta(folder).get("epoch")
    peft = train_cfg.peft.get("config", train_cfg.peft)  # the peft method, else the adapter
    return {
        "path": str(folder.resolve()),
        "sha256": digest,
        "config": str((folder / CONFIG).resolve()),
        "backbone": str(train_cfg.backbone.get("name", "")),
        "data": str((train_cfg.get("data") or {}).get("name", "")),
        "peft": str(peft.get("_target_", "")),
        "head": str(train_cfg.head._target_),
        "epoch": epoch,
    }


@dataclass
class ScoringModel:
    """A detector ready to score new faces, with the settings its evaluation used.

    Attributes:
        detector: in eval mode, on the CPU.
        aggregate: how a video's frames' p(fake) become its score (``mean`` | ``median``).
        frames_per_video: the frames a video's score uses at most (None: every one).
        precision: the autocast its training (and evaluation) ran in (``no`` | ``bf16`` | ``fp16``).
        identity: what names it in outputs (`checkpoint_identity`, `hf_identity`).
        kind: ``checkpoint`` (a dfd checkpoint folder) or ``hf`` (a `dfd.export format=hf` folder).
    """

    detector: Detector
    aggregate: str
    frames_per_video: int | None
    precision: str
    identity: dict[str, Any]
    kind: str


def load_scoring_model(folder: Path, output_dir: Path | str | None = None) -> ScoringModel:
    """A dfd checkpoint folder or a Hugging Face folder `dfd.export` wrote, ready to score.

    Either is data, never code: a checkpoint's config goes through the trust check
    (`dfd.engine.trusted_config`), an export folder through `dfd.engine.hf_folder`'s.
    """
    folder = Path(folder).expanduser()
    if is_hf_folder(folder):
        detector, record = load_hf_detector(folder)
        scoring = record.get("scoring") or {}
        limit = scoring.get("frames_per_video")
        return ScoringModel(
            detector,
            str(scoring.get("aggregate") or "mean"),
            int(limit) if limit else None,
            str(scoring.get("precision") or "no"),
            hf_identity(folder, record),
            "hf",
        )
    detector, cfg = load_detector(folder, output_dir)
    limit = (cfg.data.get("frames_per_video") or {}).get("eval")
    return ScoringModel(
        detector,
        str(cfg.get("eval", {}).get("aggregate", "mean")),
        int(limit) if limit else None,
        str(cfg.trainer.get("precision", "no")),
        checkpoint_identity(folder, cfg),
        "checkpoint",
    )
