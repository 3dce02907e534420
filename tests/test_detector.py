"""Detector construction: exact trainable counts on the real ViT-L/14 architecture, and the
peft x head x loss table on the tiny backbone (allowed pairs train a step, others fail at start),
generated from conf/peft, conf/head, conf/loss and the head each loss declares."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from dfd.engine.optim import build_optimizer
from dfd.models.adapters import count_parameters
from dfd.models.build import build_detector
from tests.conftest import CONF_DIR, compose_train

VIT_L14_BACKBONE = 303_179_776
HEAD_2050 = 1024 * 2 + 2


def _build(overrides, device="cpu"):
    cfg = compose_train(overrides)
    with torch.device(device):
        return build_detector(cfg)


@pytest.mark.parametrize(
    ("peft", "head", "trainable"),
    [
        ("ln", "linear_norm", 102_400 + HEAD_2050),
        ("lora", "linear_norm", 49_152 + HEAD_2050),
        ("linear_probe", "linear", HEAD_2050),
        ("full", "linear_norm", VIT_L14_BACKBONE + HEAD_2050),
    ],
)
def test_vit_l14_trainable_counts(peft, head, trainable):
    # the meta device builds the exact architecture without allocating its 1.2 GB
    model, _ = _build(
        [
            "backbone=clip_vit_l14",
            "backbone.pretrained=false",
            f"peft={peft}",
            f"head={head}",
            "loss=ce",
        ],
        "meta",
    )
    n_trainable, n_total = count_parameters(model)
    assert n_trainable == trainable
    lora_extra = 49_152 if peft == "lora" else 0
    assert n_total == VIT_L14_BACKBONE + HEAD_2050 + lora_extra
    assert model.backbone.feature_dim == 1024


def test_lora_r8_on_q_and_v():
    model, _ = _build(
        [
            "backbone=clip_vit_l14",
            "backbone.pretrained=false",
            "peft=lora",
            "peft.config.r=8",
            "peft.config.target_modules=[q_proj,v_proj]",
            "head=linear_norm",
        ],
        "meta",
    )
    assert count_parameters(model)[0] == 786_432 + HEAD_2050


def options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The option names of one config group: its YAML files."""
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def required_head(loss: str, conf_dir: Path = CONF_DIR) -> str | None:
    """The conf/head option a conf/loss option declares it needs (its objective's `required_head`)."""
    return getattr(
        get_class(OmegaConf.load(conf_dir / "loss" / f"{loss}.yaml")._target_),
        "required_head",
        None,
    )


def method_table(conf_dir: Path = CONF_DIR) -> list[tuple[str, str, str, str | None]]:
    """Every (peft, head, loss) of conf/, with the head the loss needs: a new option file adds rows."""
    return [
        (peft, head, loss, required_head(loss, conf_dir))
        for peft, head, loss in itertools.product(
            options("peft", conf_dir), options("head", conf_dir), options("loss", conf_dir)
        )
    ]


TABLE = method_table()


def test_a_new_peft_yaml_adds_rows_to_the_table_with_no_code_change(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    # a new option is one file: LoRA at rank 2 on the same modules
    (conf / "peft" / "lora_r2.yaml").write_text(
        "defaults:\n  - lora\n  - _self_\n\nconfig:\n  r: 2\n"
    )
    table = method_table(conf)
    new = [row for row in table if row[0] == "lora_r2"]
    assert len(table) == len(TABLE) + len(new) and len(new) == len(options("head")) * len(
        options("loss")
    )
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose(
            "train", overrides=["peft=lora_r2", "backbone=tiny_clip", "backbone.pretrained=false"]
        )
    model, _ = build_detector(cfg)
    lora = [n for n, p in model.named_parameters() if p.requires_grad and "lora_A" in n]
    assert lora and all(model.get_parameter(n).shape[0] == 2 for n in lora)


@pytest.mark.parametrize(
    ("peft", "head", "loss", "needs"), TABLE, ids=["-".join(t[:3]) for t in TABLE]
)
def test_every_combination_trains_a_step_or_fails_at_start(peft, head, loss, needs):
    overrides = [
        "backbone=tiny_clip",
        "backbone.pretrained=false",
        f"peft={peft}",
        f"head={head}",
        f"loss={loss}",
    ]
    if needs is not None and head != needs:
        # the message names the option to set, as typed on the command line
        with pytest.raises(ValueError, match=f"set `head={needs}`"):
            _build(overrides)
        return
    torch.manual_seed(0)
    cfg = compose_train(overrides)
    model, objective = build_detector(cfg)
    optimizer = build_optimizer(
        model,
        lambda groups: torch.optim.AdamW(groups, lr=1e-2),
        cfg.trainer.weight_decay,
        cfg.trainer.no_decay,
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x = torch.randn(6, 3, 64, 64)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    out = objective(model(x), y, model.head)
    out["loss"].backward()
    optimizer.step()
    assert torch.isfinite(out["loss"])
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert changed <= trainable  # frozen weights never move
    assert any(n.startswith("head.") for n in changed)
    backbone_changed = any(n.startswith("backbone.") for n in changed)
    assert backbone_changed == (peft != "linear_probe")


def test_the_early_loss_head_check_does_not_shift_seeded_initialization():
    # the check builds a probe head; seeded runs must initialise exactly as without it
    cfg = compose_train(["backbone=tiny_clip", "backbone.pretrained=false"])
    torch.manual_seed(123)
    model, _ = build_detector(cfg)
    torch.manual_seed(123)
    backbone = instantiate(cfg.backbone)
    instantiate(cfg.peft).apply(backbone.model)
    head = instantiate(cfg.head)(in_features=backbone.feature_dim)
    torch.testing.assert_close(model.head.fc.weight, head.fc.weight, rtol=0, atol=0)
