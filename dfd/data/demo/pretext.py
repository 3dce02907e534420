"""Pretext pretraining of the demo's tiny CLIP vision encoder on clean rendered faces.

LN-tuning only re-weights features that pretraining put into the encoder, so offline dfd
pretrains a tiny `CLIPVisionModel` itself. The pretext is deliberately unrelated to the
manipulations the demo tests: from clean faces (no blends) regress the image's 4x4
mean-colour grid and the face's geometry (centre and half-axes). That teaches colour and
face layout, the features a detector can later re-weight. Measured in
``/work/shared/reference/demo.md``: with this pretext LN-tuning reaches a mean target
video AUC of about 0.76, against 0.46 from a random initialisation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel

from dfd.data.demo.render import IMAGE_SIZE, jitter_pose, render_face, sample_identity, to_uint8

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
GRID = 4
# Keeps pretext images out of the demo's random streams (those use four-number seeds).
_PRETEXT_STREAM = 1_000_003


def tiny_clip_config() -> CLIPVisionConfig:
    """The demo backbone: a 4-layer, 64-wide CLIP ViT on 64x64 images with 8x8 patches."""
    return CLIPVisionConfig(
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        patch_size=8,
        image_size=IMAGE_SIZE,
        hidden_act="quick_gelu",
    )


def to_pixel_values(images: np.ndarray, size: int = IMAGE_SIZE) -> torch.Tensor:
    """CLIP's input pipeline on uint8 ``(N, H, W, 3)`` images: ``(N, 3, size, size)`` float32.

    Bicubic resize to `size` (a no-op for the 64x64 renders, kept so the pipeline is the one
    the saved `CLIPImageProcessor` describes), then CLIP's mean/std normalisation.
    """
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def pretext_targets(image: np.ndarray, geometry: np.ndarray) -> np.ndarray:
    """Regression target of one uint8 image: 4x4 mean-colour grid (48) then cx, cy, a, b (4).

    Colours are in [0, 1] and the geometry in units of the image side, so both parts start
    on a comparable scale before standardisation.
    """
    h, w = image.shape[:2]
    cells = image.reshape(GRID, h // GRID, GRID, w // GRID, 3).mean(axis=(1, 3)) / 255.0
    return np.concatenate([cells.reshape(-1), geometry / IMAGE_SIZE]).astype(np.float32)


def render_pretext_set(n: int, seed: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` clean faces, each a new identity: uint8 ``(n, 64, 64, 3)`` and targets ``(n, 52)``.

    Image i depends only on ``(seed, offset + i)``, so a held-out set is simply another
    offset. No manipulation ever appears here.
    """
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    targets = np.empty((n, GRID * GRID * 3 + 4), dtype=np.float32)
    for i in range(n):
        rng = np.random.default_rng([seed, _PRETEXT_STREAM, offset + i])
        identity = sample_identity(rng)
        pose = jitter_pose(identity.pose, rng)
        images[i] = to_uint8(render_face(identity, pose, rng))
        targets[i] = pretext_targets(images[i], pose.geometry())
    return images, targets


class PretextRegressor(nn.Module):
    """The backbone plus a linear regressor on ``pooler_output``, the feature dfd detects on."""

    def __init__(self, backbone: CLIPVisionModel, n_targets: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.config.hidden_size, n_targets)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        feature = self.backbone(pixel_values=pixel_values).pooler_output  # (B, D)
        return self.head(feature)  # (B, T)


@dataclass(frozen=True)
class PretextResult:
    """What a pretext run produced: the trained backbone and the numbers for its README."""

    backbone: CLIPVisionModel
    train_loss: float
    heldout_loss: float
    heldout_loss_at_init: float
    seconds: float


def train_pretext(
    images: int = 4000,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    heldout: int = 400,
    log_every: int = 1,
) -> PretextResult:
    """Train a fresh tiny CLIP encoder on the pretext task with AdamW and MSE.

    Targets are standardised with the training set's mean and std, so the loss reads as a
    fraction of the targets' variance (1.0 = predicting the mean). Losses reported are the
    last epoch's mean training loss and the loss on `heldout` faces never trained on.
    """
    start = time.perf_counter()
    torch.manual_seed(seed)
    x_train, y_train = render_pretext_set(images, seed)
    x_held, y_held = render_pretext_set(heldout, seed, offset=images)
    mean, std = y_train.mean(axis=0), y_train.std(axis=0) + 1e-6
    px_train = to_pixel_values(x_train)
    px_held = to_pixel_values(x_held)
    t_train = torch.from_numpy((y_train - mean) / std)
    t_held = torch.from_numpy((y_held - mean) / std)

    model = PretextRegressor(CLIPVisionModel(tiny_clip_config()), t_train.shape[1])
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed)

    def heldout_loss() -> float:
        model.eval()
        with torch.no_grad():
            return float(F.mse_loss(model(px_held), t_held))

    at_init = heldout_loss()
    train_loss = float("nan")
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(px_train), generator=order)
        total, count = 0.0, 0
        for i in range(0, len(perm), batch_size):
            idx = perm[i : i + batch_size]
            loss = F.mse_loss(model(px_train[idx]), t_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            count += len(idx)
        train_loss = total / count
        if log_every and (epoch + 1) % log_every == 0:
            print(f"epoch {epoch + 1}/{epochs}  train mse {train_loss:.4f}", flush=True)
    return PretextResult(
        backbone=model.backbone,
        train_loss=train_loss,
        heldout_loss=heldout_loss(),
        heldout_loss_at_init=at_init,
        seconds=time.perf_counter() - start,
    )
