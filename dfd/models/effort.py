"""Effort (Yan et al., ICML 2025, "Orthogonal Subspace Decomposition for Generalizable AI-Generated
Image Detection"): SVD residual tuning of the attention linears.

Each targeted ``nn.Linear`` W (out x in) is split by its SVD W = U S V^T: the top
``min(out, in) - residual_rank`` singular triplets form ``weight_main`` (frozen), the remaining
``residual_rank`` triplets (the smallest) become the trainable ``U_residual`` (out x r),
``S_residual`` (r) and ``V_residual`` (r x in); the layer computes
``x (weight_main + U_residual diag(S_residual) V_residual)^T + bias``. Everything else in the
backbone is frozen, biases and LayerNorms included. Source: YZY-stack/Effort-AIGI-Detection,
DeepfakeBench/training/detectors/effort_detector.py (``apply_svd_residual_to_self_attn`` with
r = 1024 - 1 for CLIP ViT-L/14, on every Linear under a ``self_attn`` module: q/k/v/out_proj of
the 24 layers; the MLPs are not touched).

The two regularizers of that file, ``compute_orthogonal_loss`` and ``compute_keepsv_loss``, are
here as `orthogonality_loss` and `singular_value_loss`; the released training calls neither
(both are commented out in ``get_losses``), so they are loss options that are off by default
(``loss=effort``, ``conf/loss/effort.yaml``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class SVDResidualLinear(nn.Module):
    """A linear layer as frozen principal part plus a trainable rank-r SVD residual."""

    def __init__(
        self, linear: nn.Linear, residual_rank: int = 1, keep_principal_factors: bool = False
    ) -> None:
        super().__init__()
        weight = linear.weight.detach()
        rank = min(weight.shape)
        if not 0 < residual_rank < rank:
            raise ValueError(
                f"peft.residual_rank={residual_rank}: must lie in [1, {rank - 1}] for a "
                f"{tuple(weight.shape)} weight"
            )
        self.in_features, self.out_features = linear.in_features, linear.out_features
        keep = rank - residual_rank
        u, s, vh = torch.linalg.svd(weight.float(), full_matrices=False)
        dtype = weight.dtype
        main = u[:, :keep] @ torch.diag(s[:keep]) @ vh[:keep]
        self.weight_main = nn.Parameter(main.to(dtype), requires_grad=False)
        self.U_residual = nn.Parameter(u[:, keep:].to(dtype).contiguous())  # (out, r)
        self.S_residual = nn.Parameter(s[keep:].to(dtype).contiguous())  # (r,)
        self.V_residual = nn.Parameter(vh[keep:].to(dtype).contiguous())  # (r, in)
        self.bias = linear.bias
        if self.bias is not None:
            self.bias.requires_grad_(False)
        # for the singular-value term; recomputed from the pretrained weight at every build
        self.register_buffer("weight_original_fnorm", torch.linalg.norm(weight.float()), False)
        if keep_principal_factors:
            # the orthogonality term needs the frozen top factors (0.8 GB for ViT-L/14 in fp32)
            self.register_buffer("U_principal", u[:, :keep].to(dtype).contiguous(), False)
            self.register_buffer("V_principal", vh[:keep].to(dtype).contiguous(), False)

    def residual(self) -> torch.Tensor:
        return self.U_residual @ torch.diag(self.S_residual) @ self.V_residual  # (out, in)

    @property
    def weight(self) -> torch.Tensor:
        """The effective weight (code that reads ``linear.weight``, e.g. its dtype, sees it)."""
        return self.weight_main + self.residual()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` computing the same function: W = weight_main + U S V."""
        with torch.device(self.weight_main.device):
            linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        with torch.no_grad():
            linear.weight.copy_(self.weight)
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear.to(self.weight_main.dtype).requires_grad_(False)


def orthogonality_loss(module: SVDResidualLinear) -> torch.Tensor:
    """0.5 ||[U_p U_r][U_p U_r]^T - I||_F + 0.5 ||[V_p; V_r][V_p; V_r]^T - I||_F (Frobenius norms,
    not squared), with the frozen principal factors U_p, V_p: Effort's ``compute_orthogonal_loss``."""
    if not hasattr(module, "U_principal"):
        raise ValueError(
            "loss.w_orthogonal > 0 needs the frozen principal factors: set "
            "peft.keep_principal_factors=true"
        )
    u = torch.cat([module.U_principal, module.U_residual], dim=1).float()
    v = torch.cat([module.V_principal, module.V_residual], dim=0).float()
    eye_u = torch.eye(u.shape[0], device=u.device)
    eye_v = torch.eye(v.shape[0], device=v.device)
    return 0.5 * torch.linalg.norm(u @ u.T - eye_u) + 0.5 * torch.linalg.norm(v @ v.T - eye_v)


def singular_value_loss(module: SVDResidualLinear) -> torch.Tensor:
    """| ||W_current||_F^2 - ||W_original||_F^2 |: Effort's ``compute_keepsv_loss``."""
    current = torch.linalg.norm(module.weight.float()) ** 2
    return torch.abs(current - module.weight_original_fnorm**2)


class EffortAdapter:
    """``peft=effort``: every ``nn.Linear`` whose name ends with one of `target_modules` becomes
    an `SVDResidualLinear`; all other backbone parameters are frozen.

    Args:
        target_modules: module-name suffixes, by default the backbone's
            ``attention_modules`` (CLIP: q_proj, k_proj, v_proj, out_proj, Effort's choice).
        residual_rank: how many of the smallest singular triplets train (Effort: 1).
        keep_principal_factors: keep the frozen top factors as buffers, which only the
            orthogonality loss term needs.
    """

    def __init__(
        self,
        target_modules: Sequence[str],
        residual_rank: int = 1,
        keep_principal_factors: bool = False,
    ) -> None:
        self.target_modules = list(target_modules)
        self.residual_rank = residual_rank
        self.keep_principal_factors = keep_principal_factors

    def targets(self, model: nn.Module) -> list[str]:
        """Names of the linear layers the method replaces."""
        return [
            name
            for name, module in model.named_modules()
            if isinstance(module, nn.Linear)
            and any(name == t or name.endswith("." + t) for t in self.target_modules)
        ]

    def apply(self, model: nn.Module) -> nn.Module:
        names = self.targets(model)
        if not names:
            raise ValueError(
                f"peft=effort found no nn.Linear named {self.target_modules} in "
                f"{type(model).__name__}: set backbone.attention_modules (or "
                f"peft.target_modules) to the backbone's attention linears"
            )
        model.requires_grad_(False)
        for name in names:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            linear = getattr(parent, child)
            setattr(
                parent,
                child,
                SVDResidualLinear(linear, self.residual_rank, self.keep_principal_factors),
            )
        return model


def svd_residual_layers(model: nn.Module) -> list[SVDResidualLinear]:
    return [m for m in model.modules() if isinstance(m, SVDResidualLinear)]


def merge_svd_residuals(model: nn.Module) -> nn.Module:
    """Replace every `SVDResidualLinear` in `model` by its merged ``nn.Linear`` (in place)."""
    for name, module in list(model.named_modules()):
        if isinstance(module, SVDResidualLinear):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.merged())
    return model
