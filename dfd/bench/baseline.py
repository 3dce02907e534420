"""dfd's previous data pipeline, frozen: the baseline `python -m dfd.bench` measures against.

A verbatim copy of `dfd/data/frames.py` (`FrameTransform`, its resize, `FrameDataset`'s
decode) and `dfd/data/augment.py` (the paper's augmentations on PIL images) as they stood at
commit 6efe3b0, before the pipeline was rewritten for speed. It is kept only as the
benchmark's baseline, so that the speed-up of the current pipeline is measured against the
same reference in one run on one machine; nothing else in dfd may import it. Do not edit
the copied code (a "fix" here would move the baseline); `paper_augmentations` holds the
parameters of `conf/preprocess/paper.yaml` at that commit.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter, UnidentifiedImageError
from torch.utils.data import Dataset

from dfd.data.index import FrameIndex
from dfd.data.spec import InputSpec

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


class HorizontalFlip:
    """Mirror left-right with probability p."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, img: Image.Image, rng: random.Random) -> Image.Image:
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < self.p else img


class RandomAffine:
    """Rotation in +-degrees, translation up to `translate` x size, isotropic scale in `scale`.

    Rotates and scales about the image centre; borders fill with black, like torchvision's
    RandomAffine default.
    """

    def __init__(
        self,
        degrees: float = 10.0,
        translate: float = 0.1,
        scale: Sequence[float] = (0.9, 1.1),
        p: float = 1.0,
    ) -> None:
        self.degrees, self.translate, self.scale, self.p = degrees, translate, tuple(scale), p

    def __call__(self, img: Image.Image, rng: random.Random) -> Image.Image:
        if rng.random() >= self.p:
            return img
        w, h = img.size
        angle = math.radians(rng.uniform(-self.degrees, self.degrees))
        s = rng.uniform(*self.scale)
        tx = rng.uniform(-self.translate, self.translate) * w
        ty = rng.uniform(-self.translate, self.translate) * h
        cx, cy = w / 2, h / 2
        # PIL wants the inverse map output -> input: undo translation, rotation and scale
        cos, sin = math.cos(angle) / s, math.sin(angle) / s
        a, b = cos, sin
        d, e = -sin, cos
        c = cx - a * (cx + tx) - b * (cy + ty)
        f = cy - d * (cx + tx) - e * (cy + ty)
        return img.transform(
            img.size, Image.Transform.AFFINE, (a, b, c, d, e, f), Image.Resampling.BILINEAR
        )


class GaussianBlur:
    """Gaussian blur with sigma uniform in `sigma` (pixels), with probability p."""

    def __init__(self, sigma: Sequence[float] = (0.1, 2.0), p: float = 1.0) -> None:
        self.sigma, self.p = tuple(sigma), p

    def __call__(self, img: Image.Image, rng: random.Random) -> Image.Image:
        if rng.random() >= self.p:
            return img
        return img.filter(ImageFilter.GaussianBlur(radius=rng.uniform(*self.sigma)))


class ColorJitter:
    """Brightness and contrast factors uniform in [1 - x, 1 + x], in random order."""

    def __init__(self, brightness: float = 0.1, contrast: float = 0.1, p: float = 1.0) -> None:
        self.brightness, self.contrast, self.p = brightness, contrast, p

    def __call__(self, img: Image.Image, rng: random.Random) -> Image.Image:
        if rng.random() >= self.p:
            return img
        ops = [(ImageEnhance.Brightness, self.brightness), (ImageEnhance.Contrast, self.contrast)]
        rng.shuffle(ops)
        for enhancer, amount in ops:
            if amount > 0:
                img = enhancer(img).enhance(rng.uniform(1 - amount, 1 + amount))
        return img


class JpegCompression:
    """Re-encode as JPEG with quality uniform in `quality` (integers, inclusive), with probability p."""

    def __init__(self, quality: Sequence[int] = (40, 100), p: float = 1.0) -> None:
        self.quality, self.p = tuple(int(q) for q in quality), p

    def __call__(self, img: Image.Image, rng: random.Random) -> Image.Image:
        if rng.random() >= self.p:
            return img
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=rng.randint(*self.quality))
        buf.seek(0)
        return Image.open(buf).convert("RGB")


def paper_augmentations() -> dict[str, Augmentation]:
    """The baseline's training augmentations with `conf/preprocess/paper.yaml`'s parameters."""
    return {
        "flip": HorizontalFlip(p=0.5),
        "affine": RandomAffine(degrees=10, translate=0.1, scale=(0.9, 1.1), p=1.0),
        "blur": GaussianBlur(sigma=(0.1, 2.0), p=1.0),
        "color_jitter": ColorJitter(brightness=0.1, contrast=0.1, p=1.0),
        "jpeg": JpegCompression(quality=(40, 100), p=1.0),
    }
