"""From a `FrameIndex` to model inputs: lazy frame loading, augmentation, resize, normalization."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from dfd.data.index import FrameIndex
from dfd.models.backbone import InputSpec

Augmentation = Callable[[Image.Image, random.Random], Image.Image]


class FrameTransform:
    """PIL RGB image -> normalized (3, H, W) float tensor for one backbone.

    Augmentations (training only) run first, in order, on the image as stored; then the
    image is resized to the backbone's input size with its interpolation (shortest edge,
    then centre crop, which for square face crops is a plain resize) and normalized with its
    mean and std: all from the backbone's image-processor config.
    """

    def __init__(
        self, spec: InputSpec, augmentations: Mapping[str, Augmentation | None] | None = None
    ) -> None:
        self.spec = spec
        self.augmentations = [a for a in (augmentations or {}).values() if a is not None]
        self.mean = torch.tensor(spec.mean).view(3, 1, 1)
        self.std = torch.tensor(spec.std).view(3, 1, 1)

    def __call__(self, img: Image.Image, rng: random.Random) -> torch.Tensor:
        for augment in self.augmentations:
            img = augment(img, rng)
        img = _resize_center_crop(img, self.spec.size, self.spec.resample)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(
            2, 0, 1
        )  # (3, H, W)
        return (x - self.mean) / self.std


def _resize_center_crop(img: Image.Image, size: tuple[int, int], resample: int) -> Image.Image:
    th, tw = size
    w, h = img.size
    if (w, h) == (tw, th):
        return img
    scale = max(th / h, tw / w)
    nw, nh = max(tw, round(w * scale)), max(th, round(h * scale))
    img = img.resize((nw, nh), resample=Image.Resampling(resample))
    left, top = (nw - tw) // 2, (nh - th) // 2
    return img.crop((left, top, left + tw, top + th))


class FrameDataset(Dataset):
    """Frames of a `FrameIndex`, loaded lazily; items are dicts with pixel_values, label, index.

    `index` is the row in the FrameIndex, so that predictions gathered from several
    processes can be matched to their frames and counted exactly once.
    """

    def __init__(self, index: FrameIndex, transform: FrameTransform, seed: int = 0) -> None:
        self.index = index
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> dict:
        path = self.index.paths[i]
        try:
            with Image.open(path) as im:
                img = im.convert("RGB")
        except (FileNotFoundError, UnidentifiedImageError, OSError) as err:
            raise OSError(
                f"cannot read frame {path} (dataset {self.index.name!r}): {err}. Re-run the "
                f"preprocessing for this video or remove it from the list."
            ) from err
        # reproducible augmentation that differs per sample, epoch and seed, whatever the worker count
        rng = random.Random(hash((self.seed, self.epoch, i)) & 0xFFFFFFFF)
        return {
            "pixel_values": self.transform(img, rng),
            "label": torch.tensor(int(self.index.labels[i]), dtype=torch.long),
            "index": torch.tensor(i, dtype=torch.long),
        }
