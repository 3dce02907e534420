"""Peers' detectors as their own code computes them, written from that code and independent of
dfd's modules, plus tiny checkpoints in each peer's exact file layout.

- GenD (yermandy/GenD src/hf/modeling_gend.py): encoder feature -> optional F.normalize ->
  ``model.linear``; CLIP through transformers' CLIPVisionModel (``pooler_output``), DINOv3
  through DINOv3ViTModel (``last_hidden_state[:, 0]``), PE through `timm_vit_forward`.
- Effort (effort_detector.py): CLIP vision tower whose attention linears compute
  ``F.linear(x, weight_main + U_residual @ diag(S_residual) @ V_residual, bias)``;
  ``head(pooler_output)``.
- FSFM (fsfm-3c models_vit.py, global_pool=True): ``head(fc_norm(mean(tokens[:, 1:])))``, index
  0 = fake.
`timm_vit_forward` is a functional transcription of timm's Eva / VisionTransformer forward
(timm/models/eva.py, timm/layers/{attention,attention_pool,pos_embed,pos_embed_sincos}.py).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel, DINOv3ViTConfig, DINOv3ViTModel

# ------------------------------------------------------------------ timm's ViT, functionally


def _ln(x, sd, name, eps):
    return F.layer_norm(x, x.shape[-1:], sd[f"{name}.weight"], sd[f"{name}.bias"], eps)


def _lin(x, sd, name):
    return F.linear(x, sd[f"{name}.weight"], sd.get(f"{name}.bias"))


def _rope(h, w, head_dim, ref):
    # build_fourier_pos_embed(in_pixels=False, grid_offset=1, grid_indexing='xy', ref_feat_shape)
    bands = 1.0 / (10000.0 ** (torch.arange(head_dim // 4).float() / (head_dim // 4)))
    tx = (torch.arange(w).float() + 1.0) / w * ref[1]
    ty = (torch.arange(h).float() + 1.0) / h * ref[0]
    grid = torch.stack(torch.meshgrid(tx, ty, indexing="xy"), dim=-1)  # (h, w, 2)
    pos = grid.unsqueeze(-1) * bands
    sin = pos.sin().reshape(h * w, -1).repeat_interleave(2, -1)
    cos = pos.cos().reshape(h * w, -1).repeat_interleave(2, -1)
    return sin, cos


def _rot(x):
    return torch.stack([-x[..., 1::2], x[..., ::2]], -1).reshape(x.shape)


def _attention(q, k, v):
    scale = q.shape[-1] ** -0.5
    return ((q * scale) @ k.transpose(-2, -1)).softmax(-1) @ v


def timm_vit_forward(sd, x, heads, eps, pe: bool, ref_grid=None, pool_heads=None):
    """Pooled feature of timm's PE Eva (pe=True: pre-norm, RoPE, MAP pool) or of its
    avg-pool VisionTransformer (pe=False: fc_norm of the mean patch token)."""
    p = sd["patch_embed.proj.weight"].shape[-1]
    x = F.conv2d(x, sd["patch_embed.proj.weight"], sd.get("patch_embed.proj.bias"), stride=p)
    b, d, h, w = x.shape
    x = x.flatten(2).transpose(1, 2)
    pos = sd["pos_embed"]
    native = math.isqrt(pos.shape[1] - 1)
    if (h, w) != (native, native):  # resample_abs_pos_embed
        grid = pos[:, 1:].reshape(1, native, native, d).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", antialias=True)
        pos = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, d)], 1)
    x = torch.cat([sd["cls_token"].expand(b, -1, -1), x], 1) + pos
    if pe:
        x = _ln(x, sd, "norm_pre", eps)
        sin, cos = _rope(h, w, d // heads, ref_grid)
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    for i in range(depth):
        n = x.shape[1]
        y = _lin(_ln(x, sd, f"blocks.{i}.norm1", eps), sd, f"blocks.{i}.attn.qkv")
        q, k, v = y.reshape(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
        if pe:
            q = torch.cat([q[:, :, :1], q[:, :, 1:] * cos + _rot(q[:, :, 1:]) * sin], 2)
            k = torch.cat([k[:, :, :1], k[:, :, 1:] * cos + _rot(k[:, :, 1:]) * sin], 2)
        y = _attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        x = x + _lin(y, sd, f"blocks.{i}.attn.proj")
        y = _ln(x, sd, f"blocks.{i}.norm2", eps)
        x = x + _lin(F.gelu(_lin(y, sd, f"blocks.{i}.mlp.fc1")), sd, f"blocks.{i}.mlp.fc2")
    if not pe:
        return _ln(x[:, 1:].mean(1), sd, "fc_norm", eps)
    x = _ln(x, sd, "norm", eps)
    latent = _lin(sd["attn_pool.latent"].expand(b, -1, -1), sd, "attn_pool.q")
    q = latent.reshape(b, 1, pool_heads, -1).transpose(1, 2)
    k, v = (
        _lin(x, sd, "attn_pool.kv")
        .reshape(b, -1, 2, pool_heads, d // pool_heads)
        .permute(2, 0, 3, 1, 4)
    )
    y = _lin(_attention(q, k, v).transpose(1, 2).reshape(b, 1, d), sd, "attn_pool.proj")
    z = _ln(y, sd, "attn_pool.norm", eps)
    y = y + _lin(F.gelu(_lin(z, sd, "attn_pool.mlp.fc1")), sd, "attn_pool.mlp.fc2")
    return y[:, 0]


def random_timm_state(width, depth, patch, grid, pe: bool, seed: int) -> dict[str, torch.Tensor]:
    """Random tensors under timm's PE-Eva (pe) or avg-pool ViT key names."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.1):
        return torch.randn(*shape, generator=g) * scale

    def ln(name):
        return {f"{name}.weight": 1 + r(width), f"{name}.bias": r(width)}

    sd = {
        "cls_token": r(1, 1, width),
        "pos_embed": r(1, grid * grid + 1, width),
        "patch_embed.proj.weight": r(width, 3, patch, patch),
    }
    if not pe:
        sd["patch_embed.proj.bias"] = r(width)
    for i in range(depth):
        b = f"blocks.{i}"
        sd |= ln(f"{b}.norm1") | ln(f"{b}.norm2")
        sd |= {f"{b}.attn.qkv.weight": r(3 * width, width), f"{b}.attn.qkv.bias": r(3 * width)}
        sd |= {f"{b}.attn.proj.weight": r(width, width), f"{b}.attn.proj.bias": r(width)}
        sd |= {f"{b}.mlp.fc1.weight": r(4 * width, width), f"{b}.mlp.fc1.bias": r(4 * width)}
        sd |= {f"{b}.mlp.fc2.weight": r(width, 4 * width), f"{b}.mlp.fc2.bias": r(width)}
    if pe:
        sd |= ln("norm_pre") | ln("norm") | ln("attn_pool.norm")
        sd["attn_pool.latent"] = r(1, 1, width)
        for name, out in (("q", width), ("kv", 2 * width), ("proj", width)):
            sd |= {f"attn_pool.{name}.weight": r(out, width), f"attn_pool.{name}.bias": r(out)}
        sd |= {
            "attn_pool.mlp.fc1.weight": r(4 * width, width),
            "attn_pool.mlp.fc1.bias": r(4 * width),
        }
        sd |= {"attn_pool.mlp.fc2.weight": r(width, 4 * width), "attn_pool.mlp.fc2.bias": r(width)}
    else:
        sd |= ln("fc_norm")
    return sd


