"""Training objectives: cross-entropy, the paper's hypersphere loss, ArcFace.

An objective turns backbone features and labels into ``{"loss", "logits", "terms"}``; the
training loop only calls ``backward`` on ``loss`` and logs ``terms``. An objective that needs
a particular head names its ``conf/head`` option in `required_head` (``"linear_norm"``), and
`check_head` checks the pairing once at start.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hydra.utils import get_class
from omegaconf import OmegaConf
from torch import nn

from dfd.runtime.config import PROJECT_ROOT

HEAD_CONF_DIR = PROJECT_ROOT / "conf" / "head"


def uniformity_loss(z: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """Uniformity on the hypersphere (Wang & Isola, ICML 2020), over all pairs i < j of the batch.

    L_unif = log( mean_{i<j} exp(-t ||z_i - z_j||^2) ), clamped below at log(1e-6) so that a
    batch spread perfectly cannot push the loss to -inf. `z` must be L2-normalized, (B, D).
    A batch with fewer than two samples has no pairs and gives 0.
    """
    if z.shape[0] < 2:
        return z.sum() * 0.0
    sq_dists = torch.pdist(z.float(), p=2).pow(2)  # (B*(B-1)/2,)
    return torch.log(torch.exp(-t * sq_dists).mean().clamp_min(1e-6))


def alignment_loss(z: torch.Tensor, labels: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Label-aware alignment (Wang & Isola, ICML 2020, with positives = same-label pairs).

    L_align = mean over pairs i < j with y_i == y_j of ||z_i - z_j||_2^alpha. With no
    same-label pair in the batch it is 0 (and keeps the graph).
    """
    n = z.shape[0]
    i, j = torch.triu_indices(n, n, offset=1, device=z.device)
    same = labels[i] == labels[j]
    if not bool(same.any()):
        return z.sum() * 0.0
    diffs = z[i[same]].float() - z[j[same]].float()  # (P, D)
    # the norm's gradient at 0 is NaN; identical features are a legal input
    sq = diffs.pow(2).sum(dim=-1)
    dists = torch.where(sq > 0, sq.clamp_min(1e-12).sqrt(), torch.zeros_like(sq))
    return dists.pow(alpha).mean()


SLERP_PARTNERS = ("permutation", "derangement")


