"""Optimizer and schedule: AdamW without weight decay on norm and bias parameters, cosine per step."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn


def parameter_groups(model: nn.Module, weight_decay: float, no_decay: Sequence[str]) -> list[dict]:
    """Trainable parameters split into a decayed group and a group without weight decay.

    A parameter skips decay when its name contains any of `no_decay` (case-insensitive),
    e.g. ``bias`` and ``norm``: decaying LayerNorm gains toward 0 would fight LN-tuning.
    """
    decay, skip = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (skip if any(k.lower() in name.lower() for k in no_decay) else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": skip, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(
    model: nn.Module,
    optimizer_factory: Callable[..., torch.optim.Optimizer],
    weight_decay: float,
    no_decay: Sequence[str],
) -> torch.optim.Optimizer:
    """Instantiate the configured optimizer (a Hydra partial) on the model's parameter groups."""
    groups = parameter_groups(model, weight_decay, no_decay)
    if not groups:
        raise ValueError("no parameter is trainable: check the `peft` choice and the head")
    return optimizer_factory(groups)
