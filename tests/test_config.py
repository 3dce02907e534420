"""Every option of every config group composes; typos fail at start with a message naming them."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from tests.conftest import CONF_DIR, compose_train

GROUPS = [
    "backbone",
    "peft",
    "head",
    "loss",
    "augment",
    "data",
    "selection",
    "trainer",
    "tracking",
    "experiment",
]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


ALL_OPTIONS = [(g, o) for g in GROUPS for o in _options(g)]


def test_the_required_groups_exist():
    for group in [
        "backbone",
        "peft",
        "head",
        "loss",
        "augment",
        "data",
        "selection",
        "trainer",
        "tracking",
    ]:
        assert _options(group), f"config group {group!r} has no option"


@pytest.mark.parametrize(("group", "option"), ALL_OPTIONS, ids=[f"{g}={o}" for g, o in ALL_OPTIONS])
def test_every_option_composes_and_resolves(group, option, tmp_path):
    cfg = compose_train([f"{group}={option}"], output_dir=tmp_path)
    from omegaconf import OmegaConf

    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved[group if group != "experiment" else "backbone"] is not None


def test_misspelled_option_fails_naming_it():
    with pytest.raises(ConfigCompositionException, match="lnn"):
        compose_train(["peft=lnn"])


def test_misspelled_key_fails_naming_it():
    with pytest.raises(
        (ConfigCompositionException, ConfigAttributeError, ConfigKeyError), match="lrr"
    ):
        compose_train(["trainer.optimizer.lrr=0.1"])


def test_default_is_the_papers_method_on_the_demo(tmp_path):
    cfg = compose_train(output_dir=tmp_path)
    assert (
        cfg.peft._target_.endswith("PeftAdapter")
        and cfg.peft.config._target_ == "peft.LNTuningConfig"
    )
    assert cfg.head._target_.endswith("LinearNormHead")
    assert cfg.loss._target_.endswith("HypersphereObjective") and cfg.loss.slerp is True
    assert cfg.data.name == "demo" and len(cfg.data.test) >= 3


def test_paper_experiment_is_the_recipe_of_method_md(tmp_path):
    cfg = compose_train(["experiment=paper"], output_dir=tmp_path)
    assert cfg.backbone.name_or_path == "openai/clip-vit-large-patch14" and cfg.backbone.pretrained
    assert cfg.backbone.feature == "pooler_output"
    assert cfg.peft.config._target_ == "peft.LNTuningConfig"
    assert list(cfg.peft.config.target_modules) == [
        "pre_layrnorm",
        "layer_norm1",
        "layer_norm2",
        "post_layernorm",
    ]
    assert cfg.head._target_.endswith("LinearNormHead")
    loss = cfg.loss
    assert loss._target_.endswith("HypersphereObjective")
    assert (loss.w_unif, loss.w_align, loss.t, loss.alpha, loss.slerp) == (0.1, 0.1, 2.0, 2.0, True)
    t = cfg.trainer
    assert t.optimizer._target_ == "torch.optim.AdamW" and t.optimizer.lr == 8e-5
    assert list(t.optimizer.betas) == [0.9, 0.999] and t.weight_decay == 0.0
    assert list(t.no_decay) == ["bias", "norm"]
    assert t.scheduler._target_.endswith("CosineAnnealingLR") and t.scheduler.eta_min == 5e-5
    assert (t.batch_size, t.max_epochs, t.precision, t.matmul_precision) == (
        128,
        10,
        "bf16",
        "high",
    )
    assert cfg.seed == 42 and t.monitor == "video_auc"
    aug = cfg.augment.train_augmentations
    assert list(aug) == ["flip", "affine", "blur", "color_jitter", "jpeg"]
    assert (
        aug.flip.p == 0.5 and aug.affine.degrees == 10 and list(aug.affine.translate) == [0.1, 0.1]
    )
    assert list(aug.affine.scale) == [0.9, 1.1] and list(aug.blur.sigma) == [0.1, 2.0]
    assert (aug.color_jitter.brightness, aug.color_jitter.contrast) == (0.1, 0.1)
    assert list(aug.jpeg.quality) == [40, 100]
    assert cfg.data.train.compression == "c23" and cfg.data.val.split == "val"
    assert list(cfg.data.test) == ["cdf_v2", "dfd", "dfdc", "ffiw"]
    assert cfg.data.frames_per_video.eval == 32
