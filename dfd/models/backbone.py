"""Vision backbones, loaded from the hub, a local folder, or built at random.

Every backbone config carries its architecture and its image-processor settings, so the
same code path builds `openai/clip-vit-large-patch14` from the hub, from a folder written
by `save_pretrained`, or with random weights and no download (`pretrained=false`). Two
families: transformers models (`build_backbone`) and ViTs in timm's layout
(`build_timm_backbone`: Perception Encoder, timm's plain ViT; `dfd.models.timm_vit`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import transformers
from hydra.utils import get_class
from omegaconf import OmegaConf
from torch import nn

from dfd.data.spec import InputSpec, ProcessorFields
from dfd.models.timm_vit import TimmLayoutViT, TimmViTConfig
from dfd.runtime.hub import hub_reachable, in_hub_cache


class VisionBackbone(nn.Module):
    """A transformers vision model reduced to one feature vector per image.

    The feature is the model output named `feature` (default `pooler_output`: for CLIP the
    CLS token after `post_layernorm`, before any projection, as the paper uses).
    `attention_modules` name the linear layers of self-attention (Effort's SVD targets),
    `attention_output_modules` its output projection (LoRA's default target).
    """

    def __init__(
        self,
        model: nn.Module,
        input_spec: InputSpec,
        feature_dim: int,
        layernorm_modules: Sequence[str],
        feature: str = "pooler_output",
        name: str = "backbone",
        attention_modules: Sequence[str] = (),
        attention_output_modules: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.model = model
        self.input_spec = input_spec
        self.feature_dim = feature_dim
        self.layernorm_modules = list(layernorm_modules)
        self.feature = feature
        self.name = name
        self.attention_modules = list(attention_modules)
        self.attention_output_modules = list(attention_output_modules)

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
    attention_modules: Sequence[str] = (),
    attention_output_modules: Sequence[str] = (),
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
        attention_modules, attention_output_modules: the self-attention linears and their
            output projection, by module-name suffix (read by peft=effort and peft=lora).
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
    return VisionBackbone(
        model,
        spec,
        feature_dim,
        list(layernorm_modules),
        feature,
        name,
        attention_modules,
        attention_output_modules,
    )


def build_timm_backbone(
    name: str,
    name_or_path: str,
    pretrained: bool,
    architecture: Mapping[str, Any],
    image_processor: Mapping[str, Any],
    layernorm_modules: Sequence[str],
    feature: str = "pooler_output",
    attention_modules: Sequence[str] = (),
    attention_output_modules: Sequence[str] = (),
) -> VisionBackbone:
    """A ViT in timm's parameter layout (`dfd.models.timm_vit`), pretrained or at random.

    The architecture always comes from the config (``model_type: timm_vit`` plus the fields
    of `TimmViTConfig`): a timm hub repo's ``config.json`` names its model but not its
    dimensions. With `pretrained`, ``model.safetensors`` and ``config.json`` come from the
    folder or hub repo `name_or_path` (e.g. ``timm/vit_pe_core_large_patch14_336.fb``); the
    input geometry from the file's ``pretrained_cfg`` (timm's eval transform: resize the
    shortest edge to size / crop_pct, centre-crop to size). timm's classifier or projection
    ``head`` is not part of the feature and is not loaded.
    """
    arch = _plain(architecture)
    model_type = arch.pop("model_type", None)
    if model_type != "timm_vit":
        raise ValueError(
            f"backbone {name!r}: architecture.model_type={model_type!r}; build_timm_backbone "
            f"builds model_type: timm_vit"
        )
    config = TimmViTConfig(**arch)
    model = TimmLayoutViT(config)
    if pretrained:
        files = _timm_files(name_or_path)
        _load_timm_weights(model, files, name_or_path, config)
        spec = InputSpec.from_processor(timm_processor_fields(files["config"], name_or_path))
    else:
        spec = InputSpec.from_processor(ProcessorFields(**_plain(image_processor)))
    return VisionBackbone(
        model,
        spec,
        config.hidden_size,
        list(layernorm_modules),
        feature,
        name,
        attention_modules,
        attention_output_modules,
    )


TIMM_INTERPOLATIONS = {"nearest": 0, "bilinear": 2, "bicubic": 3, "lanczos": 1}


def timm_processor_fields(config: Mapping[str, Any], source: str) -> ProcessorFields:
    """A timm ``pretrained_cfg`` as image-processor fields: timm's eval transform resizes the
    shortest edge to floor(size / crop_pct) and centre-crops to size
    (timm/data/transforms_factory.py, transforms_imagenet_eval)."""
    cfg = config.get("pretrained_cfg", config)
    try:
        _, height, width = cfg["input_size"]
        crop_pct = float(cfg.get("crop_pct") or 1.0)
        resample = TIMM_INTERPOLATIONS[str(cfg.get("interpolation", "bicubic"))]
        mean, std = list(cfg["mean"]), list(cfg["std"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{source}: config.json has no usable timm pretrained_cfg ({err!r}); it needs "
            f"input_size, mean, std and optionally crop_pct and interpolation"
        ) from err
    return ProcessorFields(
        image_mean=mean,
        image_std=std,
        resample=resample,
        size={"shortest_edge": math.floor(min(height, width) / crop_pct)},
        crop_size={"height": int(height), "width": int(width)},
        do_center_crop=True,
    )


def _timm_files(name_or_path: str) -> dict[str, Any]:
    """``{"config": dict, "weights": path}`` of a timm model folder or hub repo."""
    looks_local = name_or_path.startswith(("/", ".", "~"))
    if looks_local:
        folder = Path(name_or_path).expanduser()
        weights, config = folder / "model.safetensors", folder / "config.json"
        if not (weights.is_file() and config.is_file()):
            raise FileNotFoundError(
                f"backbone.name_or_path={name_or_path!r} must be a folder with config.json and "
                f"model.safetensors (a timm hub repo downloaded with `hf download <repo> "
                f"--local-dir <folder>`)"
            )
    else:
        from huggingface_hub import hf_hub_download

        if not hub_reachable() and not in_hub_cache(name_or_path, "model.safetensors"):
            raise OSError(
                f"could not load backbone weights {name_or_path!r}: the Hugging Face hub cannot "
                f"be reached and they are not in the local cache. Offline, download them on a "
                f"machine with internet (`hf download {name_or_path} --local-dir <folder>`), copy "
                f"the folder here and pass `backbone.name_or_path=<folder>`; or use "
                f"`backbone.pretrained=false` for random weights."
            )
        weights = Path(hf_hub_download(name_or_path, "model.safetensors"))
        config = Path(hf_hub_download(name_or_path, "config.json"))
    return {"config": json.loads(config.read_text()), "weights": weights}


def _load_timm_weights(
    model: TimmLayoutViT, files: Mapping[str, Any], source: str, config: TimmViTConfig
) -> None:
    from safetensors.torch import load_file

    named = files["config"].get("architecture")
    if config.timm_name and named and named != config.timm_name:
        raise ValueError(
            f"backbone.name_or_path={source!r} holds timm's {named!r}, but the backbone option "
            f"builds {config.timm_name!r}: choose the option for {named!r}"
        )
    # timm's classifier / PE's CLIP projection: not part of the pooled feature
    state = {k: v for k, v in load_file(str(files["weights"])).items() if not k.startswith("head.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{files['weights']} does not fit architecture {config.timm_name or ''}: missing "
            f"{missing[:5]} ({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})"
        )


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
