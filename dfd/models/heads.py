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

    logits_k = s * phi(theta_k) for the target class and s * cos(theta_k) otherwise, with
    theta_k the angle between the normalized feature and the normalized class weight w_k and
    phi(theta) = cos(theta + m) while theta + m <= pi. Past that angle cos(theta + m) would rise
    again, so phi falls back to cos(theta) - m sin(m): the standard non-easy margin of
    insightface (deepinsight/insightface's MXNet ArcFace, `easy_margin=False`; the PyTorch port
    ArcMarginProduct in ronghuaiyang/arcface-pytorch, models/metrics.py):
    phi = cos(theta + m) if cos(theta) > th else cos(theta) - mm, th = cos(pi - m),
    mm = sin(pi - m) * m. phi is then non-increasing over [0, pi].

    cos(theta + m) is computed as cos(theta) cos(m) - sin(theta) sin(m) from the cosine, not
    through acos (whose derivative is infinite at +-1), and in fp32 with autocast disabled: in
    bf16 the cosine of a feature aligned with its class weight rounds to 1 exactly and the
    gradients became non-finite. The margin applies only when labels are given (training); at
    evaluation logits = s * cos(theta_k).
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
        self.threshold = math.cos(math.pi - m)
        self.fallback_shift = math.sin(math.pi - m) * m

    def cosines(self, features: torch.Tensor) -> torch.Tensor:
        """cos(theta_k) in fp32 outside autocast, (B, C)."""
        with torch.autocast(device_type=features.device.type, enabled=False):
            z = F.normalize(features.float(), dim=-1)
            w = F.normalize(self.weight.float(), dim=-1)
            return F.linear(z, w).clamp(-1.0, 1.0)

    def margin(self, cos: torch.Tensor) -> torch.Tensor:
        """phi(theta) from cos(theta): cos(theta + m) with the fallback past theta = pi - m."""
        # sin(theta) >= 0 on [0, pi]; the floor keeps sqrt's derivative finite at theta = 0
        sin = (1.0 - cos * cos).clamp_min(1e-12).sqrt()
        phi = cos * math.cos(self.m) - sin * math.sin(self.m)
        return torch.where(cos > self.threshold, phi, cos - self.fallback_shift)

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        cos = self.cosines(features)  # (B, C) fp32
        if labels is None:
            return self.s * cos
        with torch.autocast(device_type=cos.device.type, enabled=False):
            target = F.one_hot(labels, cos.shape[-1]).bool()
            return self.s * torch.where(target, self.margin(cos), cos)
