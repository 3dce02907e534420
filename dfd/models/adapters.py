"""Which backbone parameters train: PEFT methods from the `peft` library, full fine-tuning, linear probe.

Each `peft` config option instantiates one of these; the trainer only calls `apply`.
"""

from __future__ import annotations

import warnings

from peft import PeftConfig, get_peft_model
from peft.tuners.ln_tuning.layer import LNTuningLayer
from torch import nn


class PeftAdapter:
    """Wrap the backbone's transformers model with a `peft` method (LN-tuning, LoRA, ...)."""

    def __init__(self, config: PeftConfig) -> None:
        self.config = config

    def apply(self, model: nn.Module) -> nn.Module:
        with warnings.catch_warnings():
            # LN-tuning targets plain nn.LayerNorm, which peft supports yet warns about
            warnings.filterwarnings(
                "ignore", message="Unsupported layer type", category=UserWarning
            )
            return get_peft_model(model, self.config)


class FullFineTuning:
    """Every backbone parameter trains."""

    def apply(self, model: nn.Module) -> nn.Module:
        for p in model.parameters():
            p.requires_grad_(True)
        return model


class FrozenBackbone:
    """Linear probe: the backbone is frozen, only the head trains."""

    def apply(self, model: nn.Module) -> nn.Module:
        for p in model.parameters():
            p.requires_grad_(False)
        return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters of `model`.

    LN-tuning in `peft` keeps a frozen copy of every tuned LayerNorm beside the trainable
    one, and only the trainable copy is used in the forward pass. `total` counts the model
    as it computes: the frozen originals that peft swapped out are not counted, so LN-tuned
    ViT-L/14 totals the same 303,179,776 backbone parameters as the plain model. Adapter
    parameters that add to the computation (LoRA's A and B) are counted.
    """
    shadowed: set[int] = set()
    for module in model.modules():
        if isinstance(module, LNTuningLayer):
            shadowed.update(id(p) for p in module.base_layer.parameters())
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen or id(p) in shadowed:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return trainable, total
