"""A dfd deepfake detector as a transformers model: the file `dfd.export format=hf` ships.

This module is copied verbatim into every exported folder as ``modeling_dfd.py`` (named by
``auto_map`` in its ``config.json``), so that
``transformers.AutoModel.from_pretrained(folder, trust_remote_code=True)`` loads the detector
with torch and transformers only. It therefore imports nothing but torch and transformers.
dfd itself never runs the copy in a folder: it loads a folder with this module, its own,
after checking that the folder's copy is byte for byte this file (`dfd.engine.hf_folder`).

The encoder is a transformers vision model rebuilt from its saved config through
``AutoModel`` (CLIP, SigLIP, DINOv2, ConvNeXt vision towers), with the fine-tuned weights
already merged in (LN-tuning, LoRA); the head is the detector's, over two classes
0 = real, 1 = fake. ``forward(pixel_values)`` returns ``logits`` (B, 2) and
``p_fake`` (B,) = softmax(logits)[:, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

HEAD_KINDS = ("linear", "linear_norm", "cosine")


class DfdDetectorConfig(PretrainedConfig):
    """The detector's configuration: the encoder's own config, the feature, the head.

    Attributes:
        encoder: the encoder's config as a dict (``model_type`` and its fields), rebuilt
            with ``AutoConfig.for_model``.
        feature: the encoder output used as the image feature (``pooler_output``).
        head: ``{"kind": "linear" | "linear_norm" | "cosine", "in_features": D,
            "num_classes": 2}`` plus ``"scale"`` for ``cosine`` (an ArcFace head at
            inference: scale * cos(feature, class weight)).
        dfd: what dfd records about the detector (its checkpoint, protocol and scoring
            settings); unused by the model itself.
    """

    model_type = "dfd_detector"

    def __init__(
        self,
        encoder: dict | None = None,
        feature: str = "pooler_output",
        head: dict | None = None,
        dfd: dict | None = None,
        **kwargs,
    ) -> None:
        self.encoder = dict(encoder or {})
        self.feature = feature
        self.head = dict(head or {})
        self.dfd = dict(dfd or {})
        kwargs.setdefault("id2label", {0: "real", 1: "fake"})
        kwargs.setdefault("label2id", {"real": 0, "fake": 1})
        super().__init__(**kwargs)


@dataclass
class DetectorOutput(ModelOutput):
    """``logits`` (B, 2) over [real, fake] and ``p_fake`` (B,) = softmax(logits)[:, 1]."""

    logits: torch.FloatTensor | None = None
    p_fake: torch.FloatTensor | None = None


class LinearHead(nn.Module):
    """logits = W f + b, on the feature f or (``normalize``) on f / ||f||_2."""

    def __init__(self, in_features: int, num_classes: int, normalize: bool) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, num_classes)
        self.normalize = normalize

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            features = F.normalize(features, dim=-1)
        return self.fc(features)  # (B, C)


class CosineHead(nn.Module):
    """logits_k = scale * cos(f, w_k): an ArcFace head at inference (the margin only trains)."""

    def __init__(self, in_features: int, num_classes: int, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        self.scale = float(scale)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=features.device.type, enabled=False):
            z = F.normalize(features.float(), dim=-1)
            w = F.normalize(self.weight.float(), dim=-1)
            return self.scale * F.linear(z, w).clamp(-1.0, 1.0)  # (B, C)


def build_head(head: dict) -> nn.Module:
    """The head a config's ``head`` dict describes."""
    kind = head.get("kind")
    if kind not in HEAD_KINDS:
        raise ValueError(f"head kind {kind!r} is not one of {HEAD_KINDS}")
    size = (int(head["in_features"]), int(head.get("num_classes", 2)))
    if kind == "cosine":
        return CosineHead(*size, scale=float(head["scale"]))
    return LinearHead(*size, normalize=kind == "linear_norm")


def build_encoder(encoder: dict) -> PreTrainedModel:
    """The encoder, at random, from its saved config: the class ``AutoModel`` maps its
    ``model_type`` to (e.g. ``clip_vision_model`` -> ``CLIPVisionModel``)."""
    fields = dict(encoder)
    config = AutoConfig.for_model(fields.pop("model_type"), **fields)
    return AutoModel.from_config(config)


class DfdDetector(PreTrainedModel):
    """Encoder -> feature -> head: p(fake) of face crops prepared by the folder's image processor."""

    config_class = DfdDetectorConfig
    base_model_prefix = "dfd"
    main_input_name = "pixel_values"

    def __init__(self, config: DfdDetectorConfig) -> None:
        super().__init__(config)
        self.encoder = build_encoder(config.encoder)
        self.head = build_head(config.head)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # only a model built without weights needs this; from_pretrained loads every tensor
        if isinstance(module, CosineHead):
            nn.init.xavier_uniform_(module.weight)
        elif isinstance(module, LinearHead):
            module.fc.reset_parameters()

    def forward(self, pixel_values: torch.Tensor) -> DetectorOutput:
        out = self.encoder(pixel_values=pixel_values)  # pixel_values: (B, 3, H, W)
        features = getattr(out, self.config.feature)  # (B, D)
        logits = self.head(features)  # (B, 2)
        return DetectorOutput(logits=logits, p_fake=logits.float().softmax(dim=-1)[:, 1])
