"""Vision transformers in timm's parameter layout, without timm: Perception Encoder and plain ViT.

timm's package imports torchvision at import time (``timm.layers`` and ``timm.data``), and
PyPI's torchvision does not import beside the CPU build of torch that dfd pins, so dfd carries
the two timm architectures it needs as one small module. Parameter names are timm's, so a
timm checkpoint (``model.safetensors`` of a timm hub repo, GenD's PE weights, FSFM's ViT)
loads key for key:

- **PE-Core** (Bolya et al. 2025, "Perception Encoder"): timm's ``Eva`` with the
  ``vit_pe_core_*`` arguments (timm/models/eva.py, timm 1.0.16-1.0.31): patch embedding
  without bias, class token, absolute position embedding (resampled bicubic with antialias
  to the input grid, timm's ``resample_abs_pos_embed``), ``norm_pre``, pre-norm blocks with
  fused-qkv attention and 2-D axial RoPE on the patch tokens (timm's ``RotaryEmbeddingCat``:
  ``in_pixels=False``, grid offset 1, ``xy`` indexing, coordinates rescaled to
  ``ref_feat_shape``), a final ``norm`` and attention pooling with one latent query
  (``AttentionPoolLatent``). The feature is the pooled output; PE's 1024-d CLIP projection
  (timm's ``head``) is not part of it, as in GenD (``backbone.head = nn.Identity()``).
- **ViT** (timm's ``VisionTransformer``, e.g. ``vit_base_patch16_224``): patch embedding
  with bias, absolute position embedding, pre-norm blocks, and either the CLS token after a
  final ``norm`` (``pool=token``) or the mean of the patch tokens through ``fc_norm``
  (``pool=avg``, MAE-style; FSFM's fine-tuned models).

Blocks compute ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))`` with exact GELU; attention is
torch's scaled_dot_product_attention, as timm's fused path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPooling

POOLS = ("map", "avg", "token")


@dataclass
class TimmViTConfig:
    """The architecture of a timm-layout ViT (the fields of timm's model definitions).

    Attributes:
        image_size, patch_size: the native input and patch side; the position embedding
            holds (image_size / patch_size)^2 patch positions plus the class token.
        pool: ``map`` (attention pooling, PE), ``avg`` (patch-token mean + ``fc_norm``) or
            ``token`` (the class token after ``norm``).
        patch_bias: the patch embedding has a bias (timm: ``not use_pre_transformer_norm``).
        pre_norm: a LayerNorm ``norm_pre`` before the blocks (PE).
        rope: axial rotary embedding on the patch tokens (PE); ``rope_ref_grid`` the grid
            its coordinates are scaled to (timm's ``ref_feat_shape``).
    """

    image_size: int = 224
    patch_size: int = 16
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    mlp_ratio: float = 4.0
    layer_norm_eps: float = 1e-6
    qkv_bias: bool = True
    patch_bias: bool = True
    pre_norm: bool = False
    pool: str = "token"
    rope: bool = False
    rope_ref_grid: list[int] | None = None
    rope_grid_offset: float = 0.0
    rope_grid_indexing: str = "ij"
    rope_temperature: float = 10000.0
    attn_pool_num_heads: int = 8
    attn_pool_mlp_ratio: float = 4.0
    timm_name: str | None = None  # the timm model this config reproduces, for messages

    def __post_init__(self) -> None:
        if self.pool not in POOLS:
            raise ValueError(f"backbone.architecture.pool={self.pool!r}: choose one of {POOLS}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"backbone.architecture: hidden_size {self.hidden_size} is not divisible by "
                f"num_attention_heads {self.num_attention_heads}"
            )

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """[x0, x1, x2, x3, ...] -> [-x1, x0, -x3, x2, ...] (timm's interleaved `rot`)."""
    return torch.stack([-x[..., 1::2], x[..., ::2]], -1).reshape(x.shape)


def axial_rope(
    grid_h: int, grid_w: int, head_dim: int, cfg: TimmViTConfig, device: torch.device
) -> torch.Tensor:
    """(H*W, 2*head_dim) = [sin | cos] of timm's RotaryEmbeddingCat with ``in_pixels=False``.

    Bands 1 / T^(k / (head_dim/4)), k < head_dim/4; coordinates (index + offset), rescaled to
    the reference grid; each angle repeated twice for the interleaved pairs
    (timm/layers/pos_embed_sincos.py, build_fourier_pos_embed / build_rotary_pos_embed).
    """
    num_bands = head_dim // 4
    exponent = torch.arange(num_bands, device=device, dtype=torch.int64).float() / num_bands
    bands = 1.0 / (cfg.rope_temperature**exponent)
    shape = [grid_h, grid_w]
    ref = list(cfg.rope_ref_grid) if cfg.rope_ref_grid else None
    if cfg.rope_grid_indexing == "xy":
        shape = shape[::-1]
        ref = ref[::-1] if ref else None
    coords = [
        torch.arange(s, device=device, dtype=torch.int64).float() + cfg.rope_grid_offset
        for s in shape
    ]
    if ref:
        coords = [c / s * r for c, s, r in zip(coords, shape, ref, strict=True)]
    grid = torch.stack(torch.meshgrid(*coords, indexing=cfg.rope_grid_indexing), dim=-1)
    angles = grid.unsqueeze(-1) * bands  # (H, W, 2, num_bands)
    sin = angles.sin().reshape(grid_h * grid_w, -1).repeat_interleave(2, -1)
    cos = angles.cos().reshape(grid_h * grid_w, -1).repeat_interleave(2, -1)
    return torch.cat([sin, cos], dim=-1)


class Attention(nn.Module):
    """Multi-head self-attention with fused qkv and output `proj`; RoPE on non-prefix tokens."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, rope: torch.Tensor | None, prefix: int) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        if rope is not None:  # q, k: (B, heads, N, head_dim)
            sin, cos = rope.tensor_split(2, -1)

            def rotate(t: torch.Tensor) -> torch.Tensor:
                patches = t[:, :, prefix:]
                rotated = patches * cos + rotate_pairs(patches) * sin
                return torch.cat([t[:, :, :prefix], rotated], dim=2).type_as(v)

            q, k = rotate(q), rotate(k)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, cfg: TimmViTConfig) -> None:
        super().__init__()
        d = cfg.hidden_size
        self.norm1 = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.attn = Attention(d, cfg.num_attention_heads, cfg.qkv_bias)
        self.norm2 = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.mlp = Mlp(d, int(d * cfg.mlp_ratio))

    def forward(self, x: torch.Tensor, rope: torch.Tensor | None, prefix: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), rope, prefix)
        return x + self.mlp(self.norm2(x))


class AttentionPoolLatent(nn.Module):
    """timm's attention pooling with one learned latent query (PE's and SigLIP's MAP head)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, eps: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.latent = nn.Parameter(torch.zeros(1, 1, dim))
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q = self.q(self.latent.expand(b, -1, -1)).reshape(b, 1, self.num_heads, -1).transpose(1, 2)
        k, v = self.kv(x).reshape(b, n, 2, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, 1, c)
        x = self.proj(x)
        x = x + self.mlp(self.norm(x))
        return x[:, 0]  # (B, D)


class PatchEmbed(nn.Module):
    def __init__(self, cfg: TimmViTConfig) -> None:
        super().__init__()
        p = cfg.patch_size
        self.proj = nn.Conv2d(3, cfg.hidden_size, p, stride=p, bias=cfg.patch_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)  # (B, D, H/p, W/p)


class TimmLayoutViT(nn.Module):
    """A ViT whose ``state_dict`` has timm's key names; ``forward(pixel_values)`` returns
    ``last_hidden_state`` (B, 1+N, D) and ``pooler_output`` (B, D), as transformers models do."""

    def __init__(self, config: TimmViTConfig) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_size
        eps = config.layer_norm_eps
        self.patch_embed = PatchEmbed(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.randn(1, config.grid**2 + 1, d) * 0.02)
        if config.pre_norm:
            self.norm_pre = nn.LayerNorm(d, eps=eps)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
        if config.pool == "avg":
            self.fc_norm = nn.LayerNorm(d, eps=eps)
        else:
            self.norm = nn.LayerNorm(d, eps=eps)
        if config.pool == "map":
            self.attn_pool = AttentionPoolLatent(
                d, config.attn_pool_num_heads, config.attn_pool_mlp_ratio, eps
            )
        self._init_weights()

    def _init_weights(self) -> None:
        # timm's init: truncated normal (std 0.02) for linear weights, zero biases
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def position_embedding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """The class token's embedding and the patch grid's, resampled (bicubic, antialias) from
        the native grid when the input grid differs, as timm's ``resample_abs_pos_embed``."""
        native = self.config.grid
        if (grid_h, grid_w) == (native, native):
            return self.pos_embed
        prefix, patches = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        d = patches.shape[-1]
        dtype = patches.dtype
        patches = patches.float().reshape(1, native, native, d).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=(grid_h, grid_w), mode="bicubic", antialias=True)
        patches = patches.permute(0, 2, 3, 1).reshape(1, -1, d).to(dtype)
        return torch.cat([prefix, patches], dim=1)

    def forward(self, pixel_values: torch.Tensor) -> BaseModelOutputWithPooling:
        x = self.patch_embed(pixel_values)  # (B, D, h, w)
        b, d, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)  # (B, h*w, D)
        x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1)
        x = x + self.position_embedding(h, w)
        rope = None
        if self.config.rope:
            head_dim = d // self.config.num_attention_heads
            rope = axial_rope(h, w, head_dim, self.config, x.device).to(x.dtype)
        if self.config.pre_norm:
            x = self.norm_pre(x)
        for block in self.blocks:
            x = block(x, rope, prefix=1)
        if self.config.pool == "avg":
            pooled = self.fc_norm(x[:, 1:].mean(dim=1))
        else:
            x = self.norm(x)
            pooled = self.attn_pool(x) if self.config.pool == "map" else x[:, 0]
        return BaseModelOutputWithPooling(last_hidden_state=x, pooler_output=pooled)


def parameter_count(config: TimmViTConfig) -> int:
    """Parameters of `config`'s architecture, built on the meta device (no memory)."""
    with torch.device("meta"):
        return sum(p.numel() for p in TimmLayoutViT(config).parameters())


def native_grid(num_positions: int) -> int:
    """The square patch grid a position embedding of `num_positions` (class token included)
    was trained for."""
    side = math.isqrt(num_positions - 1)
    if side * side != num_positions - 1:
        raise ValueError(f"a position embedding of {num_positions} rows is not 1 + a square grid")
    return side
