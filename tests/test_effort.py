"""peft=effort: Effort's SVD residual tuning (count on ViT-L/14 equal to Effort's, function kept at
initialization, only the residual trains, its loss options), trained on the demo, then reloaded,
evaluated and exported with the residual folded into the weights."""

from __future__ import annotations

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from safetensors.torch import load_file

from dfd.engine.restore import load_detector
from dfd.evaluate import evaluate_checkpoint
from dfd.export.traced import ExportedDetector, _example_inputs, merge_adapters
from dfd.models.adapters import count_parameters
from dfd.models.build import build_detector
from dfd.models.effort import SVDResidualLinear, orthogonality_loss, singular_value_loss
from tests.conftest import CONF_DIR, compose_train
from tests.demo_checkpoint import trained_checkpoint


def effort_trainable_count(width: int, layers: int, residual_rank: int = 1) -> int:
    """Effort's rule (effort_detector.py, apply_svd_residual_to_self_attn with r = width - 1):
    every Linear under a `self_attn` module (q, k, v, out_proj: width x width) keeps
    U_residual (width x r), S_residual (r), V_residual (r x width) trainable; the head
    nn.Linear(width, 2) trains too."""
    per_linear = width * residual_rank + residual_rank + residual_rank * width
    return layers * 4 * per_linear + (width * 2 + 2)


def test_vit_l14_trainable_count_equals_efforts():
    assert effort_trainable_count(1024, 24) == 198_754  # Effort's CLIP ViT-L/14 detector
    cfg = compose_train(
        [
            "backbone=clip_vit_l14",
            "backbone.pretrained=false",
            "peft=effort",
            "head=linear",
            "loss=ce",
        ]
    )
    with torch.device("meta"):  # the real architecture, no memory
        model, _ = build_detector(cfg)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert count_parameters(model)[0] == 198_754
    residual = [n for n in trainable if not n.startswith("head.")]
    assert len(residual) == 96 * 3
    assert all(n.rsplit(".", 1)[-1] in {"U_residual", "S_residual", "V_residual"} for n in residual)
    # biases, LayerNorms, MLPs and embeddings stay frozen, as in Effort
    assert sum(isinstance(m, SVDResidualLinear) for m in model.modules()) == 96


def _tiny(*extra: str):
    cfg = compose_train(["backbone=tiny_clip", "backbone.pretrained=false", *extra])
    torch.manual_seed(0)
    return build_detector(cfg)


def test_the_split_keeps_the_function_and_only_the_residual_trains():
    reference, _ = _tiny("peft=linear_probe", "head=linear", "loss=ce")
    model, objective = _tiny("peft=effort", "head=linear", "loss=ce")
    model.head.load_state_dict(reference.head.state_dict())
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.logits(x), reference.logits(x), atol=1e-5, rtol=0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    objective(model(x), torch.tensor([0, 1, 0, 1]), model.head)["loss"].backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(
        n.startswith("head.") or n.endswith(("U_residual", "S_residual", "V_residual"))
        for n in changed
    )
    assert any(n.endswith("U_residual") for n in changed)


def test_regularizers_are_loss_options_and_reach_the_residual():
    # off by default: loss=effort is cross-entropy alone
    model, objective = _tiny("peft=effort", "head=linear", "loss=effort")
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 0, 1])
    assert set(objective(model(x), y, model.head)["terms"]) == {"ce"}

    model, objective = _tiny(
        "peft=effort",
        "peft.keep_principal_factors=true",
        "head=linear",
        "loss=effort",
        "loss.w_orthogonal=1.0",
        "loss.w_keep_sv=1.0",
    )
    layer = next(m for m in model.modules() if isinstance(m, SVDResidualLinear))
    # at the split the factors are orthonormal and the norm is the pretrained one
    assert orthogonality_loss(layer) < 1e-3 and singular_value_loss(layer) < 1e-2
    with torch.no_grad():
        layer.U_residual.mul_(3.0)
    out = objective(model(x), y, model.head)
    assert set(out["terms"]) == {"ce", "orthogonality", "singular_values"}
    out["loss"].backward()
    assert layer.U_residual.grad.abs().sum() > 0


def test_regularizer_options_refuse_a_backbone_without_effort_layers():
    with pytest.raises(ValueError, match="set peft=effort"):
        _tiny("peft=ln", "head=linear", "loss=effort", "loss.w_keep_sv=1.0")
    model, objective = _tiny("peft=effort", "head=linear", "loss=effort", "loss.w_orthogonal=1.0")
    with pytest.raises(ValueError, match="keep_principal_factors=true"):
        objective(model(torch.randn(2, 3, 64, 64)), torch.tensor([0, 1]), model.head)


def test_effort_run_trains_on_the_demo_then_reloads_evaluates_and_exports(demo_cache, tmp_path):
    checkpoint = trained_checkpoint(demo_cache, "peft=effort", "head=linear", "loss=effort")
    saved = load_file(str(checkpoint / "trainable.safetensors"))
    # only what trains is saved: the residual factors and the head
    assert saved and all(
        k.startswith("head.") or k.endswith(("U_residual", "S_residual", "V_residual"))
        for k in saved
    )
    model, _ = load_detector(checkpoint)
    layer = next(m for m in model.modules() if isinstance(m, SVDResidualLinear))
    key = next(k for k in saved if k.endswith("U_residual"))
    assert torch.equal(model.get_parameter(_model_name(model, key)), saved[key])
    assert not torch.equal(layer.U_residual, torch.zeros_like(layer.U_residual))

    x = _example_inputs(model.backbone.input_spec, batch=3)
    with torch.no_grad():
        expected = model.logits(x)
        merged = ExportedDetector(merge_adapters(model)).eval()
        logits, _ = merged(x)
    assert not any(isinstance(m, SVDResidualLinear) for m in merged.modules())
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name="evaluate", overrides=[f"checkpoint={checkpoint}", "tracking=none"]
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "eval")
    results = evaluate_checkpoint(cfg)
    assert 0.0 <= results["mean"]["video_auc"] <= 1.0


def _model_name(model: torch.nn.Module, canonical: str) -> str:
    from dfd.engine.checkpoint import canonical_key

    return next(n for n, _ in model.named_parameters() if canonical_key(n) == canonical)
