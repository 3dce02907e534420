"""Tiny stand-ins of the peers' released files, for the offline comparison demo.

`python -m dfd.convert.standins [folder]` (default ``outputs/peers_demo``) writes, with random
weights at tiny sizes, a file in each peer's exact layout: GenD Hub folders for its CLIP, PE
and DINOv3 encoders (``config.json`` + ``model.safetensors``), Effort's ``.pth`` state dict
and FSFM's ``{'model': ...}`` fine-tune; then converts each with `dfd.convert` into
``<folder>/converted/<name>``, the folders ``conf/comparison/peers_demo.yaml`` evaluates.
They score near chance: they show the path real weights take, not their results.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import CLIPVisionConfig, CLIPVisionModel, DINOv3ViTConfig, DINOv3ViTModel

from dfd.convert.formats import convert_input
from dfd.models.effort import EffortAdapter
from dfd.models.timm_vit import TimmLayoutViT, TimmViTConfig
from dfd.runtime.config import PROJECT_ROOT

WIDTH, HEADS = 32, 2
TINY_CLIP = dict(
    hidden_size=WIDTH,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=HEADS,
    patch_size=8,
    image_size=64,
    hidden_act="quick_gelu",
)
ARCH = [
    f"backbone.architecture.hidden_size={WIDTH}",
    f"backbone.architecture.num_hidden_layers={2}",
    f"backbone.architecture.num_attention_heads={HEADS}",
]
CLIP_ARCH = [
    *ARCH,
    "backbone.architecture.intermediate_size=64",
    "backbone.architecture.patch_size=8",
    "backbone.architecture.image_size=64",
]
# the tiny dimensions each conversion needs besides what it reads from the file
OVERRIDES = {
    "gend_clip": [
        *CLIP_ARCH,
        "backbone.image_processor.size={shortest_edge:64}",
        "backbone.image_processor.crop_size={height:64,width:64}",
    ],
    "gend_pe": [
        *ARCH,
        "backbone.architecture.patch_size=16",
        "backbone.architecture.attn_pool_num_heads=2",
    ],
    "gend_dinov3": [
        *ARCH,
        "backbone.architecture.intermediate_size=64",
        "backbone.architecture.image_size=64",
        "backbone.image_processor.size={height:64,width:64}",
    ],
    "effort": [*CLIP_ARCH, "backbone.image_processor.size={height:64,width:64}"],
    "fsfm": [f"backbone.architecture.num_attention_heads={HEADS}"],
}


def _gend_folder(folder: Path, backbone: str, encoder: dict[str, torch.Tensor]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {"architectures": ["GenD"], "backbone": backbone, "head": "LinearNorm"}
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "GenD"}))
    head = {"model.linear.weight": torch.randn(2, WIDTH), "model.linear.bias": torch.zeros(2)}
    tensors = {k: v.contiguous() for k, v in (encoder | head).items()}
    save_file(tensors, str(folder / "model.safetensors"))
    return folder


def write_standins(folder: Path) -> dict[str, Path]:
    """Write one tiny file per peer format into `folder`; return {name: path}."""
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    clip = CLIPVisionModel(CLIPVisionConfig(**TINY_CLIP))
    dino = DINOv3ViTModel(
        DINOv3ViTConfig(
            **{**TINY_CLIP, "patch_size": 16, "hidden_act": "gelu", "num_register_tokens": 4}
        )
    )
    pe = TimmLayoutViT(
        TimmViTConfig(
            image_size=64, patch_size=16, hidden_size=WIDTH, num_hidden_layers=2,
            num_attention_heads=HEADS, layer_norm_eps=1e-5, patch_bias=False, pre_norm=True,
            pool="map", rope=True, rope_ref_grid=[4, 4], rope_grid_offset=1.0,
            rope_grid_indexing="xy", attn_pool_num_heads=HEADS,
        )
    )  # fmt: skip
    files = {
        # GenD saves transformers 4.x names: CLIP under vision_model., DINOv3 layers at layer.<i>
        "gend_clip": _gend_folder(
            folder / "GenD_CLIP",
            "openai/clip-vit-large-patch14",
            {f"feature_extractor.vision_model.{k}": v for k, v in clip.state_dict().items()},
        ),
        "gend_pe": _gend_folder(
            folder / "GenD_PE",
            "vit_pe_core_large_patch14_336",
            {f"feature_extractor.backbone.{k}": v for k, v in pe.state_dict().items()},
        ),
        "gend_dinov3": _gend_folder(
            folder / "GenD_DINOv3",
            "facebook/dinov3-vitl16-pretrain-lvd1689m",
            {
                f"feature_extractor.backbone.{k.replace('model.layer.', 'layer.', 1)}": v
                for k, v in dino.state_dict().items()
            },
        ),
    }
    # Effort: the CLIP tower with its attention linears split as effort_detector.py does
    effort = EffortAdapter(["q_proj", "k_proj", "v_proj", "out_proj"]).apply(
        CLIPVisionModel(CLIPVisionConfig(**TINY_CLIP))
    )
    state = {f"backbone.{k}": v for k, v in effort.state_dict().items()}
    state |= {"head.weight": torch.randn(2, WIDTH), "head.bias": torch.zeros(2)}
    files["effort"] = folder / "effort_clip_L14_trainOn_FaceForensic.pth"
    torch.save(state, files["effort"])
    fsfm = TimmLayoutViT(
        TimmViTConfig(
            image_size=64, patch_size=16, hidden_size=WIDTH, num_hidden_layers=2,
            num_attention_heads=HEADS, pool="avg",
        )
    )  # fmt: skip
    model = fsfm.state_dict() | {"head.weight": torch.randn(2, WIDTH), "head.bias": torch.zeros(2)}
    files["fsfm"] = folder / "checkpoint-min_val_loss.pth"
    args = argparse.Namespace(model="vit_base_patch16", global_pool=True, nb_classes=2)
    torch.save({"model": model, "optimizer": {}, "epoch": 0, "args": args}, files["fsfm"])
    return files


def main(argv: list[str]) -> None:
    folder = Path(argv[0] if argv else PROJECT_ROOT / "outputs" / "peers_demo")
    for name, path in write_standins(folder).items():
        convert_input(path, folder / "converted" / name, OVERRIDES[name])


if __name__ == "__main__":
    main(sys.argv[1:])
