"""Classification heads on top of the backbone feature. Two classes: 0 = real, 1 = fake."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class LinearHead(nn.Module):
    """logits = W f + b on the raw feature f."""

    normalizes_features = False

    def __init__(self, in_features: int, num_classes: int = 2) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc(features)  # (B, C)


class LinearNormHead(LinearHead):
    """The paper's "Norm" head: z = f / ||f||_2, logits = W z + b (no scale, no margin)."""

    normalizes_features = True

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc(F.normalize(features, dim=-1))


class ArcFaceHead(nn.Module):
    """Additive angular margin head (Deng et al., CVPR 2019, "ArcFace").

    logits_k = s * cos(theta_k + m * [k == y]) with theta_k the angle between the normalized
    feature and the normalized class weight w_k. The margin is applied only when labels are
    given (training); at evaluation logits = s * cos(theta_k).
    """

    normalizes_features = True

    def __init__(
        self, in_features: int, num_classes: int = 2, s: float = 16.0, m: float = 0.2
    ) -> None:
        super().__init__()
        if not 0.0 <= m < math.pi / 2:
            raise ValueError(f"head.m={m} must lie in [0, pi/2)")
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.xavier_uniform_(self.weight)
        self.s = s
        self.m = m

    def cosines(self, features: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(features, dim=-1), F.normalize(self.weight, dim=-1))  # (B, C)

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        cos = self.cosines(features)
        if labels is None:
            return self.s * cos
        theta = torch.acos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
        target = F.one_hot(labels, cos.shape[-1]).bool()
        return self.s * torch.where(target, torch.cos(theta + self.m), cos)
