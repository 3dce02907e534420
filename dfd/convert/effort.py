"""Effort's released checkpoint (Yan et al., ICML 2025) as a dfd checkpoint folder.

Effort's trainer saves ``torch.save(model.state_dict())`` of its ``EffortDetector``
(YZY-stack/Effort-AIGI-Detection, DeepfakeBench/training/detectors/effort_detector.py):
``backbone.*`` is CLIP ViT-L/14's vision tower (transformers names) whose q/k/v/out_proj in
every layer are SVD residual linears (``weight_main``, ``bias``, ``U_residual``,
``S_residual``, ``V_residual``, and, saved by that repository's version only, the frozen
``U_r``/``S_r``/``V_r``), and ``head.{weight,bias}`` is ``nn.Linear(1024, 2)`` on the
``pooler_output`` (no normalization). Index 1 = fake. A DDP run prefixes ``module.``; a
wrapper dict may hold it under ``state_dict``; old transformers saved ``position_ids``.

Each SVD linear is folded to W = weight_main + U_residual diag(S_residual) V_residual, the
expression Effort's forward computes, so the converted detector is a plain CLIP ViT-L/14 with
Effort's weights (``peft=linear_probe``: nothing of it trains further unless asked) and a
``linear`` head. The file is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

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

SVD_PARTS = ("weight_main", "U_residual", "S_residual", "V_residual")
PRINCIPAL = ("U_r", "S_r", "V_r")  # frozen top factors, only for the (unused) orthogonal loss
EXPECTED = (
    "an Effort checkpoint: a state dict with backbone.encoder.layers.<i>.self_attn."
    "<q|k|v|out>_proj.{weight_main,U_residual,S_residual,V_residual} and head.{weight,bias} "
    "(effort_detector.py's EffortDetector)"
)
PREPROCESSING = (
    "resize the face crop to 224 x 224 (no centre crop; DeepfakeBench's cv2.INTER_CUBIC), "
    "OpenAI CLIP mean/std; faces dlib-aligned at scale 1.3 as DeepfakeBench crops them"
)


def effort_state(obj: object, source: str) -> dict[str, torch.Tensor]:
    """The flat state dict inside Effort's file, without a DDP ``module.`` prefix."""
    state = obj.get("state_dict", obj) if isinstance(obj, Mapping) else obj
    if not isinstance(state, Mapping):
        raise ConversionError(f"{source} is not {EXPECTED}: it holds {describe_keys(obj)}")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if not any(k.endswith(".S_residual") and k.startswith("backbone.") for k in state):
        raise ConversionError(f"{source} is not {EXPECTED}: found {describe_keys(state)}")
    return state


def convert_effort(path: Path) -> Converted:
    """Effort's checkpoint as a `Converted` detector (see the module docstring)."""
    path = Path(path).expanduser()
    state = effort_state(load_torch_file(path, EXPECTED), str(path))
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    svd_layers = sorted({k.rsplit(".", 1)[0] for k in state if k.endswith(".weight_main")})
    for layer in svd_layers:
        parts = {p: state.get(f"{layer}.{p}") for p in SVD_PARTS}
        if any(v is None for v in parts.values()):
            raise ConversionError(
                f"{path}: {layer} lacks {[p for p, v in parts.items() if v is None]}"
            )
        with torch.no_grad():  # effort_detector.py SVDResidualLinear.forward
            weight = (
                parts["weight_main"]
                + parts["U_residual"] @ torch.diag(parts["S_residual"]) @ parts["V_residual"]
            )
        out[f"{layer}.weight"] = weight
    for key, tensor in state.items():
        name = key.rsplit(".", 1)
        if len(name) == 2 and name[0] in svd_layers and name[1] in SVD_PARTS:
            continue
        principal = len(name) == 2 and name[0] in svd_layers and name[1] in PRINCIPAL
        if principal or key.endswith("embeddings.position_ids"):
            dropped.append(key)
        elif key.startswith("head."):
            out[f"head.fc.{key.removeprefix('head.')}"] = tensor
        elif key.startswith("backbone."):
            out[key] = tensor
        else:
            raise ConversionError(f"{path}: {key} is neither backbone.* nor head.*: not {EXPECTED}")
    overrides = [
        "backbone=clip_vit_l14",
        "peft=linear_probe",
        "head=linear",
        "loss=ce",
        # a direct resize (CLIP's YAML has a shortest-edge size: replace the whole mapping)
        "~backbone.image_processor.size",
        "+backbone.image_processor.size={height:224,width:224}",
        "backbone.image_processor.do_center_crop=false",
    ]
    provenance = {
        "peer": "Effort",
        "detector": "Effort clip_vit_l14 (released)",
        "format": "effort",
        "source": str(path.resolve()),
        "source_file": str(path.resolve()),
        "sha256": file_sha256(path),
        "svd_layers_folded": len(svd_layers),
        "preprocessing": PREPROCESSING,
        "labels": "head logits as Effort's (index 1 = fake)",
        "loss": "cross-entropy (the released training; loss=ce)",
        "method": "Effort SVD residual tuning, folded: W = weight_main + U_residual "
        "diag(S_residual) V_residual (peft=linear_probe holds the folded weights)",
    }
    return Converted(
        overrides, out, provenance, sorted(dropped)[:8] + (["..."] if len(dropped) > 8 else [])
    )
