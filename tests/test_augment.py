"""Training augmentations and the input pipeline: each does what its name says, eval none."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from dfd.data.augment import (
    ColorJitter,
    GaussianBlur,
    HorizontalFlip,
    JpegCompression,
    RandomAffine,
)
from dfd.data.frames import FrameTransform
from dfd.models.backbone import InputSpec
from tests.conftest import compose_train


@pytest.fixture
def face():
    rng = np.random.default_rng(0)
    arr = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    arr[:, :8] = 0  # an asymmetric image, so a flip is visible
    return Image.fromarray(arr)


def test_flip_mirrors(face):
    out = HorizontalFlip(p=1.0)(face, random.Random(0))
    np.testing.assert_array_equal(np.asarray(out), np.asarray(face)[:, ::-1])
    assert HorizontalFlip(p=0.0)(face, random.Random(0)) is face


def test_affine_identity_and_rotation(face):
    identity = RandomAffine(degrees=0, translate=0.0, scale=(1.0, 1.0))(face, random.Random(0))
    np.testing.assert_allclose(
        np.asarray(identity, dtype=float), np.asarray(face, dtype=float), atol=1
    )
    square = Image.new("RGB", (33, 33))
    for dx in (-1, 0, 1):
        square.putpixel((16 + dx, 4), (255, 255, 255))  # a short bar 12 px above the centre
    rng = random.Random(1)
    rng.random()
    angle = rng.uniform(-90, 90)  # what the augmentation draws after its probability check
    rotated = np.asarray(
        RandomAffine(degrees=90, translate=0.0, scale=(1.0, 1.0))(square, random.Random(1))
    )
    ys, xs = np.nonzero(rotated[..., 0] > 40)
    cy, cx = float(ys.mean()), float(xs.mean())
    # a rotation about the centre keeps the radius and turns the bar by the drawn angle
    assert np.hypot(cy - 16.5, cx - 16.5) == pytest.approx(12.0, abs=1.5)
    turned = np.degrees(np.arctan2(cx - 16.5, 16.5 - cy))
    assert abs(angle) > 20 and abs(abs(turned) - abs(angle)) < 6


def test_blur_smooths_and_jitter_changes_stats(face):
    blurred = np.asarray(GaussianBlur(sigma=(2.0, 2.0))(face, random.Random(0)), dtype=float)
    assert blurred.std() < np.asarray(face, dtype=float).std()
    jittered = ColorJitter(brightness=0.5, contrast=0.5)(face, random.Random(1))
    assert not np.array_equal(np.asarray(jittered), np.asarray(face))


def test_jpeg_reencodes(face):
    out = JpegCompression(quality=(40, 40))(face, random.Random(0))
    assert out.size == face.size and out.mode == "RGB"
    assert not np.array_equal(np.asarray(out), np.asarray(face))


def test_paper_pipeline_is_configurable_and_switchable(face):
    cfg = compose_train(["preprocess=paper", "preprocess.train_augmentations.jpeg=null"])
    augs = instantiate(cfg.preprocess.train_augmentations)
    assert augs["jpeg"] is None and isinstance(augs["blur"], GaussianBlur)
    spec = InputSpec(size=(16, 16), resample=3, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    train_tf = FrameTransform(spec, augs)
    assert len(train_tf.augmentations) == 4
    x = train_tf(face, random.Random(0))
    assert x.shape == (3, 16, 16) and torch.isfinite(x).all()


def test_eval_transform_is_resize_and_normalize_only(face):
    spec = InputSpec(size=(16, 16), resample=3, mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5))
    x = FrameTransform(spec)(face, random.Random(0))
    expected = np.asarray(face.resize((16, 16), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
    expected = (expected - np.array([0.1, 0.2, 0.3], dtype=np.float32)) / 0.5
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy(), expected, atol=1e-6)
    # the same image twice: evaluation is deterministic
    torch.testing.assert_close(x, FrameTransform(spec)(face, random.Random(99)))
