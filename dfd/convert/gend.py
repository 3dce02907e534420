"""GenD's Hugging Face Hub models (yermandy/GenD, WACV 2026) as dfd checkpoint folders.

A GenD Hub folder (``yermandy/GenD_CLIP_L_14``, ``GenD_PE_L``, ``GenD_DINOv3_L``) holds
``config.json`` (``model_type: GenD``, ``backbone``: the encoder's hub id or timm name,
``head``: ``linear`` or ``LinearNorm``) and ``model.safetensors`` with the ``GenD``
PreTrainedModel's state (src/hf/modeling_gend.py):

- ``feature_extractor.vision_model.*`` (CLIP; plus ``visual_projection.weight``, which the
  forward does not use), ``feature_extractor.backbone.*`` (PE: timm's Eva without its head;
  DINOv3 / DINOv2-with-registers: transformers 4.56 names);
- ``model.linear.{weight,bias}``: ``LinearProbe``; with ``LinearNorm`` the feature is
  L2-normalized first. Logits over [real, fake] (index 1 = fake, app/run.py ``probs[1]``).

The encoder becomes the dfd backbone option with that hub id (or timm name), LN-tuned
(``peft=ln``: GenD trains the LayerNorms and the head), and the head ``linear`` or
``linear_norm``. Renames: transformers 5 nests DINOv3's layers under ``model.layer`` and
names DINOv2's attention ``q_proj``/``k_proj``/``v_proj``/``o_proj``. GenD runs PE at 224 px
with timm's dynamic image size; the position embedding is resampled to that grid once here,
with the same function timm applies at every forward.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from safetensors import SafetensorError
from safetensors.torch import load_file

from dfd.convert.common import ConversionError, Converted, file_sha256, strip_prefix
from dfd.runtime.config import CONF_DIR

HEADS = {"LinearNorm": "linear_norm", "linear": "linear"}
GEND_INPUT = 224  # GenD's input size for every encoder (PE: data_config["input_size"] = 224)
PREPROCESSING = {
    "clip": "CLIPProcessor: resize the shortest edge to 224 (bicubic), centre-crop 224, "
    "OpenAI CLIP mean/std",
    "pe": "timm eval transform with input_size 224: resize the shortest edge to 224 (bicubic), "
    "centre-crop 224, mean = std = 0.5; the model runs at 224 (dynamic_img_size)",
    "dino": "the encoder's AutoImageProcessor (DINOv3: resize to 224 x 224, bilinear, ImageNet "
    "mean/std)",
}
# transformers 4.x -> 5.x names inside GenD's DINO encoders (transformers' conversion_mapping)
DINO_RENAMES = [
    (re.compile(r"^layer\."), "model.layer."),  # DINOv3ViTModel: layers under `model`
    (re.compile(r"\.attention\.attention\.query\."), ".attention.q_proj."),
    (re.compile(r"\.attention\.attention\.key\."), ".attention.k_proj."),
    (re.compile(r"\.attention\.attention\.value\."), ".attention.v_proj."),
    (re.compile(r"\.attention\.output\.dense\."), ".attention.o_proj."),
]
EXPECTED = (
    "a GenD Hub folder: config.json with model_type 'GenD' and model.safetensors in the GenD "
    "PreTrainedModel layout (feature_extractor.*, model.linear.*), e.g. a download of "
    "yermandy/GenD_PE_L"
)


def backbone_option_for(encoder: str, conf_dir: Path = CONF_DIR) -> tuple[str, Any]:
    """The conf/backbone option whose hub id (``name_or_path``) or timm model name is `encoder`,
    and its config."""
    for file in sorted((conf_dir / "backbone").glob("*.yaml")):
        spec = OmegaConf.load(file)
        names = {str(spec.get("name_or_path")), str(spec.get("architecture", {}).get("timm_name"))}
        if encoder in names or encoder.split(".")[0] in names:
            return file.stem, spec
    raise ConversionError(
        f"config.json backbone={encoder!r} has no dfd backbone option (conf/backbone/*.yaml "
        f"name_or_path or architecture.timm_name)"
    )


def read_gend_folder(path: Path) -> tuple[dict, dict[str, torch.Tensor], Path]:
    """(config.json, tensors, weights file) of a GenD Hub folder; one-line error otherwise."""
    path = Path(path).expanduser()
    config_file, weights = path / "config.json", path / "model.safetensors"
    if not (path.is_dir() and config_file.is_file() and weights.is_file()):
        raise ConversionError(f"{path} is not {EXPECTED}")
    config = json.loads(config_file.read_text())
    if config.get("model_type") != "GenD":
        raise ConversionError(
            f"{path} is not {EXPECTED}: its config.json has model_type {config.get('model_type')!r}"
        )
    try:
        state = load_file(str(weights))
    except SafetensorError as err:
        raise ConversionError(f"{weights} is not a readable safetensors file: {err}") from err
    return config, state, weights


def family(encoder: str) -> str:
    """GenD's encoder dispatch (modeling_gend.py `_init_feature_extractor`)."""
    lowered = encoder.lower()
    if "clip" in lowered:
        return "clip"
    if "vit_pe" in lowered:
        return "pe"
    if "dino" in lowered:
        return "dino"
    raise ConversionError(f"config.json backbone={encoder!r}: GenD knows CLIP, PE and DINO only")