# ------------------------------------------------------------------------------------- GenD


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p + 0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


class GenDReference:
    """A tiny GenD model in one of its encoders: writes the Hub folder and computes logits."""

    def __init__(self, encoder: str, head: str, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.encoder, self.head = encoder, head
        g = torch.Generator().manual_seed(seed + 1)
        if encoder == "clip":
            cfg = CLIPVisionConfig(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                patch_size=14,
                image_size=28,
                hidden_act="quick_gelu",
            )
            self.model, width = _randomize(CLIPVisionModel(cfg), seed), 32
            self.projection = torch.randn(16, 32, generator=g)
        elif encoder == "dinov3":
            cfg = DINOv3ViTConfig(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                patch_size=16,
                image_size=32,
                num_register_tokens=4,
                layerscale_value=1e-5,
            )
            self.model, width = _randomize(DINOv3ViTModel(cfg), seed), 32
        else:  # PE: native grid 4 at patch 16 (image 64); GenD runs it at 224
            self.timm_state, width = random_timm_state(32, 2, 16, 4, True, seed), 32
        self.weight = torch.randn(2, width, generator=g)
        self.bias = torch.randn(2, generator=g)

    def feature(self, x: torch.Tensor) -> torch.Tensor:
        if self.encoder == "clip":
            return self.model(pixel_values=x).pooler_output
        if self.encoder == "dinov3":
            return self.model(pixel_values=x).last_hidden_state[:, 0]
        return timm_vit_forward(self.timm_state, x, 2, 1e-5, pe=True, ref_grid=(4, 4), pool_heads=2)

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        f = self.feature(x)
        if self.head == "LinearNorm":
            f = F.normalize(f, p=2, dim=1)
        return F.linear(f, self.weight, self.bias)

    def backbone_id(self) -> str:
        return {
            "clip": "openai/clip-vit-large-patch14",
            "dinov3": "facebook/dinov3-vitl16-pretrain-lvd1689m",
            "pe": "vit_pe_core_large_patch14_336",
        }[self.encoder]

    def save(self, folder: Path) -> Path:
        """config.json + model.safetensors as GenD.save_pretrained writes them (transformers
        4.56 names: DINOv3 layers at `backbone.layer.<i>`)."""
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "architectures": ["GenD"],
            "backbone": self.backbone_id(),
            "dtype": "float32",
            "head": self.head,
            "model_type": "GenD",
            "transformers_version": "4.56.2",
        }
        (folder / "config.json").write_text(json.dumps(config))
        sd: dict[str, torch.Tensor] = {}
        if self.encoder == "clip":
            # GenD's CLIPEncoder.vision_model is transformers 4.x's CLIPVisionTransformer
            for k, v in self.model.state_dict().items():
                if not k.endswith("position_ids"):
                    sd[f"feature_extractor.vision_model.{k.removeprefix('vision_model.')}"] = v
            sd["feature_extractor.visual_projection.weight"] = self.projection
        elif self.encoder == "dinov3":
            for k, v in self.model.state_dict().items():
                sd[f"feature_extractor.backbone.{k.replace('model.layer.', 'layer.', 1)}"] = v
        else:
            sd |= {f"feature_extractor.backbone.{k}": v for k, v in self.timm_state.items()}
        sd["model.linear.weight"], sd["model.linear.bias"] = self.weight, self.bias
        save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / "model.safetensors"))
        return folder