def _slerp_pairs_permutation(
    labels: torch.Tensor, generator: torch.Generator | None, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The authors' draw: per class (in sorted order), a random permutation of its members,
    then t ~ U(0, 1) for each of them; a member the permutation leaves in place is its own
    partner (on average one per class per batch)."""
    n_all = labels.shape[0]
    partner = torch.arange(n_all, device=device)
    t = torch.zeros(n_all, 1, device=device)  # (B, 1); unused where partner is self
    for cls in torch.unique(labels):
        members = torch.nonzero(labels == cls).flatten()
        n = members.numel()
        if n < 2:
            continue
        # yermandy/deepfake-detection src/model/dfdet.py (0b872f7, slerp_feature_augmentation):
        # indices2 = torch.randperm(num_embeddings); t = torch.rand((num_embeddings, 1), ...)
        perm = torch.randperm(n, generator=generator).to(device)
        where = generator.device if generator is not None else device
        partner[members] = members[perm]
        t[members] = torch.rand((n, 1), generator=generator, device=where).to(device)
    return partner, t


def _slerp_pairs_derangement(
    labels: torch.Tensor, generator: torch.Generator | None, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """dfd's earlier draw: per class, a cyclic shift of a random order, so every member of a
    class of two or more gets a partner other than itself; then t for the whole batch."""
    n_all = labels.shape[0]
    partner = torch.arange(n_all, device=device)
    for cls in labels.unique():
        members = torch.nonzero(labels == cls).flatten()
        if members.numel() < 2:
            continue
        order = members[torch.randperm(members.numel(), generator=generator).to(device)]
        partner[order] = torch.roll(order, shifts=1)
    t = torch.rand(n_all, 1, generator=generator).to(device)  # (B, 1)
    return partner, t


def slerp_pairs(
    labels: torch.Tensor,
    generator: torch.Generator | None = None,
    partner: str = "permutation",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sample's slerp partner (an index into the batch, of the same class) and its t.

    ``"permutation"`` draws as the authors do (a `torch.randperm` within each class, so a
    sample is its own partner with probability 1/n in a class of n, and stays unaugmented);
    ``"derangement"`` never pairs a sample with itself in a class of two or more. A sample
    of a class with a single member is always its own partner. Returns ``(partner (B,),
    t (B, 1))``; the random draws come from `generator` (torch's default one when None).
    """
    if partner not in SLERP_PARTNERS:
        raise ValueError(
            f"loss.slerp_partner={partner!r} must be one of {', '.join(SLERP_PARTNERS)}"
        )
    draw = _slerp_pairs_permutation if partner == "permutation" else _slerp_pairs_derangement
    return draw(labels, generator, labels.device)


def slerp_augment(
    z: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator | None = None,
    partner: str = "permutation",
) -> torch.Tensor:
    """Slerp feature augmentation (Yermakov et al. 2025, Sec. 3; training only).

    Every feature a is paired with a random feature b of its own class (`slerp_pairs`:
    the authors' per-class permutation by default, ``partner="derangement"`` for a partner
    other than itself) and replaced by the spherical interpolation
    sin((1-t) theta)/sin(theta) a + sin(t theta)/sin(theta) b, with t ~ U(0, 1) per sample and
    theta = arccos(clamp(a.b, -1 + 1e-7, 1 - 1e-7)) between the normalized features. A
    feature that is its own partner (always in a class with a single member) is returned
    normalized and otherwise unchanged.
    """
    z = F.normalize(z.float(), dim=-1)
    pair, t = slerp_pairs(labels.to(z.device), generator, partner)
    a, b = z, z[pair]
    theta = torch.acos((a * b).sum(dim=-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))  # (B, 1)
    sin = torch.sin(theta)
    mixed = (torch.sin((1 - t) * theta) * a + torch.sin(t * theta) * b) / sin
    itself = pair == torch.arange(z.shape[0], device=z.device)
    return torch.where(itself.unsqueeze(-1), a, mixed)


class CrossEntropyObjective:
    """Cross-entropy on the head's logits (optional label smoothing); works with any head."""

    required_head: str | None = None  # a conf/head option name; None = any head

    def __init__(self, label_smoothing: float = 0.0) -> None:
        self.label_smoothing = label_smoothing

    def __call__(self, features: torch.Tensor, labels: torch.Tensor, head: nn.Module) -> dict:
        logits = head(features, labels)
        ce = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        return {"loss": ce, "logits": logits, "terms": {"ce": ce.detach()}}


class HypersphereObjective:
    """The paper's loss: L = w_ce CE + w_unif L_unif + w_align L_align on L2-normalized features.

    With `slerp`, features are first replaced by their slerp augmentation within each class
    (`slerp_augment`); CE (through the `linear_norm` head) and both hypersphere terms are then
    computed on the augmented features (Yermakov et al. 2025, Sec. 3). `slerp_partner` picks
    how partners are drawn: ``"permutation"`` as the authors' code (self-pairs possible),
    ``"derangement"`` never a sample with itself (`slerp_pairs`).
    """

    required_head: str | None = "linear_norm"

    def __init__(
        self,
        w_ce: float = 1.0,
        w_unif: float = 0.1,
        w_align: float = 0.1,
        t: float = 2.0,
        alpha: float = 2.0,
        slerp: bool = True,
        label_smoothing: float = 0.0,
        slerp_partner: str = "permutation",
    ) -> None:
        if slerp_partner not in SLERP_PARTNERS:
            raise ValueError(
                f"loss.slerp_partner={slerp_partner!r} must be one of {', '.join(SLERP_PARTNERS)}"
            )
        self.w_ce, self.w_unif, self.w_align = w_ce, w_unif, w_align
        self.t, self.alpha, self.slerp = t, alpha, slerp
        self.slerp_partner = slerp_partner
        self.label_smoothing = label_smoothing

    def __call__(self, features: torch.Tensor, labels: torch.Tensor, head: nn.Module) -> dict:
        z = F.normalize(features.float(), dim=-1)  # (B, D)
        if self.slerp:
            z = slerp_augment(z, labels, partner=self.slerp_partner)
        logits = head(z, labels)
        ce = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        unif = uniformity_loss(z, self.t)
        align = alignment_loss(z, labels, self.alpha)
        loss = self.w_ce * ce + self.w_unif * unif + self.w_align * align
        terms = {"ce": ce.detach(), "uniformity": unif.detach(), "alignment": align.detach()}
        return {"loss": loss, "logits": logits, "terms": terms}


class EffortObjective(CrossEntropyObjective):
    """Cross-entropy plus Effort's two optional regularizers of its SVD residual layers.

    L = CE + w_orthogonal * mean_l orthogonality_l + w_keep_sv * mean_l singular_value_l over
    the `peft=effort` layers l (Effort's commented-out ``get_losses``: ``loss += lambda_reg *
    reg_term / num_reg`` with lambda_reg = 1 for both terms). Both weights default to 0, as
    the released code trains: then this is ``loss=ce``. `bind` hands it the detector's layers.
    """

    def __init__(
        self, label_smoothing: float = 0.0, w_orthogonal: float = 0.0, w_keep_sv: float = 0.0
    ) -> None:
        super().__init__(label_smoothing)
        self.w_orthogonal, self.w_keep_sv = w_orthogonal, w_keep_sv
        self.layers: list = []

    def bind(self, detector: nn.Module) -> None:
        """Find the SVD residual layers the regularizers act on; fail when a weight is set and
        there are none (the backbone was not built with peft=effort)."""
        from dfd.models.effort import svd_residual_layers

        self.layers = svd_residual_layers(detector)
        if (self.w_orthogonal or self.w_keep_sv) and not self.layers:
            raise ValueError(
                f"loss.w_orthogonal={self.w_orthogonal}, loss.w_keep_sv={self.w_keep_sv}: these "
                f"terms act on Effort's SVD residual layers; set peft=effort (or both weights to 0)"
            )

    def __call__(self, features: torch.Tensor, labels: torch.Tensor, head: nn.Module) -> dict:
        from dfd.models.effort import orthogonality_loss, singular_value_loss

        out = super().__call__(features, labels, head)
        for weight, term, name in (
            (self.w_orthogonal, orthogonality_loss, "orthogonality"),
            (self.w_keep_sv, singular_value_loss, "singular_values"),
        ):
            if weight:
                value = torch.stack([term(layer) for layer in self.layers]).mean()
                out["loss"] = out["loss"] + weight * value
                out["terms"][name] = value.detach()
        return out


class ArcFaceObjective(CrossEntropyObjective):
    """Additive angular margin loss (Deng et al. 2019): CE on the ArcFace head's margin logits.

    s and m live in the `arcface` head's config; this objective requires that head.
    """

    required_head = "arcface"


def head_class(option: str) -> type[nn.Module]:
    """The class the ``conf/head/<option>.yaml`` option builds (its `_target_`)."""
    path = HEAD_CONF_DIR / f"{option}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in HEAD_CONF_DIR.glob("*.yaml"))
        raise ValueError(f"no head option {option!r} (conf/head/{option}.yaml); options: {known}")
    return get_class(OmegaConf.load(path)._target_)


def check_head(objective: object, head: nn.Module) -> None:
    """Fail at start when a loss is paired with a head it cannot work with.

    The loss declares the head *option* it needs (`required_head`, e.g. ``"linear_norm"``);
    the head passes when it is an instance of the class that option builds (a subclass, or
    the same class under another option name, passes too). The message names the option
    to set, as typed on the command line.
    """
    option = getattr(objective, "required_head", None)
    if option is None:
        return
    required = head_class(option)
    if not isinstance(head, required):
        raise ValueError(
            f"the loss {type(objective).__name__} needs the head option {option!r} "
            f"({required.__name__}), but the head config builds {type(head).__name__}: set "
            f"`head={option}` with this loss."
        )


__all__ = [
    "ArcFaceObjective",
    "CrossEntropyObjective",
    "EffortObjective",
    "HypersphereObjective",
    "alignment_loss",
    "check_head",
    "head_class",
    "SLERP_PARTNERS",
    "slerp_augment",
    "slerp_pairs",
    "uniformity_loss",
]
