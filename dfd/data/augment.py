"""Training augmentations: the authors' torchvision v2 pipeline, op by op, on uint8 arrays.

The authors (yermandy/deepfake-detection `src/dataset/base.py`, yermandy/GenD
`src/dataset/augmentations.py`) open each crop with PIL and apply torchvision v2
transforms to the PIL image, so each op here reproduces torchvision's kernel for PIL
images (`torchvision/transforms/v2/functional/*`, `transforms/_functional_pil.py`) and
its parameter draws (`transforms/v2/_geometry.py`, `_color.py`, `_misc.py`,
`_augment.py`): the same distributions, in the same order, from the per-sample
`random.Random` the dataset passes in (reproducible whatever the worker count) instead
of torch's global generator.

Images are ``(H, W, 3)`` uint8 RGB arrays (what `dfd.data.frames.decode_frame` gives).
Ops return a new array or the input unchanged; they never modify their input.

The `augment` config group lists them by name in application order; setting one to null
switches it off. Evaluation applies none.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image


def _pair(value: float | Sequence[float], name: str) -> tuple[float, float]:
    if isinstance(value, (int, float)):
        return float(value), float(value)
    if len(value) != 2:
        raise ValueError(f"{name}={list(value)} must be one number or two")
    return float(value[0]), float(value[1])


def _apply(p: float, rng: random.Random) -> bool:
    """torchvision's `RandomApply` test (`torch.rand(1) >= p` skips); p = 1 draws nothing."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p={p} must be in [0, 1]")
    return p >= 1.0 or rng.random() < p


