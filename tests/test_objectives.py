"""Hypersphere losses, slerp and ArcFace against straightforward independent computations."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from dfd.models.heads import ArcFaceHead, LinearHead, LinearNormHead
from dfd.models.objectives import (
    SLERP_PARTNERS,
    ArcFaceObjective,
    CrossEntropyObjective,
    HypersphereObjective,
    alignment_loss,
    check_head,
    slerp_augment,
    slerp_pairs,
    uniformity_loss,
)


def _unit(n, d=8, seed=0):
    return F.normalize(
        torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64),
        dim=-1,
    )


def _naive_uniformity(z, t=2.0):
    vals = [
        math.exp(-t * float(((z[i] - z[j]) ** 2).sum()))
        for i, j in itertools.combinations(range(len(z)), 2)
    ]
    return math.log(max(sum(vals) / len(vals), 1e-6))


def _naive_alignment(z, y, alpha=2.0):
    vals = [
        float(((z[i] - z[j]) ** 2).sum()) ** (alpha / 2)
        for i, j in itertools.combinations(range(len(z)), 2)
        if y[i] == y[j]
    ]
    return sum(vals) / len(vals) if vals else 0.0


LABEL_CASES = {
    "mixed": [0, 1, 1, 0, 1, 0, 0, 1],
    "one_class": [1] * 6,
    "singleton_class": [0, 0, 0, 0, 1],
    "all_singletons": [0, 1],
}


@pytest.mark.parametrize("case", LABEL_CASES)
def test_uniformity_and_alignment_match_naive(case):
    y = torch.tensor(LABEL_CASES[case])
    z = _unit(len(y))
    assert float(uniformity_loss(z)) == pytest.approx(_naive_uniformity(z), rel=1e-6)
    assert float(alignment_loss(z, y)) == pytest.approx(_naive_alignment(z, y), rel=1e-6, abs=1e-12)
    assert float(alignment_loss(z, y, alpha=3.0)) == pytest.approx(
        _naive_alignment(z, y, 3.0), rel=1e-6, abs=1e-12
    )


def test_uniformity_is_clamped_at_log_1e_minus_6():
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])  # antipodal: exp(-2*4) = 3.4e-4 > 1e-6
    assert float(uniformity_loss(z, t=2.0)) == pytest.approx(-8.0)
    assert float(uniformity_loss(z, t=10.0)) == pytest.approx(math.log(1e-6))


def test_identical_features_give_finite_losses_and_gradients():
    z = torch.ones(4, 8, requires_grad=True)
    y = torch.tensor([0, 0, 1, 1])
    zn = F.normalize(z, dim=-1)
    aug = slerp_augment(zn, y, torch.Generator().manual_seed(0))
    loss = uniformity_loss(aug) + alignment_loss(aug, y)
    loss.backward()
    assert torch.isfinite(aug).all() and torch.isfinite(loss) and torch.isfinite(z.grad).all()
    torch.testing.assert_close(aug, zn.detach(), atol=1e-3, rtol=0)


def _naive_slerp(a, b, t):
    theta = math.acos(max(-1 + 1e-7, min(1 - 1e-7, float(a @ b))))
    return (math.sin((1 - t) * theta) * a + math.sin(t * theta) * b) / math.sin(theta)


def _replay_partners(y: torch.Tensor, seed: int, partner: str):
    """The partners and t that `slerp_augment` draws from a generator seeded with `seed`,
    written out from each draw's description."""
    replay = torch.Generator().manual_seed(seed)
    pair, t = torch.arange(len(y)), torch.zeros(len(y), 1)
    for cls in y.unique():
        members = torch.nonzero(y == cls).flatten()
        if members.numel() < 2:
            continue
        if partner == "permutation":  # per class: randperm, then t for its members
            pair[members] = members[torch.randperm(members.numel(), generator=replay)]
            t[members] = torch.rand(members.numel(), 1, generator=replay)
        else:  # per class: a cyclic shift of a random order; t for the batch at the end
            order = members[torch.randperm(members.numel(), generator=replay)]
            pair[order] = torch.roll(order, 1)
    if partner == "derangement":
        t = torch.rand(len(y), 1, generator=replay)
    return pair, t


