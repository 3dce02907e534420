"""The detector a config describes: backbone with its PEFT adapter, head, and objective.

Every choice comes from a config group built with `hydra.utils.instantiate`; nothing here
branches on option names.
"""

from __future__ import annotations

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from dfd.models.detector import Detector
from dfd.models.objectives import check_head


def build_detector(cfg: DictConfig) -> tuple[Detector, object]:
    """Backbone (with its PEFT adapter applied), head and objective; fails early on a bad pairing."""
    objective = instantiate(cfg.loss)
    head_factory = instantiate(cfg.head)
    # a loss/head mismatch is a config error: report it before loading any weights; the probe
    # head draws its init from a forked RNG so seeded runs keep their random streams
    with torch.random.fork_rng(devices=[]):
        check_head(objective, head_factory(in_features=1))
    backbone = instantiate(cfg.backbone)
    backbone.model = instantiate(cfg.peft).apply(backbone.model)
    head = head_factory(in_features=backbone.feature_dim)
    detector = Detector(backbone, head)
    if hasattr(objective, "bind"):  # a loss with terms on the backbone's own layers (Effort's)
        objective.bind(detector)
    return detector, objective
