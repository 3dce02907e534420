"""Build the run's pieces from the composed config: detector, objective, datasets, loaders.

Every choice comes from a config group built with `hydra.utils.instantiate`; nothing here
branches on option names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate.utils import set_seed
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from dfd.data.index import FrameIndex
from dfd.engine.checkpoint import (
    CONFIG,
    load_trainable,
    read_checkpoint,
    resolve_checkpoint_config,
)
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

    def by_role(self) -> list[tuple[str, FrameIndex]]:
        """``[("train", ...), ("val", ...), (target, ...), ...]``: every set under the name
        its params and logs use."""
        return [("train", self.train), ("val", self.val), *self.test.items()]


def load_targets(data_cfg: DictConfig) -> dict[str, FrameIndex]:
    """Every target of `data.test`, with the evaluation frames-per-video limit applied."""
    if not data_cfg.get("test"):
        raise ValueError("data.test is empty: name at least one target dataset to evaluate on")
    per_video = (data_cfg.get("frames_per_video") or {}).get("eval")
    return {
        name: read_dataset(spec, f"data.test.{name}").frames_per_video(per_video)
        for name, spec in data_cfg.test.items()
    }


def read_dataset(spec: DictConfig, key: str) -> FrameIndex:
    """Instantiate one dataset spec (a reader call) and return its index.

    A reader's own error (a missing file, a bad label, an unknown split) already names the
    file and the fix; Hydra would wrap it in an InstantiationException whose prefix buries
    that message, so the reader's error is re-raised as it is, with the config key added.
    """
    try:
        return instantiate(spec)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, ValueError | OSError):
            cause.add_note(f"(while reading {key})")
            raise cause from None
        raise


def load_splits(data_cfg: DictConfig) -> Splits:
    """Instantiate every dataset spec of `cfg.data` and apply the frames-per-video limits."""
    per_video = data_cfg.get("frames_per_video") or {}
    train = read_dataset(data_cfg.train, "data.train").frames_per_video(per_video.get("train"))
    val = read_dataset(data_cfg.val, "data.val").frames_per_video(per_video.get("eval"))
    test = load_targets(data_cfg)
    train_videos = set(train.video_ids)
    leaked = train_videos & set(val.video_ids)
    if leaked and train.name == val.name:
        raise ValueError(
            f"{len(leaked)} videos of {train.name!r} are in both train and val (e.g. {sorted(leaked)[0]!r}): "
            f"checkpoint selection would see training videos"
        )
    return Splits(train, val, test)


def load_detector(folder: Path, output_dir: Path | str | None = None):
    """Rebuild a checkpoint's detector from its trusted config and load its tensors.

    Returns ``(detector, cfg)`` with the detector in eval mode on the CPU. A backbone built
    at random (``backbone.pretrained=false``) gets its frozen weights back from the
    training seed, as training built them.
    """
    folder = Path(folder).expanduser()
    state, raw = read_checkpoint(folder)
    cfg = resolve_checkpoint_config(raw, output_dir or folder, str(folder / CONFIG))
    set_seed(int(cfg.seed))
    model, _ = build_detector(cfg)
    load_trainable(model, state, source=str(folder))
    return model.eval(), cfg
