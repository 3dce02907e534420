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
    "preprocess",
    "data",
    "trainer",
    "tracking",
    "experiment",
]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


ALL_OPTIONS = [(g, o) for g in GROUPS for o in _options(g)]


def test_the_required_groups_exist():
    for group in ["backbone", "peft", "head", "loss", "preprocess", "data", "trainer", "tracking"]:
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
