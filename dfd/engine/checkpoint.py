"""Checkpoints: the trainable tensors as safetensors plus the resolved config as YAML.

Only tensors that train are saved (for LN-tuning of ViT-L/14: 104,450 numbers), and they
are loaded with safetensors, never unpickled. The backbone's frozen weights come from
`backbone.name_or_path` when the checkpoint is loaded into a model built from its config.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file, save_file
from torch import nn

WEIGHTS, CONFIG, META = "trainable.safetensors", "config.yaml", "meta.json"


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached CPU copies of the parameters that train, by name."""
    return {
        n: p.detach().to("cpu", copy=True).contiguous()
        for n, p in model.named_parameters()
        if p.requires_grad
    }


def save_checkpoint(
    folder: Path, state: dict[str, torch.Tensor], cfg: DictConfig, meta: dict
) -> Path:
    """Write weights, config and metadata into `folder`, each atomically (temp file, then rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{WEIGHTS}.tmp"
    save_file(state, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, folder / WEIGHTS)
    (folder / f".{CONFIG}.tmp").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    os.replace(folder / f".{CONFIG}.tmp", folder / CONFIG)
    (folder / f".{META}.tmp").write_text(json.dumps(meta, indent=2))
    os.replace(folder / f".{META}.tmp", folder / META)
    return folder


def load_trainable(
    model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint"
) -> None:
    """Copy saved trainable tensors into `model`; every trainable parameter must be present."""
    params = dict(model.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    missing = sorted(trainable - state.keys())
    unknown = sorted(state.keys() - params.keys())
    if missing or unknown:
        raise KeyError(
            f"{source} does not match the model built from the config: missing {missing[:5]} "
            f"({len(missing)}), unknown {unknown[:5]} ({len(unknown)}). Build the model with the "
            f"checkpoint's own config.yaml."
        )
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(t.to(params[n].device, params[n].dtype))


def load_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], DictConfig]:
    """Read a checkpoint folder written by `save_checkpoint`."""
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(
            f"no {WEIGHTS} in {folder}: pass the checkpoint folder a training run wrote"
        )
    return load_file(str(weights)), OmegaConf.load(folder / CONFIG)