@pytest.mark.parametrize("partner", SLERP_PARTNERS)
def test_slerp_matches_the_formula_and_stays_within_class(partner):
    y = torch.tensor([0, 1, 0, 0, 1, 1, 0, 2, 1, 0, 0, 1])  # class 2 has one member
    z = _unit(len(y), seed=3).float()
    out = slerp_augment(z, y, torch.Generator().manual_seed(7), partner=partner)
    pair, t = _replay_partners(y, 7, partner)
    for i in range(len(y)):
        if pair[i] == i:
            torch.testing.assert_close(out[i], z[i])
            continue
        assert y[pair[i]] == y[i]
        expected = _naive_slerp(z[i].double(), z[pair[i]].double(), float(t[i]))
        torch.testing.assert_close(out[i].double(), expected, atol=1e-5, rtol=1e-5)
        assert float(out[i].norm()) == pytest.approx(1.0, abs=1e-5)


def _authors_slerp(A, B, t):
    # yermandy/deepfake-detection src/model/dfdet.py (commit 0b872f7), `slerp`, verbatim
    A = F.normalize(A, dim=-1)
    B = F.normalize(B, dim=-1)
    dot = torch.sum(A * B, dim=-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7)
    theta = torch.acos(dot)
    sin_theta = torch.sin(theta)
    t_theta = t * theta
    coeff_a = torch.sin(theta - t_theta) / sin_theta
    coeff_b = torch.sin(t_theta) / sin_theta
    return coeff_a * A + coeff_b * B


def _authors_slerp_feature_augmentation(labels, features):
    # the same file, `DeepfakeDetectionModel.slerp_feature_augmentation` (training, range [0, 1]),
    # verbatim but for `self` and the batch object
    for class_label in torch.unique(labels):
        class_mask = labels == class_label
        if class_mask.sum() < 2:
            continue
        class_features = features[class_mask]
        num_embeddings = len(class_features)
        indices2 = torch.randperm(num_embeddings)
        A = class_features
        B = class_features[indices2]
        t = torch.rand((num_embeddings, 1), device=features.device, dtype=features.dtype)
        t0, t1 = 0.0, 1.0
        t = t * (t1 - t0) + t0
        augmented_embeddings = _authors_slerp(A, B, t)
        features[class_mask] = augmented_embeddings.to(features.dtype)
    return features


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_default_slerp_draws_and_mixes_exactly_as_the_authors_code(seed):
    # same seed of torch's default generator, same calls in the same order: same pairs and t
    y = torch.tensor([1, 0, 0, 1, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 2, 0])
    z = _unit(len(y), d=16, seed=seed).float()
    torch.manual_seed(seed)
    theirs = _authors_slerp_feature_augmentation(y, z.clone())
    torch.manual_seed(seed)
    ours = slerp_augment(z, y)
    torch.testing.assert_close(ours, theirs, atol=2e-6, rtol=0)
    # and both generators moved on by the same draws
    torch.manual_seed(seed)
    _authors_slerp_feature_augmentation(y, z.clone())
    after_theirs = torch.rand(4)
    torch.manual_seed(seed)
    slerp_augment(z, y)
    torch.testing.assert_close(torch.rand(4), after_theirs, atol=0, rtol=0)


def test_self_pairs_are_one_in_n_per_class_by_default_and_never_with_derangement():
    sizes = {0: 10, 1: 6, 2: 2}  # class -> members in the batch
    y = torch.tensor([c for c, n in sizes.items() for _ in range(n)])[torch.randperm(18)]
    draws = 4000
    for partner in SLERP_PARTNERS:
        g = torch.Generator().manual_seed(11)
        self_pairs = dict.fromkeys(sizes, 0)
        for _ in range(draws):
            pair, _ = slerp_pairs(y, g, partner)
            assert bool((y[pair] == y).all())  # always within the class
            for c in sizes:
                members = y == c
                self_pairs[c] += int((pair[members] == torch.arange(len(y))[members]).sum())
        for c, n in sizes.items():
            fraction = self_pairs[c] / (draws * n)
            if partner == "derangement":
                assert fraction == 0.0, (c, fraction)
            else:
                # a random permutation of n has one fixed point on average, variance 1
                se = 1.0 / (n * math.sqrt(draws))
                assert abs(fraction - 1.0 / n) < 3 * se, (c, n, fraction, se)


def test_an_unknown_slerp_partner_is_a_one_line_error():
    with pytest.raises(
        ValueError, match=r"^loss.slerp_partner='shift' must be one of permutation, derangement$"
    ):
        HypersphereObjective(slerp_partner="shift")
    with pytest.raises(ValueError, match="loss.slerp_partner='shift'"):
        slerp_pairs(torch.tensor([0, 0, 1]), partner="shift")
    # from the command line: the one line dfd prints for a config error
    from hydra.utils import instantiate

    from dfd.runtime.cli import user_message
    from tests.conftest import compose_train

    cfg = compose_train(["loss.slerp_partner=shift"])
    with pytest.raises(Exception) as err:
        instantiate(cfg.loss)
    assert user_message(err.value, "train", []) == (
        "loss.slerp_partner='shift' must be one of permutation, derangement"
    )