def convert_gend(path: Path) -> Converted:
    """A GenD Hub folder as a `Converted` detector (see the module docstring)."""
    config, source, weights = read_gend_folder(path)
    encoder = str(config.get("backbone", ""))
    kind = family(encoder)
    option, _ = backbone_option_for(encoder)
    head = HEADS.get(str(config.get("head")))
    if head is None:
        raise ConversionError(
            f"config.json head={config.get('head')!r}: GenD heads are {sorted(HEADS)}"
        )
    linear = strip_prefix(source, "model.linear.")
    if set(linear) != {"weight", "bias"}:
        raise ConversionError(f"{weights} has no model.linear.{{weight,bias}}: not {EXPECTED}")
    state = {f"head.fc.{k}": v for k, v in linear.items()}
    dropped: list[str] = []
    overrides = [f"backbone={option}", "peft=ln", f"head={head}", "loss=ce"]
    if kind == "clip":
        state |= {
            f"backbone.{k}": v
            for k, v in strip_prefix(source, "feature_extractor.vision_model.").items()
        }
        dropped = [k for k in source if k.startswith("feature_extractor.visual_projection.")]
    else:
        encoder_state = strip_prefix(source, "feature_extractor.backbone.")
        if kind == "dino":
            encoder_state = {_rename_dino(k): v for k, v in encoder_state.items()}
        if kind == "pe":
            encoder_state, native = _pe_at_gend_input(encoder_state)
            side = GEND_INPUT
            # timm's PE defs scale RoPE coordinates to the native grid (ref_feat_shape)
            overrides += [
                f"backbone.architecture.image_size={side}",
                f"backbone.architecture.rope_ref_grid=[{native},{native}]",
                f"backbone.image_processor.size={{shortest_edge:{side}}}",
                f"backbone.image_processor.crop_size={{height:{side},width:{side}}}",
            ]
        state |= {f"backbone.{k}": v for k, v in encoder_state.items()}
    known = {f"feature_extractor.{p}" for p in ("vision_model.", "backbone.", "visual_projection.")}
    unknown = [k for k in source if not k.startswith((*known, "model.linear."))]
    if unknown:
        raise ConversionError(f"{weights}: keys outside {EXPECTED}: {unknown[:6]}")
    provenance = {
        "peer": "GenD",
        "detector": f"GenD {option} (released)",
        "format": "gend",
        "source": str(Path(path).expanduser().resolve()),
        "source_file": str(weights.resolve()),
        "sha256": file_sha256(weights),
        "gend_config": config,
        "preprocessing": PREPROCESSING[kind] + "; faces aligned and cropped at scale 1.3",
        "labels": "logits over [real, fake] as GenD's (index 1 = fake)",
        "loss": "not in the Hub folder; loss=ce is recorded only so the config composes "
        "(scoring does not use it)",
    }
    return Converted(overrides, state, provenance, dropped)


def _rename_dino(key: str) -> str:
    for pattern, new in DINO_RENAMES:
        key = pattern.sub(new, key)
    return key


def _pe_at_gend_input(state: dict[str, torch.Tensor]) -> tuple[dict, int]:
    """PE's position embedding resampled from its native grid to GenD's 224 px input grid
    (timm's resample_abs_pos_embed, as timm's dynamic image size does at each forward), and
    the native grid."""
    from dfd.models.timm_vit import native_grid

    if "pos_embed" not in state or "patch_embed.proj.weight" not in state:
        raise ConversionError(f"the PE encoder has no pos_embed / patch_embed: not {EXPECTED}")
    patch = int(state["patch_embed.proj.weight"].shape[-1])
    grid = GEND_INPUT // patch
    native = native_grid(int(state["pos_embed"].shape[1]))
    pos = state["pos_embed"].float()
    if native != grid:
        prefix, patches = pos[:, :1], pos[:, 1:]
        d = patches.shape[-1]
        patches = patches.reshape(1, native, native, d).permute(0, 3, 1, 2)
        patches = torch.nn.functional.interpolate(
            patches, size=(grid, grid), mode="bicubic", antialias=True
        )
        pos = torch.cat([prefix, patches.permute(0, 2, 3, 1).reshape(1, -1, d)], dim=1)
    return {**state, "pos_embed": pos}, native
