"""Build the run's pieces from the composed config: detector, objective, datasets, loaders.

Every choice comes from a config group built with `hydra.utils.instantiate`; nothing here
branches on option names.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from dfd.data.index import FrameIndex
from dfd.models.detector import Detector
from dfd.objectives import check_head


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
    return Detector(backbone, head), objective


@dataclass
class Splits:
    """The source domain's train and validation frames and every target test set."""

    train: FrameIndex
    val: FrameIndex
    test: dict[str, FrameIndex]


def load_targets(data_cfg: DictConfig) -> dict[str, FrameIndex]:
    """Every target of `data.test`, with the evaluation frames-per-video limit applied."""
    if not data_cfg.get("test"):
        raise ValueError("data.test is empty: name at least one target dataset to evaluate on")
    per_video = (data_cfg.get("frames_per_video") or {}).get("eval")
    return {
        name: instantiate(spec).frames_per_video(per_video) for name, spec in data_cfg.test.items()
    }


def load_splits(data_cfg: DictConfig) -> Splits:
    """Instantiate every dataset spec of `cfg.data` and apply the frames-per-video limits."""
    per_video = data_cfg.get("frames_per_video") or {}
    train = instantiate(data_cfg.train).frames_per_video(per_video.get("train"))
    val = instantiate(data_cfg.val).frames_per_video(per_video.get("eval"))
    test = load_targets(data_cfg)
    train_videos = set(train.video_ids)
    leaked = train_videos & set(val.video_ids)
    if leaked and train.name == val.name:
        raise ValueError(
            f"{len(leaked)} videos of {train.name!r} are in both train and val (e.g. {sorted(leaked)[0]!r}): "
            f"checkpoint selection would see training videos"
        )
    return Splits(train, val, test)
