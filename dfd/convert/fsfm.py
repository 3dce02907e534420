"""FSFM's released fine-tuned checkpoints (Wang et al., CVPR 2025) as dfd checkpoint folders.

FSFM (wolo-wolo/FSFM-CVPR25, fsfm-3c) fine-tunes an MAE-style timm ViT (``models_vit.py``:
``qkv_bias=True``, LayerNorm eps 1e-6, ``global_pool=True``: the mean of the patch tokens
through ``fc_norm``, no final ``norm``) with ``head = nn.Linear(D, 2)``. ``util/misc.py
save_model`` writes ``{'model': state_dict, 'optimizer', 'epoch', 'scaler', 'args'}``; the
state dict has timm's key names (it loads strictly into
``timm.create_model('vit_base_patch16_224', num_classes=2, global_pool='avg')``).

**Labels: FSFM's index 0 is fake** (torchvision ImageFolder sorts its class folders
``fake_four`` < ``real_youtube``); dfd's index 1 is fake, so the head's two rows are
swapped. The file is read with ``torch.load(weights_only=True)``, allowing only argparse's
Namespace besides tensors (its ``args`` hold plain values).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch

from dfd.convert.common import (
    ConversionError,
    Converted,
    describe_keys,
    file_sha256,
    load_torch_file,
)

EXPECTED = (
    "an FSFM fine-tuned checkpoint: {'model': state dict} with timm ViT keys (cls_token, "
    "pos_embed, blocks.<i>.attn.qkv.weight, fc_norm.weight, head.weight [2, D])"
)
# util/datasets.py build_transform's fallback (VGGFace2 statistics) when the pre-training
# folder's pretrain_ds_mean_std.txt is not given
VGGFACE2_MEAN = [0.5482207536697388, 0.42340534925460815, 0.3654651641845703]
VGGFACE2_STD = [0.2789176106452942, 0.2438540756702423, 0.23493893444538116]
CROP_PCT = 224 / 256  # Resize(int(224 / (224 / 256)) = 256) then CenterCrop(224)


def fsfm_state(obj: object, source: str) -> dict[str, torch.Tensor]:
    """FSFM's ``model`` state dict, checked for the avg-pool (``fc_norm``) ViT layout."""
    state = obj.get("model") if isinstance(obj, Mapping) else None
    needed = ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight")
    if not isinstance(state, Mapping) or any(k not in state for k in needed):
        raise ConversionError(f"{source} is not {EXPECTED}: found {describe_keys(obj)}")
    if "fc_norm.weight" not in state or "norm.weight" in state:
        raise ConversionError(
            f"{source}: a ViT with a final `norm` and no `fc_norm` (global_pool=False); FSFM's "
            f"fine-tunes use global_pool=True: not {EXPECTED}"
        )
    if "head.weight" not in state or state["head.weight"].shape[0] != 2:
        raise ConversionError(f"{source}: no two-class head.weight: not {EXPECTED}")
    return dict(state)


def convert_fsfm(path: Path) -> Converted:
    """FSFM's checkpoint as a `Converted` detector (see the module docstring)."""
    path = Path(path).expanduser()
    raw = load_torch_file(path, EXPECTED)
    state = fsfm_state(raw, str(path))
    width = int(state["pos_embed"].shape[-1])
    patch = int(state["patch_embed.proj.weight"].shape[-1])
    grid = math.isqrt(int(state["pos_embed"].shape[1]) - 1)
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    mlp_ratio = int(state["blocks.0.mlp.fc1.weight"].shape[0]) / width
    size = grid * patch
    out = {f"backbone.{k}": v for k, v in state.items() if not k.startswith("head.")}
    # FSFM's [fake, real] -> dfd's [real, fake]
    out["head.fc.weight"] = state["head.weight"][[1, 0]]
    out["head.fc.bias"] = state["head.bias"][[1, 0]]
    overrides = [
        "backbone=vit_b16_fsfm",
        "peft=full",
        "head=linear",
        "loss=ce",
        f"backbone.architecture.hidden_size={width}",
        f"backbone.architecture.num_hidden_layers={depth}",
        f"backbone.architecture.num_attention_heads={max(1, width // 64)}",  # timm B/L: 64-d heads
        f"backbone.architecture.mlp_ratio={mlp_ratio}",
        f"backbone.architecture.patch_size={patch}",
        f"backbone.architecture.image_size={size}",
        f"backbone.image_processor.size={{shortest_edge:{math.floor(size / CROP_PCT)}}}",
        f"backbone.image_processor.crop_size={{height:{size},width:{size}}}",
    ]
    args = raw.get("args") if isinstance(raw, Mapping) else None
    provenance = {
        "peer": "FSFM",
        "detector": f"FSFM ViT (D={width}, {depth} blocks) (released)",
        "format": "fsfm",
        "source": str(path.resolve()),
        "source_file": str(path.resolve()),
        "sha256": file_sha256(path),
        "epoch": raw.get("epoch") if isinstance(raw.get("epoch"), int | float) else None,
        "fsfm_args": {k: str(v) for k, v in vars(args).items()} if args is not None else None,
        "preprocessing": (
            f"resize the shortest edge to {math.floor(size / CROP_PCT)} (bicubic), centre-crop "
            f"{size}, mean/std of the pre-training data (VGGFace2 fallback {VGGFACE2_MEAN} / "
            f"{VGGFACE2_STD}; pass the values of pretrain_ds_mean_std.txt as "
            f"backbone.image_processor.image_mean/image_std overrides); faces DLIB-cropped with "
            f"30% enlargement"
        ),
        "labels": "FSFM's index 0 = fake: the head rows are swapped so that index 1 = fake",
        "loss": "FSFM fine-tunes with mixup/cutmix soft-target CE; loss=ce recorded for scoring",
    }
    dropped = [k for k in raw if k != "model"] if isinstance(raw, Mapping) else []
    return Converted(overrides, out, provenance, dropped)
