"""Training-time image augmentations (the paper's list), on PIL images, each with its parameters.

The `preprocess` config lists them by name in application order; setting one to null
switches it off. Evaluation applies none. Randomness comes from the `random.Random`
passed in, which the data loader seeds per worker and epoch.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Sequence

from PIL import Image, ImageEnhance, ImageFilter


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