class HorizontalFlip:
    """Mirror left-right with probability p (`v2.RandomHorizontalFlip`)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, img: np.ndarray, rng: random.Random) -> np.ndarray:
        # RandomHorizontalFlip always draws, even at p = 1
        return cv2.flip(img, 1) if rng.random() < self.p else img


def inverse_affine_matrix(
    angle: float, translate: tuple[float, float], scale: float, center: tuple[float, float]
) -> np.ndarray:
    """The 2x3 output-to-input map of torchvision's `affine` (no shear), in PIL's pixel frame.

    torchvision builds M = T * C * R * S * C^-1 (rotation by `angle` degrees clockwise on
    screen, then scale, about `center`, then translation) and hands PIL its inverse
    (`_get_inverse_affine_matrix`). Coordinates are PIL's: pixel (x, y) spans [x, x + 1).
    """
    rot = math.radians(angle)
    cx, cy = center
    tx, ty = translate
    # RSS without shear: [[cos, -sin], [sin, cos]] * scale; its inverse is below
    a, b, c, d = math.cos(rot), math.sin(rot), -math.sin(rot), math.cos(rot)
    m = np.array([[a, b, 0.0], [c, d, 0.0]]) / scale
    m[0, 2] = m[0, 0] * (-cx - tx) + m[0, 1] * (-cy - ty) + cx
    m[1, 2] = m[1, 0] * (-cx - tx) + m[1, 1] * (-cy - ty) + cy
    return m


class RandomAffine:
    """`v2.RandomAffine(degrees, translate, scale)` with its defaults: nearest, fill 0.

    Draws, in torchvision's order: angle ~ U(-degrees, degrees); tx = round(U(-t_x W, t_x W))
    and ty likewise (whole pixels, Python's round); scale ~ U(scale). The image turns and
    scales about its centre (W/2, H/2) and each output pixel takes the input pixel under
    the inverse map of its centre (PIL's nearest filter: floor of the coordinate). `p`
    < 1 wraps it in a `RandomApply` (not in the authors' recipe).
    """

    def __init__(
        self,
        degrees: float = 10.0,
        translate: float | Sequence[float] | None = (0.1, 0.1),
        scale: Sequence[float] | None = (0.9, 1.1),
        p: float = 1.0,
    ) -> None:
        self.degrees = float(degrees)
        self.translate = None if translate is None else _pair(translate, "translate")
        self.scale = None if scale is None else _pair(scale, "scale")
        self.p = p

    def params(
        self, rng: random.Random, width: int, height: int
    ) -> tuple[float, tuple[int, int], float]:
        """(angle, (tx, ty), scale) as torchvision's `RandomAffine.make_params` draws them."""
        angle = rng.uniform(-self.degrees, self.degrees)
        tx = ty = 0
        if self.translate is not None:
            max_dx, max_dy = self.translate[0] * width, self.translate[1] * height
            tx = int(round(rng.uniform(-max_dx, max_dx)))
            ty = int(round(rng.uniform(-max_dy, max_dy)))
        s = 1.0 if self.scale is None else rng.uniform(*self.scale)
        return angle, (tx, ty), s

    def __call__(self, img: np.ndarray, rng: random.Random) -> np.ndarray:
        if not _apply(self.p, rng):
            return img
        h, w = img.shape[:2]
        angle, translate, s = self.params(rng, w, h)
        m = inverse_affine_matrix(angle, translate, s, (w * 0.5, h * 0.5))
        # PIL samples at the pixel centre (x + 0.5, y + 0.5) and floors; warpAffine maps
        # pixel indices and rounds, so shift both frames by half a pixel
        m[:, 2] += 0.5 * (m[:, 0] + m[:, 1]) - 0.5
        return cv2.warpAffine(
            img,
            m,
            (w, h),
            flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )


def gaussian_kernel1d(size: int, sigma: float) -> np.ndarray:
    """torchvision's `_get_gaussian_kernel1d`: exp(-x^2 / 2 sigma^2) on x = -(k-1)/2..(k-1)/2, normalized."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)  # torchvision builds its kernel in float32


class GaussianBlur:
    """`v2.GaussianBlur(kernel_size, sigma)`: a truncated Gaussian kernel, reflect padding.

    `kernel_size` is (width, height) as torchvision reads it: (3, 7) is 3 pixels wide and
    7 tall; one int is square. One sigma ~ U(sigma) serves both axes. torchvision pads
    with torch's "reflect" (d c b | a b c d | c b a, OpenCV's BORDER_REFLECT_101),
    convolves in float32 and rounds to uint8. `p` < 1 wraps it in a `RandomApply` (GenD's
    blur, p = 0.1), drawn before sigma.
    """

    def __init__(
        self,
        kernel_size: int | Sequence[int] = (3, 7),
        sigma: float | Sequence[float] = (0.1, 2.0),
        p: float = 1.0,
    ) -> None:
        kx, ky = (
            (int(kernel_size), int(kernel_size))
            if isinstance(kernel_size, int)
            else tuple(int(k) for k in kernel_size)
        )
        if kx <= 0 or ky <= 0 or kx % 2 == 0 or ky % 2 == 0:
            raise ValueError(f"kernel_size={kernel_size} must be odd positive integers")
        self.kernel_size = (kx, ky)
        self.sigma = _pair(sigma, "sigma")
        if not 0.0 < self.sigma[0] <= self.sigma[1]:
            raise ValueError(f"sigma={list(self.sigma)} must be positive, (min, max)")
        self.p = p

    def __call__(self, img: np.ndarray, rng: random.Random) -> np.ndarray:
        if not _apply(self.p, rng):
            return img
        sigma = rng.uniform(*self.sigma)
        kx, ky = self.kernel_size
        return cv2.sepFilter2D(
            img,
            -1,
            gaussian_kernel1d(kx, sigma),
            gaussian_kernel1d(ky, sigma),
            borderType=cv2.BORDER_REFLECT_101,
        )


def _blend_lut(degenerate: int, factor: float) -> np.ndarray:
    """PIL's `Image.blend(degenerate, image, factor)` as a 256-entry table.

    Pillow computes ``degenerate + factor * (x - degenerate)`` in float32 and truncates to
    uint8, clipping to [0, 255] when the factor extrapolates (libImaging/Blend.c).
    """
    x = np.arange(256, dtype=np.float32) - np.float32(degenerate)
    v = np.float32(degenerate) + np.float32(factor) * x
    return np.clip(v, 0, 255).astype(np.uint8)


def pil_gray_mean(img: np.ndarray) -> int:
    """`int(mean + 0.5)` of PIL's grayscale (`convert("L")`) of an RGB image, as ImageEnhance.Contrast takes it."""
    h, w = img.shape[:2]
    rgb = Image.frombuffer("RGB", (w, h), np.ascontiguousarray(img), "raw", "RGB", 0, 1)
    hist = np.asarray(rgb.convert("L").histogram(), dtype=np.float64)
    return int(hist @ np.arange(256) / (h * w) + 0.5)


def adjust_brightness(img: np.ndarray, factor: float) -> np.ndarray:
    """torchvision's PIL kernel: `ImageEnhance.Brightness(img).enhance(factor)` (blend with black)."""
    return cv2.LUT(img, _blend_lut(0, factor))


def adjust_contrast(img: np.ndarray, factor: float) -> np.ndarray:
    """torchvision's PIL kernel: `ImageEnhance.Contrast` (blend with the grayscale mean, rounded)."""
    return cv2.LUT(img, _blend_lut(pil_gray_mean(img), factor))


def _factor_range(value: float | Sequence[float], name: str) -> tuple[float, float] | None:
    """`ColorJitter._check_input` for brightness/contrast: x -> [max(0, 1 - x), 1 + x]; None = off."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{name}={value} must be non-negative")
        lo, hi = max(0.0, 1.0 - value), 1.0 + value
    else:
        lo, hi = _pair(value, name)
        if not 0.0 <= lo <= hi:
            raise ValueError(f"{name}={list(value)} must satisfy 0 <= min <= max")
    return None if lo == hi == 1.0 else (lo, hi)


class ColorJitter:
    """`v2.ColorJitter(brightness, contrast)`: factors uniform in their ranges, random order.

    torchvision draws the order (a permutation), then the brightness factor, then the
    contrast factor, and applies the enabled ones in that order; for PIL images it calls
    PIL's ImageEnhance. A number x means the factor range [max(0, 1 - x), 1 + x]; 0 turns
    that op off. `p` < 1 wraps it in a `RandomApply` (not in the authors' recipe).
    """

    def __init__(
        self,
        brightness: float | Sequence[float] = 0.1,
        contrast: float | Sequence[float] = 0.1,
        p: float = 1.0,
    ) -> None:
        self.brightness = _factor_range(brightness, "brightness")
        self.contrast = _factor_range(contrast, "contrast")
        self.p = p

    def __call__(self, img: np.ndarray, rng: random.Random) -> np.ndarray:
        if not _apply(self.p, rng):
            return img
        order = [0, 1]
        rng.shuffle(order)
        factors = [None if r is None else rng.uniform(*r) for r in (self.brightness, self.contrast)]
        for op in order:
            if factors[op] is not None:
                img = (adjust_brightness, adjust_contrast)[op](img, factors[op])
        return img


class JpegCompression:
    """`v2.JPEG(quality)`: encode and decode as JPEG, quality uniform over the integers, inclusive.

    torchvision's PIL kernel saves with Pillow's defaults (4:2:0 chroma, no optimize) and
    decodes with Pillow; OpenCV's encoder and decoder with these settings give the same
    bytes and pixels (both use libjpeg-turbo; the tests compare them with Pillow).
    `p` < 1 wraps it in a `RandomApply` (not in the authors' recipe).
    """

    def __init__(self, quality: int | Sequence[int] = (40, 100), p: float = 1.0) -> None:
        lo, hi = _pair(quality, "quality")
        if not (1 <= lo <= hi <= 100 and lo == int(lo) and hi == int(hi)):
            raise ValueError(f"quality={quality} must be integers 1 <= min <= max <= 100")
        self.quality, self.p = (int(lo), int(hi)), p

    def __call__(self, img: np.ndarray, rng: random.Random) -> np.ndarray:
        if not _apply(self.p, rng):
            return img
        quality = rng.randint(*self.quality)
        ok, data = cv2.imencode(
            ".jpg",
            cv2.cvtColor(img, cv2.COLOR_RGB2BGR),  # OpenCV's encoder reads BGR
            [
                cv2.IMWRITE_JPEG_QUALITY,
                quality,
                cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
            ],
        )
        if not ok:  # pragma: no cover - OpenCV encodes any uint8 BGR image
            raise RuntimeError(f"JPEG encoding at quality {quality} failed")
        return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
