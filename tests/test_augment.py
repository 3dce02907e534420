"""Training augmentations against torchvision's definitions, and the configs that list them.

Each op is checked against a reference written here from torchvision's documented
definition for PIL images (the authors feed PIL images to torchvision v2): the affine's
inverse map and nearest sampling, the Gaussian kernel with reflect padding, PIL's
ImageEnhance (torchvision's PIL colour kernels) and PIL's JPEG round trip (its JPEG
kernel). torchvision itself is not importable beside the CPU torch build.
"""

from __future__ import annotations

import io
import math
import random

import numpy as np
import pytest
import torch
from hydra.errors import HydraException
from hydra.utils import instantiate
from PIL import Image, ImageEnhance

from dfd.data.augment import (
    ColorJitter,
    GaussianBlur,
    HorizontalFlip,
    JpegCompression,
    RandomAffine,
    adjust_brightness,
    adjust_contrast,
)
from dfd.data.frames import FrameTransform
from dfd.data.spec import InputSpec
from tests.conftest import compose_train

CLIP = InputSpec(
    size=(224, 224),
    resample=3,
    mean=(0.48145466, 0.4578275, 0.40821073),
    std=(0.26862954, 0.26130258, 0.27577711),
)


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A face-like test image: smooth gradients and blobs plus mild noise, uint8 RGB."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.5 + 0.4 * np.sin(6 * x + c) * np.cos(4 * y - c) for c in range(3)], -1)
    img += rng.normal(0, 0.03, img.shape)
    return np.clip(img * 255, 0, 255).round().astype(np.uint8)


@pytest.fixture
def img():
    return smooth_image(37, 29)  # odd and non-square, so x and y cannot be swapped unseen


def test_flip_mirrors_with_probability_p(img):
    np.testing.assert_array_equal(HorizontalFlip(p=1.0)(img, random.Random(0)), img[:, ::-1])
    assert HorizontalFlip(p=0.0)(img, random.Random(0)) is img
    flipped = sum(HorizontalFlip(p=0.5)(img, random.Random(s)) is not img for s in range(2000))
    assert 900 < flipped < 1100


def _affine_reference(img, angle, translate, scale):
    """torchvision's affine on a PIL image, from its definition, in float64.

    Forward map about the centre c = (W/2, H/2): x' = R(angle) S(scale) (x - c) + c + t, R
    turning clockwise on screen (y points down). Output pixel (i, j) takes the input pixel
    containing the inverse image of its centre (PIL's nearest: floor); outside -> 0.
    Returns the image and a mask of pixels whose source lies within 1e-3 px of a pixel
    edge (where float rounding may pick either neighbour).
    """
    h, w = img.shape[:2]
    cx, cy = w / 2, h / 2
    a = math.radians(angle)
    fwd = (
        np.array([[1, 0, cx + translate[0]], [0, 1, cy + translate[1]], [0, 0, 1]])
        @ np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
        @ np.diag([scale, scale, 1.0])
        @ np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]])
    )
    inv = np.linalg.inv(fwd)
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    sx = inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2]
    sy = inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2]
    ix, iy = np.floor(sx).astype(int), np.floor(sy).astype(int)
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    out = np.zeros_like(img)
    out[inside] = img[iy[inside], ix[inside]]
    edge = lambda v: np.abs(v - np.round(v)) < 1e-3  # noqa: E731
    return out, edge(sx) | edge(sy)


@pytest.mark.parametrize(
    ("angle", "translate", "scale"),
    [(0.0, (0, 0), 1.0), (7.3, (3, -2), 1.0), (-9.1, (-4, 5), 0.93), (25.0, (1, 1), 1.08)],
)
def test_affine_matches_torchvision_definition(img, angle, translate, scale):
    aug = RandomAffine(degrees=0, translate=None, scale=None)
    aug.params = lambda rng, w, h: (angle, translate, scale)  # fix the draw
    out = aug(img, random.Random(0))
    ref, ambiguous = _affine_reference(img, angle, translate, scale)
    assert ambiguous.mean() < 0.02
    np.testing.assert_array_equal(out[~ambiguous], ref[~ambiguous])
    if (angle, translate, scale) == (0.0, (0, 0), 1.0):
        np.testing.assert_array_equal(out, img)


