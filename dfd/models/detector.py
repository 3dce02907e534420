"""The detector: backbone (with its adapter) -> feature -> head -> logits over {real, fake}."""

from __future__ import annotations

import torch
from torch import nn

from dfd.models.backbone import VisionBackbone


class Detector(nn.Module):
    """Backbone feature extractor plus classification head."""

    def __init__(self, backbone: VisionBackbone, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Backbone features (B, D). The objective applies the head, because the paper's slerp
        augmentation acts between the two; keeping the backbone in `forward` lets DDP see it."""
        return self.backbone(pixel_values)

    def logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(pixel_values))  # (B, 2)

    @torch.no_grad()
    def fake_probability(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.logits(pixel_values).float().softmax(dim=-1)[:, 1]  # (B,)
