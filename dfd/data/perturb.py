"""Test-time perturbations for robustness evaluation, applied to the decoded uint8 crop.

Each perturbation is one small class with one severity parameter, called on an RGB uint8
array ``(H, W, 3)`` (what `dfd.data.frames.decode_frame` gives) with a per-frame
`numpy.random.Generator`; it returns a new array of the same shape and dtype.
`PerturbedTransform` puts one in front of an evaluation transform.

The operations and their severities follow DeeperForensics-1.0's perturbation code
(EndlessSora/DeeperForensics-1.0, ``perturbation/distortions.py`` and
``add_distortion_to_video.py``), the perturbations DeepfakeBench evaluates on through that
dataset's perturbed subsets: Gaussian blur with a k x k kernel and sigma k/6, white
Gaussian noise in the YCbCr components, and a down-and-up resize (which DeeperForensics
names "JPEG"). Real JPEG re-encoding at a given quality is defined there by no level; see
`conf/robustness/deepfakebench.yaml` for the qualities dfd uses.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Protocol

import cv2
import numpy as np
from PIL import Image


class Perturbation(Protocol):
    """An image degradation at one severity, set by one parameter (`parameter`, `value`)."""

    parameter: str

    @property
    def value(self) -> float: ...

    def __call__(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...

    def describe(self) -> str: ...


def _check_image(rgb: np.ndarray) -> None:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"perturbations take (H, W, 3) uint8 images, got {rgb.dtype} {rgb.shape}")


class JpegCompression:
    """Re-encode as JPEG at `quality` (1-100, lower is worse), OpenCV's encoder (4:2:0 chroma)."""

    parameter = "quality"

    def __init__(self, quality: int) -> None:
        if not 1 <= int(quality) <= 100:
            raise ValueError(f"JPEG quality={quality} must be in [1, 100]")
        self.quality = int(quality)

    def __call__(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_image(rgb)
        # the encoder converts to YCbCr assuming BGR input: give it BGR
        ok, buf = cv2.imencode(
            ".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, self.quality]
        )
        if not ok:
            raise RuntimeError(f"OpenCV could not JPEG-encode an image of shape {rgb.shape}")
        return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])

    @property
    def value(self) -> float:
        return self.quality

    def describe(self) -> str:
        return f"quality {self.quality}"


class GaussianBlur:
    """Gaussian blur of standard deviation `sigma` pixels, on a kernel of side ~6 sigma.

    DeeperForensics-1.0 blurs with a k x k kernel and sigma = k / 6 (k = 7, 9, 13, 17, 21);
    the kernel side here is 6 sigma rounded to the nearest odd integer, which gives those
    kernels back for those sigmas. Borders reflect (OpenCV's default, as there).
    """

    parameter = "sigma"

    def __init__(self, sigma: float) -> None:
        if sigma <= 0:
            raise ValueError(f"blur sigma={sigma} must be > 0")
        self.sigma = float(sigma)
        k = int(round(6 * self.sigma))
        self.kernel = k if k % 2 == 1 else k + 1

    def __call__(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_image(rgb)
        return cv2.GaussianBlur(rgb, (self.kernel, self.kernel), self.sigma)

    @property
    def value(self) -> float:
        return self.sigma

    def describe(self) -> str:
        return f"sigma {self.sigma:.3g}, kernel {self.kernel}"


class Downscale:
    """Shrink by `factor` and enlarge back to the original size, bilinear both ways.

    DeeperForensics-1.0's "JPEG compression" distortion is exactly this (factors 2-6,
    OpenCV's default bilinear resize): it removes detail like a low-resolution upload.
    """

    parameter = "factor"

    def __init__(self, factor: float) -> None:
        if factor < 1:
            raise ValueError(f"downscale factor={factor} must be >= 1")
        self.factor = float(factor)

    def __call__(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_image(rgb)
        h, w = rgb.shape[:2]
        small = (max(1, int(w / self.factor)), max(1, int(h / self.factor)))
        shrunk = cv2.resize(rgb, small, interpolation=cv2.INTER_LINEAR)
        return cv2.resize(shrunk, (w, h), interpolation=cv2.INTER_LINEAR)

    @property
    def value(self) -> float:
        return self.factor

    def describe(self) -> str:
        return f"factor {self.factor:g}"


# DeeperForensics-1.0 adds noise of variance v to YCbCr in its studio range, luma spanning
# 219 and chroma 224 of 255 levels, and maps back to full range: in full-range levels the
# noise's standard deviation is sqrt(v) * 255 * 255 / 219 (luma) and / 224 (chroma)
_STUDIO_SPAN = np.array([219.0, 224.0, 224.0], dtype=np.float32)  # Y, Cr, Cb


class GaussianNoise:
    """White Gaussian noise of `variance` in the YCbCr colour components (DeeperForensics' GNC).

    Variance is on DeeperForensics-1.0's [0, 1] studio-range scale (0.001-0.05 there); the
    noise is drawn from the per-frame generator, so a frame gets the same noise pattern in
    every run and at every severity (scaled), and results do not depend on the worker count.
    """

    parameter = "variance"

    def __init__(self, variance: float) -> None:
        if variance < 0:
            raise ValueError(f"noise variance={variance} must be >= 0")
        self.variance = float(variance)

    def __call__(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        _check_image(rgb)
        ycrcb = cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2YCrCb)
        std = np.sqrt(self.variance) * 255.0 * 255.0 / _STUDIO_SPAN  # (3,) full-range levels
        ycrcb += rng.standard_normal(ycrcb.shape, dtype=np.float32) * std
        out = cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    @property
    def value(self) -> float:
        return self.variance

    def describe(self) -> str:
        return f"variance {self.variance:g}"


class PerturbedTransform:
    """An evaluation transform with a perturbation applied first, to the decoded crop.

    The frame dataset hands the transform the decoded uint8 RGB image (an array, or a PIL
    image) and a per-frame `random.Random`; the perturbation's generator is seeded from
    that, so every frame is perturbed the same way in every run whatever the worker count.
    """

    def __init__(self, transform: Callable, perturbation: Perturbation) -> None:
        self.transform = transform
        self.perturbation = perturbation

    @property
    def spec(self):
        """The wrapped transform's input spec (the dataset reads it for unreadable frames)."""
        return self.transform.spec

    # a frame store (dfd.data.store) keeps the crops as decoded: the perturbation runs on them
    stored_form = "decoded"

    def store_frame(self, img: np.ndarray) -> np.ndarray:
        return img

    def __call__(self, img: np.ndarray | Image.Image, rng: random.Random):
        if isinstance(img, Image.Image):
            img = np.asarray(img.convert("RGB"))
        frame_rng = np.random.default_rng(rng.getrandbits(64))
        return self.transform(self.perturbation(img, frame_rng), rng)