def test_affine_parameter_draws_follow_torchvision():
    aug = RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1))
    draws = [aug.params(random.Random(s), 256, 200) for s in range(3000)]
    angles = np.array([d[0] for d in draws])
    tx = np.array([d[1][0] for d in draws])
    ty = np.array([d[1][1] for d in draws])
    scales = np.array([d[2] for d in draws])
    assert angles.min() >= -10 and angles.max() <= 10 and angles.std() > 5
    # whole pixels: round(U(-0.1 W, 0.1 W)) with W = 256 reaches +-26, with H = 200 +-20
    assert tx.dtype.kind == "i" and tx.min() == -26 and tx.max() == 26
    assert ty.min() == -20 and ty.max() == 20
    assert scales.min() >= 0.9 and scales.max() <= 1.1


def _blur_reference(img, kx, ky, sigma):
    """torchvision's gaussian_blur: kernel exp(-x^2/2s^2) normalized, kx wide, ky tall, reflect pad."""

    def k1(n):
        x = np.arange(n) - (n - 1) / 2
        k = np.exp(-0.5 * (x / sigma) ** 2)
        return k / k.sum()

    kernel = np.outer(k1(ky), k1(kx))  # (ky rows, kx columns)
    # numpy's "reflect" is torch's: d c b | a b c d | c b a (the edge is not repeated)
    padded = np.pad(img.astype(np.float64), ((ky // 2,) * 2, (kx // 2,) * 2, (0, 0)), "reflect")
    h, w = img.shape[:2]
    out = np.zeros(img.shape, np.float64)
    for dy in range(ky):
        for dx in range(kx):
            out += kernel[dy, dx] * padded[dy : dy + h, dx : dx + w]
    return np.round(out).astype(np.uint8)  # torch's round: half to even


@pytest.mark.parametrize(("kernel_size", "sigma"), [((3, 7), 0.3), ((3, 7), 2.0), (7, 1.1)])
def test_blur_matches_torchvision_definition(kernel_size, sigma):
    img = np.random.default_rng(1).integers(0, 256, (23, 31, 3), dtype=np.uint8)
    out = GaussianBlur(kernel_size=kernel_size, sigma=(sigma, sigma))(img, random.Random(0))
    kx, ky = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    ref = _blur_reference(img, kx, ky, sigma)
    diff = np.abs(out.astype(int) - ref)
    # float32 sums may round the other way on an exact .5: at most 1 level, almost never
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_blur_is_three_wide_and_seven_tall():
    stripes = np.zeros((21, 21, 3), np.uint8)
    stripes[::2] = 255  # horizontal stripes: only a tall kernel mixes them
    out = GaussianBlur(kernel_size=(3, 7), sigma=(2.0, 2.0))(stripes, random.Random(0))
    assert np.ptp(out[5:-5, 10]) < 60  # rows mixed: nearly flat down a column
    columns = np.zeros((21, 21, 3), np.uint8)
    columns[:, ::2] = 255  # vertical stripes: the 3-wide kernel mixes them only a little
    out = GaussianBlur(kernel_size=(3, 7), sigma=(2.0, 2.0))(columns, random.Random(0))
    assert np.ptp(out[10, 5:-5]) > 60


def test_blur_probability_and_sigma_draw():
    img = smooth_image(16, 16)
    blur = GaussianBlur(kernel_size=7, sigma=(0.1, 2.0), p=0.1)
    applied = sum(blur(img, random.Random(s)) is not img for s in range(2000))
    assert 150 < applied < 250
    with pytest.raises(ValueError, match="odd"):
        GaussianBlur(kernel_size=(3, 6))


@pytest.mark.parametrize("factor", [0.5, 0.9, 0.97, 1.0, 1.04, 1.1, 1.6])
def test_brightness_and_contrast_equal_pil_image_enhance(factor):
    # torchvision's PIL kernels are ImageEnhance.Brightness / Contrast (blend with black,
    # with the rounded mean of the grayscale image)
    img = smooth_image(40, 33, seed=3)
    pil = Image.fromarray(img)
    ref_b = np.asarray(ImageEnhance.Brightness(pil).enhance(factor))
    ref_c = np.asarray(ImageEnhance.Contrast(pil).enhance(factor))
    np.testing.assert_array_equal(adjust_brightness(img, factor), ref_b)
    np.testing.assert_array_equal(adjust_contrast(img, factor), ref_c)


def test_color_jitter_factor_ranges_and_random_order():
    jitter = ColorJitter(brightness=0.1, contrast=0.1)
    assert jitter.brightness == (0.9, 1.1) and jitter.contrast == (0.9, 1.1)
    assert ColorJitter(brightness=1.5).brightness == (0.0, 2.5)  # clipped at 0 like torchvision
    assert ColorJitter(brightness=0, contrast=0.2).brightness is None
    img = smooth_image(24, 24, seed=5)
    pil = Image.fromarray(img)
    orders = set()
    for s in range(40):
        # torchvision draws the order (a permutation) first, then brightness, then contrast
        rng = random.Random(s)
        order = [0, 1]
        rng.shuffle(order)
        b, c = rng.uniform(0.9, 1.1), rng.uniform(0.9, 1.1)
        ref = pil
        for op in order:
            ref = (ImageEnhance.Brightness, ImageEnhance.Contrast)[op](ref).enhance((b, c)[op])
        np.testing.assert_array_equal(jitter(img, random.Random(s)), np.asarray(ref))
        orders.add(tuple(order))
    assert orders == {(0, 1), (1, 0)}


@pytest.mark.parametrize("quality", [40, 71, 100])
def test_jpeg_equals_pil_round_trip(quality):
    img = smooth_image(48, 40, seed=7)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)  # torchvision's PIL kernel
    ref = np.asarray(Image.open(buf).convert("RGB"))
    out = JpegCompression(quality=(quality, quality))(img, random.Random(0))
    np.testing.assert_array_equal(out, ref)


def test_jpeg_quality_is_uniform_over_the_inclusive_range(monkeypatch):
    seen = []
    jpeg = JpegCompression(quality=(40, 100))
    original = random.Random.randint
    monkeypatch.setattr(
        random.Random, "randint", lambda self, a, b: seen.append(original(self, a, b)) or seen[-1]
    )
    img = smooth_image(8, 8)
    for s in range(1500):
        jpeg(img, random.Random(s))
    assert min(seen) == 40 and max(seen) == 100 and len(set(seen)) == 61


def test_paper_and_gend_configs_list_the_authors_ops_in_order():
    augs = instantiate(compose_train(["augment=paper"]).augment.train_augmentations)
    assert list(augs) == ["flip", "affine", "blur", "color_jitter", "jpeg"]
    assert augs["flip"].p == 0.5 and augs["affine"].translate == (0.1, 0.1)
    assert augs["blur"].kernel_size == (3, 7) and augs["blur"].p == 1.0
    assert augs["color_jitter"].contrast == (0.9, 1.1) and augs["jpeg"].quality == (40, 100)
    gend = instantiate(compose_train(["augment=gend"]).augment.train_augmentations)
    assert gend["blur"].kernel_size == (7, 7) and gend["blur"].p == 0.1
    assert gend["affine"].scale == (0.9, 1.1) and gend["jpeg"].quality == (40, 100)
    off = instantiate(
        compose_train(["augment=paper", "augment.train_augmentations.jpeg=null"]).augment
    )
    assert off.train_augmentations["jpeg"] is None


def test_old_preprocess_override_names_the_new_one():
    with pytest.raises(HydraException, match="augment=paper"):
        compose_train(["preprocess=paper"])


def test_paper_pipeline_runs_end_to_end():
    augs = instantiate(compose_train(["augment=paper"]).augment.train_augmentations)
    tf = FrameTransform(CLIP, augs)
    img = smooth_image(256, 256)
    x = tf(img, random.Random(0))
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32 and torch.isfinite(x).all()
    assert torch.equal(x, tf(img, random.Random(0)))  # same draws, same output
    assert not torch.equal(x, tf(img, random.Random(1)))


def _old_eval_path(img: np.ndarray, spec: InputSpec) -> np.ndarray:
    """dfd's previous eval transform: PIL bicubic resize, then (x / 255 - mean) / std in float32."""
    th, tw = spec.size
    pil = Image.fromarray(img).resize((tw, th), Image.Resampling(spec.resample))
    x = np.asarray(pil, dtype=np.float32) / 255.0
    return ((x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)).transpose(
        2, 0, 1
    )


def test_eval_transform_equals_the_old_path():
    tf = FrameTransform(CLIP)
    assert tf.resize == "pillow" and not tf.augmentations
    std = np.asarray(CLIP.std).reshape(3, 1, 1)
    for seed in range(3):
        img = smooth_image(256, 256, seed)
        new = tf(img, random.Random(seed)).numpy()
        old = _old_eval_path(img, CLIP)
        # within 1/255 of an intensity level (the acceptance); in fact equal to float rounding
        assert np.abs((new - old) * std).max() <= 1 / 255
        np.testing.assert_allclose(new, old, atol=1e-6)


def test_training_resize_is_torch_and_within_two_levels_of_pillow():
    tf = FrameTransform(CLIP, {"flip": HorizontalFlip(p=0.0)})
    assert tf.resize == "torch"
    img = smooth_image(256, 256, seed=9)
    diff = np.abs(
        (tf(img, random.Random(0)).numpy() - _old_eval_path(img, CLIP))
        * np.asarray(CLIP.std).reshape(3, 1, 1)
    )
    assert diff.max() <= 2 / 255 + 1e-6 and (diff > 1.5 / 255).mean() < 1e-4
    with pytest.raises(ValueError, match="resize"):
        FrameTransform(CLIP, resize="cv2")


# -- the eval transform against the backbones' own transformers image processors ------------

# What each backbone's hub processor holds (preprocessor_config.json of the hub id, written
# out), by the transformers class that runs it: dfd must resize and crop as that class does.
HUB_PROCESSORS = {
    # openai/clip-vit-*: shortest edge, centre crop
    "clip_vit_b16": ("CLIPImageProcessorPil", {}),
    "clip_vit_b32": ("CLIPImageProcessorPil", {}),
    "clip_vit_l14": ("CLIPImageProcessorPil", {}),
    # dfd/assets/tiny_clip_demo's preprocessor_config.json
    "tiny_clip": ("CLIPImageProcessorPil", {"size": {"shortest_edge": 64}, "crop_size": 64}),
    "clip_vit_l14_336": (
        "CLIPImageProcessorPil",
        {"size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 336}},
    ),
    # facebook/dinov2-base: BitImageProcessor, shortest edge 256, then the centre 224
    "dinov2_vit_b14": (
        "BitImageProcessorPil",
        {
            "size": {"shortest_edge": 256},
            "crop_size": {"height": 224, "width": 224},
            "image_mean": [0.485, 0.456, 0.406],
            "image_std": [0.229, 0.224, 0.225],
        },
    ),
    # facebook/convnext-tiny-224: size 224, crop_pct 0.875 (resize to 256, crop 224)
    "convnext_tiny": (
        "ConvNextImageProcessorPil",
        {"size": 224, "crop_pct": 0.875, "image_mean": [0.485, 0.456, 0.406]},
    ),
    # google/siglip-base-patch16-224: straight to 224x224, no crop
    "siglip_vit_b16": ("SiglipImageProcessorPil", {"size": {"height": 224, "width": 224}}),
    # facebook/dinov2-with-registers-large: DINOv2's BitImageProcessor fields
    "dinov2_reg_vitl14": (
        "BitImageProcessorPil",
        {
            "size": {"shortest_edge": 256},
            "crop_size": {"height": 224, "width": 224},
            "image_mean": [0.485, 0.456, 0.406],
            "image_std": [0.229, 0.224, 0.225],
        },
    ),
    # facebook/dinov3-vit*16-pretrain-lvd1689m: DINOv3ViTImageProcessorFast (torchvision only)
    # resizes straight to 224x224, bilinear, ImageNet statistics: ViT's PIL processor does so
    **{
        name: (
            "ViTImageProcessorPil",
            {
                "size": {"height": 224, "width": 224},
                "resample": 2,
                "image_mean": [0.485, 0.456, 0.406],
                "image_std": [0.229, 0.224, 0.225],
            },
        )
        for name in ("dinov3_vitl16", "dinov3_vitb16")
    },
    # timm's PE-Core pretrained_cfg (crop_pct 1.0, bicubic, mean = std = 0.5): Resize(shortest
    # edge) and CenterCrop, which CLIP's processor computes with the same integer rule
    "pe_core_l14_336": (
        "CLIPImageProcessorPil",
        {
            "size": {"shortest_edge": 336},
            "crop_size": 336,
            "image_mean": [0.5] * 3,
            "image_std": [0.5] * 3,
        },
    ),
    "pe_core_b16_224": (
        "CLIPImageProcessorPil",
        {
            "size": {"shortest_edge": 224},
            "crop_size": 224,
            "image_mean": [0.5] * 3,
            "image_std": [0.5] * 3,
        },
    ),
    # FSFM's eval transform: Resize(256, bicubic), CenterCrop(224), VGGFace2 statistics
    "vit_b16_fsfm": (
        "CLIPImageProcessorPil",
        {
            "size": {"shortest_edge": 256},
            "crop_size": 224,
            "image_mean": [0.5482207536697388, 0.42340534925460815, 0.3654651641845703],
            "image_std": [0.2789176106452942, 0.2438540756702423, 0.23493893444538116],
        },
    ),
}
ODD_SIZES = [(317, 233), (233, 317), (300, 224), (225, 500), (640, 480), (256, 256)]


def _processor(class_name: str, fields: dict):
    import transformers

    return getattr(transformers, class_name)(**fields)


def _max_levels(ours: torch.Tensor, theirs: np.ndarray, spec: InputSpec) -> float:
    """The largest difference after normalization, in grey levels of [0, 1] input (x std)."""
    std = np.asarray(spec.std).reshape(3, 1, 1)
    return float(np.abs((ours.numpy() - theirs) * std).max())


@pytest.mark.parametrize(
    ("name", "processor"),
    [
        *HUB_PROCESSORS.items(),
        # ConvNeXt at 384 px and more warps to the square (no crop)
        ("convnext_384", ("ConvNextImageProcessorPil", {"size": {"shortest_edge": 384}})),
        # a {height, width} processor with a centre crop after it
        (
            "resize_then_crop",
            ("CLIPImageProcessorPil", {"size": {"height": 240, "width": 260}, "crop_size": 224}),
        ),
    ],
)
def test_eval_transform_equals_the_backbones_processor_on_non_square_images(name, processor):
    proc = _processor(*processor)
    spec = InputSpec.from_processor(proc)
    tf = FrameTransform(spec)
    worst = 0.0
    for seed, (h, w) in enumerate(ODD_SIZES):
        img = smooth_image(h, w, seed)
        theirs = proc(images=img, return_tensors="np")["pixel_values"][0]  # (3, H, W)
        ours = tf(img, random.Random(seed))
        assert tuple(ours.shape) == theirs.shape, (name, h, w)
        worst = max(worst, _max_levels(ours, theirs, spec))
        assert _max_levels(ours, theirs, spec) <= 1 / 255, (name, h, w)
        # and from a frame store: the stored (resized) frame gives the same tensor
        torch.testing.assert_close(tf(tf.store_frame(img), None), ours, rtol=0, atol=0)
    print(f"{name}: max difference from the processor {worst:.2e} (grey levels of [0, 1])")


def test_the_old_rounded_resize_differed_from_the_processor():
    # the check above would catch it: CLIP at 317x233 (the case) with the long edge
    # rounded (305) instead of truncated (304) samples another grid
    proc = _processor(*HUB_PROCESSORS["clip_vit_b16"])
    img = smooth_image(317, 233, 0)
    theirs = proc(images=img, return_tensors="np")["pixel_values"][0]
    pil = Image.fromarray(img).resize((224, 305), Image.Resampling.BICUBIC)
    rounded = np.asarray(pil)[40:264]
    old = FrameTransform(CLIP)(rounded, None)  # already 224 wide: only the crop and the LUT
    assert _max_levels(old, theirs, CLIP) > 1 / 255


def test_every_backbone_option_has_its_processor_in_the_table():
    from dfd.runtime.config import CONF_DIR

    assert set(HUB_PROCESSORS) == {p.stem for p in (CONF_DIR / "backbone").glob("*.yaml")}


@pytest.mark.parametrize("option", sorted(HUB_PROCESSORS))
def test_random_backbones_take_the_geometry_of_their_hub_processor(option):
    # backbone.pretrained=false reads conf/backbone/<option>.yaml's image_processor: it must
    # give the geometry the hub processor gives, or random and pretrained runs would differ
    from dfd.data.spec import ProcessorFields
    from dfd.models.backbone import _plain

    cfg = compose_train([f"backbone={option}", "backbone.pretrained=false"])
    from_yaml = InputSpec.from_processor(ProcessorFields(**_plain(cfg.backbone.image_processor)))
    from_hub = InputSpec.from_processor(_processor(*HUB_PROCESSORS[option]))
    assert (from_yaml.size, from_yaml.resize_to, from_yaml.resample) == (
        from_hub.size,
        from_hub.resize_to,
        from_hub.resample,
    )


def test_square_clip_crops_are_a_plain_resize_as_before():
    # the demo's and every CLIP run's 256x256 face crops: the geometry did not change
    assert CLIP.resize_to == 224 and CLIP.geometry(256, 256) == (224, 224, 0, 0)
    tiny = InputSpec.from_processor(
        _processor("CLIPImageProcessorPil", {"size": {"shortest_edge": 64}, "crop_size": 64})
    )
    assert tiny == InputSpec((64, 64), 3, tiny.mean, tiny.std) and tiny.geometry(64, 64) == (
        64,
        64,
        0,
        0,
    )


def test_processor_geometries_dfd_cannot_follow_are_refused():
    with pytest.raises(ValueError, match="output size depends on the image"):
        InputSpec.from_processor(_processor("CLIPImageProcessorPil", {"do_center_crop": False}))
    with pytest.raises(ValueError, match="padded with zeros"):
        InputSpec((224, 224), 3, (0.5,) * 3, (0.5,) * 3, resize_to=200)
