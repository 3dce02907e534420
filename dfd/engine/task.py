"""The module Accelerate prepares: the detector together with its objective.

It returns ``{"loss", "logits", "terms"}`` (timm's task objects do the same), so the loop
only calls backward on the loss and never unwraps the model to hand the head around; DDP
sees backbone and head in one forward.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from dfd.models.detector import Detector


class DetectionTask(nn.Module):
    """Detector + objective; `forward` with labels trains, without them only scores."""

    def __init__(self, detector: Detector, objective: Callable) -> None:
        super().__init__()
        self.detector = detector
        self.objective = objective

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        features = self.detector(pixel_values)  # (B, D)
        if labels is None:
            return {"logits": self.detector.head(features)}
        # the objective applies the head: the paper's slerp acts between feature and head
        return self.objective(features, labels, self.detector.head)