# ------------------------------------------------------------------------------------ Effort


class EffortSVDResidualLinear(nn.Module):
    """effort_detector.py's SVDResidualLinear (Effort repository version, with U_r/S_r/V_r)."""

    def __init__(self, linear: nn.Linear, r: int) -> None:
        super().__init__()
        u, s, vh = torch.linalg.svd(linear.weight.data, full_matrices=False)
        r = min(r, len(s))
        self.weight_main = nn.Parameter(u[:, :r] @ torch.diag(s[:r]) @ vh[:r], requires_grad=False)
        self.bias = nn.Parameter(linear.bias.data.clone(), requires_grad=False)
        self.S_residual = nn.Parameter(s[r:].clone())
        self.U_residual = nn.Parameter(u[:, r:].clone())
        self.V_residual = nn.Parameter(vh[r:].clone())
        self.S_r = nn.Parameter(s[:r].clone(), requires_grad=False)
        self.U_r = nn.Parameter(u[:, :r].clone(), requires_grad=False)
        self.V_r = nn.Parameter(vh[:r].clone(), requires_grad=False)

    def forward(self, x):
        w = self.weight_main + self.U_residual @ torch.diag(self.S_residual) @ self.V_residual
        return F.linear(x, w, self.bias)


class EffortReference(nn.Module):
    """A tiny EffortDetector: CLIP vision tower with SVD residual attention linears + head."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        cfg = CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            patch_size=14,
            image_size=28,
            hidden_act="quick_gelu",
        )
        # EffortDetector.backbone = clip_model.vision_model (keys backbone.embeddings.*, ...)
        self.backbone = _randomize(CLIPVisionModel(cfg), seed)
        for layer in self.backbone.encoder.layers:  # apply_svd_residual_to_self_attn, r = 32 - 1
            for name in ("k_proj", "v_proj", "q_proj", "out_proj"):
                setattr(
                    layer.self_attn,
                    name,
                    EffortSVDResidualLinear(getattr(layer.self_attn, name), 31),
                )
        self.head = nn.Linear(32, 2)
        g = torch.Generator().manual_seed(seed + 7)
        with torch.no_grad():  # a "trained" residual
            for name, p in self.named_parameters():
                if name.endswith(("U_residual", "V_residual", "S_residual")):
                    p.add_(0.3 * torch.randn(p.shape, generator=g))
        self.eval()

    @torch.no_grad()
    def logits(self, x):
        return self.head(self.backbone(pixel_values=x)["pooler_output"])

    def save(self, path: Path, ddp_prefix: bool = False) -> Path:
        sd = self.state_dict()
        if ddp_prefix:
            sd = {f"module.{k}": v for k, v in sd.items()}
        torch.save(sd, path)
        return path


# -------------------------------------------------------------------------------------- FSFM


class FSFMReference:
    """A tiny FSFM fine-tune (timm ViT, global_pool=True, 2 classes with index 0 = fake)."""

    def __init__(self, seed: int = 0) -> None:
        self.state = random_timm_state(32, 2, 16, 2, False, seed)
        g = torch.Generator().manual_seed(seed + 3)
        self.state["head.weight"] = torch.randn(2, 32, generator=g)
        self.state["head.bias"] = torch.randn(2, generator=g)

    @torch.no_grad()
    def logits(self, x):
        """[fake, real] as FSFM's head computes them."""
        f = timm_vit_forward(self.state, x, 2, 1e-6, pe=False)
        return F.linear(f, self.state["head.weight"], self.state["head.bias"])

    def save(self, path: Path) -> Path:
        args = argparse.Namespace(model="vit_base_patch16", global_pool=True, nb_classes=2)
        torch.save(
            {"model": self.state, "optimizer": {}, "epoch": 9, "scaler": {}, "args": args}, path
        )
        return path
