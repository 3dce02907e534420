"""Vision backbones from transformers, loaded from the hub, a local folder, or built at random.

Every backbone config carries its architecture and its image-processor settings, so the
same code path builds `openai/clip-vit-large-patch14` from the hub, from a folder written
by `save_pretrained`, or with random weights and no download (`pretrained=false`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import transformers
from hydra.utils import get_class
from omegaconf import OmegaConf
from torch import nn

from dfd.data.spec import InputSpec, ProcessorFields
from dfd.runtime.hub import hub_reachable, in_hub_cache


class VisionBackbone(nn.Module):
    """A transformers vision model reduced to one feature vector per image.

    The feature is the model output named `feature` (default `pooler_output`: for CLIP the
    CLS token after `post_layernorm`, before any projection, as the paper uses).
    """

    def __init__(
        self,
        model: nn.Module,
        input_spec: InputSpec,
        feature_dim: int,
        layernorm_modules: Sequence[str],
        feature: str = "pooler_output",
        name: str = "backbone",
    ) -> None:
        super().__init__()
        self.model = model
        self.input_spec = input_spec
        self.feature_dim = feature_dim
        self.layernorm_modules = list(layernorm_modules)
        self.feature = feature
        self.name = name

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=pixel_values)  # pixel_values: (B, 3, H, W)
        return getattr(out, self.feature)  # (B, D)


def build_backbone(
    name: str,
    model_class: str,
    name_or_path: str,
    pretrained: bool,
    architecture: Mapping[str, Any],
    image_processor: Mapping[str, Any],
    layernorm_modules: Sequence[str],
    feature: str = "pooler_output",
    attn_implementation: str | None = None,
) -> VisionBackbone:
    """Build a backbone from pretrained weights or, with `pretrained=False`, at random.

    Args:
        name: short name used in logs.
        model_class: import path of the transformers class (e.g. ``transformers.CLIPVisionModel``).
        name_or_path: hub id or local folder written by ``save_pretrained``.
        pretrained: load weights and image processor from `name_or_path`; otherwise build
            the architecture from `architecture` (a config dict with ``model_type``) and take
            the input geometry from `image_processor` (the processor config's fields).
        architecture: the model config used when not pretrained.
        image_processor: ``size``/``crop_size``, ``resample``, ``image_mean``, ``image_std``.
        layernorm_modules: names of the LayerNorm modules LN-tuning trains for this family.
        feature: which model output is the image feature.
        attn_implementation: transformers' attention kernel (``sdpa``: torch's fused
            scaled-dot-product attention, flash or memory-efficient on a GPU; ``eager``: the
            reference matmul-softmax-matmul); None leaves transformers' default. Models
            without attention (ConvNeXt) take None.
    """
    cls = get_class(model_class)
    if pretrained:
        model, processor = _load_pretrained(cls, name_or_path, attn_implementation)
        spec = InputSpec.from_processor(processor)
    else:
        # transformers configs compare and serialize plain lists (ConvNeXt's hidden_sizes,
        # depths), not the ListConfig Hydra hands over
        arch = _plain(architecture)
        model_type = arch.pop("model_type")
        if attn_implementation is not None:
            arch["attn_implementation"] = attn_implementation
        config = transformers.AutoConfig.for_model(model_type, **arch)
        model = cls(config)
        spec = InputSpec.from_processor(ProcessorFields(**_plain(image_processor)))
    feature_dim = feature_dim_of(model.config, name)
    return VisionBackbone(model, spec, feature_dim, list(layernorm_modules), feature, name)


def _plain(value: Any) -> Any:
    """Hydra's DictConfig/ListConfig, at any depth, as plain dicts and lists."""
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def feature_dim_of(config: Any, name: str = "backbone") -> int:
    """Width of the pooled feature from a model config: ``hidden_size`` (ViTs: CLIP, DINOv2,
    SigLIP), else the last stage's width ``hidden_sizes[-1]`` (ConvNeXt, ResNet-style models,
    whose ``pooler_output`` pools the last stage)."""
    if getattr(config, "hidden_size", None):
        return int(config.hidden_size)
    sizes = getattr(config, "hidden_sizes", None)
    if sizes:
        return int(sizes[-1])
    raise ValueError(
        f"backbone {name!r}: cannot tell the feature width from {type(config).__name__} (neither "
        f"hidden_size nor hidden_sizes). Fix: use a model whose config has one of them"
    )


def _load_pretrained(
    cls: type, name_or_path: str, attn_implementation: str | None = None
) -> tuple[nn.Module, Any]:
    # a path-like value is a folder that must exist; anything else is a hub id
    looks_local = name_or_path.startswith(("/", ".", "~"))
    source = str(Path(name_or_path).expanduser()) if looks_local else name_or_path
    if looks_local and not Path(source).is_dir():
        raise FileNotFoundError(
            f"backbone.name_or_path={name_or_path!r} is not a folder. Pass a folder written by "
            f"`save_pretrained` (config.json, model.safetensors, preprocessor_config.json) or a hub id."
        )
    fix = (
        f"Offline, download them on a machine with internet (`hf download {name_or_path} "
        f"--local-dir <folder>`), copy the folder here and pass `backbone.name_or_path=<folder>`; "
        f"or use `backbone.pretrained=false` for random weights."
    )
    local_only = False
    if not looks_local and not hub_reachable():
        # without this check, from_pretrained retries the hub for ~45 s before failing
        if not in_hub_cache(name_or_path):
            raise OSError(
                f"could not load backbone weights {name_or_path!r}: the Hugging Face hub cannot "
                f"be reached and they are not in the local cache. {fix}"
            )
        local_only = True
    try:
        # fp32 master weights: mixed precision is Accelerate's job, not the checkpoint's
        kernel = {"attn_implementation": attn_implementation} if attn_implementation else {}
        model = cls.from_pretrained(
            source, dtype=torch.float32, local_files_only=local_only, **kernel
        )
        processor = transformers.AutoImageProcessor.from_pretrained(
            source, local_files_only=local_only
        )
    except OSError as err:
        raise OSError(
            f"could not load backbone weights {name_or_path!r} ({err.__class__.__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). {fix}"
        ) from err
    return model, processor