def test_arcface_head_logits():
    head = ArcFaceHead(in_features=8, num_classes=2, s=10.0, m=0.3)
    f = torch.randn(5, 8)
    y = torch.tensor([0, 1, 1, 0, 1])
    w = F.normalize(head.weight.detach(), dim=-1)
    z = F.normalize(f, dim=-1)
    logits = head(f, y).detach()
    for i in range(5):
        for k in range(2):
            cos = float(z[i] @ w[k])
            expected = 10.0 * (math.cos(math.acos(cos) + 0.3) if k == y[i] else cos)
            assert float(logits[i, k]) == pytest.approx(expected, abs=1e-4)
    torch.testing.assert_close(head(f).detach(), 10.0 * z @ w.T)


def _reference_phi(theta: float, m: float) -> float:
    # insightface's non-easy margin written from its definition, on the angle
    if math.cos(theta) > math.cos(math.pi - m):
        return math.cos(theta + m)
    return math.cos(theta) - math.sin(math.pi - m) * m


@pytest.mark.parametrize("m", [0.2, 0.5, 1.2])
def test_arcface_margin_falls_back_past_pi_minus_m_and_stays_monotone(m):
    head = ArcFaceHead(in_features=4, s=1.0, m=m)
    theta = torch.linspace(0.0, math.pi, 2001, dtype=torch.float64)
    phi = head.margin(torch.cos(theta)).double()
    expected = torch.tensor([_reference_phi(float(t), m) for t in theta], dtype=torch.float64)
    torch.testing.assert_close(phi, expected, atol=1e-6, rtol=0)
    # non-increasing in theta: cos(theta + m) alone rises again past pi - m
    assert bool((phi[1:] <= phi[:-1] + 1e-7).all())
    past = theta > math.pi - m
    assert bool((phi[past] < -1.0).all())
    assert bool((torch.cos(theta[past] + m) > phi[past]).all())


def test_arcface_trains_under_bf16_autocast_with_features_on_their_class_weights():
    torch.manual_seed(0)
    head = ArcFaceHead(in_features=16, num_classes=2, s=16.0, m=0.2)
    labels = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1])
    # the case that broke: each feature is its class weight, so cos(theta_y) is 1 in bf16
    features = torch.nn.Parameter(head.weight.detach()[labels].clone() * 3.0)
    params = [features, *head.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.1)
    objective = ArcFaceObjective()
    for _ in range(5):
        optimizer.zero_grad()
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            out = objective(features, labels, head)
        assert out["logits"].dtype == torch.float32
        out["loss"].backward()
        assert torch.isfinite(out["loss"]).item()
        for p in params:
            assert p.grad is not None and bool(torch.isfinite(p.grad).all())
        optimizer.step()
    # the margin logit of an aligned sample is s cos(m), up to fp32 resolution of the angle at 0
    with torch.no_grad():
        aligned = head(head.weight[labels], labels)
    torch.testing.assert_close(
        aligned[torch.arange(8), labels], torch.full((8,), 16.0 * math.cos(0.2)), atol=5e-3, rtol=0
    )


def test_hypersphere_objective_total_is_the_weighted_sum():
    torch.manual_seed(0)
    head = LinearNormHead(8)
    feats = torch.randn(6, 8)
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    obj = HypersphereObjective(w_ce=1.0, w_unif=0.5, w_align=0.25, slerp=False)
    out = obj(feats, y, head)
    z = F.normalize(feats, dim=-1)
    ce = F.cross_entropy(head(z), y)
    expected = ce + 0.5 * _naive_uniformity(z.double()) + 0.25 * _naive_alignment(z.double(), y)
    assert float(out["loss"].detach()) == pytest.approx(float(expected.detach()), rel=1e-5)


def test_loss_head_pairing_is_checked():
    check_head(CrossEntropyObjective(), LinearHead(4))
    check_head(HypersphereObjective(), LinearNormHead(4))
    check_head(ArcFaceObjective(), ArcFaceHead(4))
    with pytest.raises(ValueError, match="head=linear_norm"):
        check_head(HypersphereObjective(), LinearHead(4))
    with pytest.raises(ValueError, match="head=arcface"):
        check_head(ArcFaceObjective(), LinearNormHead(4))
