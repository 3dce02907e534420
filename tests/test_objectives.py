"""Hypersphere losses, slerp and ArcFace against straightforward independent computations."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from dfd.models.heads import ArcFaceHead, LinearHead, LinearNormHead
from dfd.models.objectives import (
    ArcFaceObjective,
    CrossEntropyObjective,
    HypersphereObjective,
    alignment_loss,
    check_head,
    slerp_augment,
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


def test_slerp_matches_the_formula_and_stays_within_class():
    y = torch.tensor([0, 1, 0, 0, 1, 1, 0, 2])  # class 2 has one member
    z = _unit(len(y), seed=3).float()
    gen_state = torch.Generator().manual_seed(7)
    out = slerp_augment(z, y, gen_state)
    # replay the generator: a permutation per class (in unique() order), then t
    replay = torch.Generator().manual_seed(7)
    partner = torch.arange(len(y))
    for cls in y.unique():
        members = torch.nonzero(y == cls).flatten()
        if members.numel() < 2:
            continue
        order = members[torch.randperm(members.numel(), generator=replay)]
        partner[order] = torch.roll(order, 1)
    t = torch.rand(len(y), 1, generator=replay)
    for i in range(len(y)):
        if partner[i] == i:
            torch.testing.assert_close(out[i], z[i])
            continue
        assert y[partner[i]] == y[i] and partner[i] != i
        expected = _naive_slerp(z[i].double(), z[partner[i]].double(), float(t[i]))
        torch.testing.assert_close(out[i].double(), expected, atol=1e-5, rtol=1e-5)
        assert float(out[i].norm()) == pytest.approx(1.0, abs=1e-5)


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
