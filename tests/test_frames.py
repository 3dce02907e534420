"""Frame decoding, unreadable frames (skip or raise), the batch collate, per-sample randomness."""

from __future__ import annotations

import random
import traceback

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from dfd.data import frames
from dfd.data.augment import HorizontalFlip, RandomAffine
from dfd.data.frames import (
    FrameDataset,
    FrameTransform,
    UnreadableFrameError,
    collate_frames,
    decode_frame,
)
from dfd.data.index import FrameIndex
from dfd.data.spec import InputSpec

SPEC = InputSpec(size=(16, 16), resample=3, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def _image(seed: int, size: int = 24) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _write_png(path, img: np.ndarray) -> str:
    Image.fromarray(img).save(path)
    return str(path)


def _index(paths: list[str], name: str = "toy") -> FrameIndex:
    n = len(paths)
    return FrameIndex(
        name=name,
        paths=paths,
        labels=np.arange(n) % 2,
        video_ids=[f"v{i}" for i in range(n)],
        sources=["real"] * n,
        splits=["train"] * n,
    )


@pytest.fixture
def bad_frames(tmp_path):
    """Paths of the four kinds of unreadable frame, by name."""
    good = tmp_path / "good.png"
    _write_png(good, _image(0))
    data = good.read_bytes()
    bad = {
        "zero_byte": tmp_path / "zero.png",
        "truncated": tmp_path / "truncated.png",
        "text": tmp_path / "text.png",
        "missing": tmp_path / "missing.png",
    }
    bad["zero_byte"].write_bytes(b"")
    bad["truncated"].write_bytes(data[: len(data) // 2])
    bad["text"].write_text("this is not an image\n")
    return {k: str(v) for k, v in bad.items()}


def test_decode_gives_pil_pixels_for_png_and_other_formats(tmp_path):
    rgb = _image(1)
    png = _write_png(tmp_path / "a.png", rgb)
    np.testing.assert_array_equal(decode_frame(png), rgb)  # libspng path
    Image.fromarray(rgb).save(tmp_path / "t.png", transparency=(1, 2, 3))  # RGB + tRNS chunk
    np.testing.assert_array_equal(decode_frame(tmp_path / "t.png"), rgb)
    grey = rgb[..., 0]
    Image.fromarray(grey).save(tmp_path / "g.png")
    Image.fromarray(rgb).save(tmp_path / "j.jpg", quality=90)
    for name in ("g.png", "j.jpg"):  # OpenCV path
        ref = np.asarray(Image.open(tmp_path / name).convert("RGB"))
        np.testing.assert_array_equal(decode_frame(tmp_path / name), ref)


def test_decode_without_pyspng_falls_back_to_opencv(tmp_path, monkeypatch):
    rgb = _image(2)
    png = _write_png(tmp_path / "a.png", rgb)
    monkeypatch.setattr(frames, "pyspng", None)
    np.testing.assert_array_equal(decode_frame(png), rgb)


@pytest.mark.parametrize("kind", ["zero_byte", "truncated", "text", "missing"])
def test_every_kind_of_bad_frame_is_detected(bad_frames, kind):
    with pytest.raises(UnreadableFrameError):
        decode_frame(bad_frames[kind])


def test_truncated_non_rgb_png_is_detected(tmp_path):
    # a grey PNG goes through OpenCV, which must not hand back a partial image either
    Image.fromarray(_image(3, 64)[..., 0]).save(tmp_path / "g.png")
    data = (tmp_path / "g.png").read_bytes()
    (tmp_path / "g_cut.png").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(UnreadableFrameError):
        decode_frame(tmp_path / "g_cut.png")


def test_raise_names_the_file_the_dataset_and_the_fix(bad_frames):
    ds = FrameDataset(_index([bad_frames["truncated"]], name="ff"), FrameTransform(SPEC))
    with pytest.raises(UnreadableFrameError) as err:
        ds[0]
    msg = str(err.value)
    assert bad_frames["truncated"] in msg and "'ff'" in msg
    assert "preprocessing" in msg and "remove" in msg and "data.on_error=skip" in msg
    # DataLoader workers re-raise as type(err)(message): one string must be enough
    assert str(UnreadableFrameError(msg)) == msg
    with pytest.raises(ValueError, match="on_error"):
        FrameDataset(_index([]), FrameTransform(SPEC), on_error="ignore")


def test_skip_marks_bad_items_and_collate_drops_them(tmp_path, bad_frames):
    goods = [_write_png(tmp_path / f"g{i}.png", _image(10 + i)) for i in range(3)]
    paths = [goods[0], *bad_frames.values(), goods[1], goods[2]]
    ds = FrameDataset(_index(paths), FrameTransform(SPEC), on_error="skip")
    items = [ds[i] for i in range(len(ds))]
    assert [bool(it.get("unreadable")) for it in items] == [False, True, True, True, True] + [
        False
    ] * 2
    batch = collate_frames(items)
    assert batch["pixel_values"].shape == (3, 3, 16, 16)
    assert batch["pixel_values"].dtype == torch.float32
    assert batch["index"].tolist() == [0, 5, 6] and batch["index"].dtype == torch.long
    assert batch["label"].tolist() == [0, 1, 0] and batch["label"].dtype == torch.long
    assert batch["unreadable"].tolist() == [1, 2, 3, 4]
    empty = collate_frames(items[1:5])  # a batch of bad frames only
    assert empty["pixel_values"].shape == (0, 3, 16, 16)
    assert empty["label"].shape == (0,) and empty["unreadable"].tolist() == [1, 2, 3, 4]


def test_dataloader_workers_skip_or_raise(tmp_path, bad_frames):
    goods = [_write_png(tmp_path / f"g{i}.png", _image(20 + i)) for i in range(5)]
    paths = [*goods[:2], bad_frames["zero_byte"], bad_frames["truncated"], bad_frames["text"]]
    paths += goods[2:]
    skip = FrameDataset(_index(paths), FrameTransform(SPEC), on_error="skip")
    loader = DataLoader(skip, batch_size=3, num_workers=1, collate_fn=collate_frames)
    batches = list(loader)
    assert sum(len(b["index"]) for b in batches) == 5
    assert torch.cat([b["unreadable"] for b in batches]).tolist() == [2, 3, 4]
    raising = FrameDataset(_index(paths), FrameTransform(SPEC))
    loader = DataLoader(raising, batch_size=3, num_workers=1, collate_fn=collate_frames)
    with pytest.raises(UnreadableFrameError, match="zero.png") as err:
        list(loader)
    # the traceback holds the loader's iterator in a reference cycle; freed later by the
    # garbage collector, its worker joins time out (5 s in some later test). Cleared, the
    # iterator shuts its worker down now.
    traceback.clear_frames(err.tb)


def test_good_items_keep_the_default_collate_working(tmp_path):
    paths = [_write_png(tmp_path / f"g{i}.png", _image(30 + i)) for i in range(2)]
    ds = FrameDataset(_index(paths), FrameTransform(SPEC))
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert set(batch) == {"pixel_values", "label", "index"}
    assert batch["pixel_values"].shape == (2, 3, 16, 16)


def test_augmentation_is_reproducible_per_seed_epoch_and_index(tmp_path):
    path = _write_png(tmp_path / "a.png", _image(40, 32))
    augs = {"flip": HorizontalFlip(0.5), "affine": RandomAffine(30, (0.2, 0.2), (0.8, 1.2))}
    ds = FrameDataset(_index([path] * 4), FrameTransform(SPEC, augs), seed=3)
    first = [ds[i]["pixel_values"] for i in range(4)]
    again = FrameDataset(_index([path] * 4), FrameTransform(SPEC, augs), seed=3)
    for i in range(4):
        assert torch.equal(again[i]["pixel_values"], first[i])
    assert not torch.equal(first[0], first[1])  # same image, other row: other draws
    ds.set_epoch(1)
    assert not torch.equal(ds[0]["pixel_values"], first[0])
    other_seed = FrameDataset(_index([path] * 4), FrameTransform(SPEC, augs), seed=4)
    assert not torch.equal(other_seed[0]["pixel_values"], first[0])


def test_transform_accepts_pil_images():
    img = _image(50)
    x = FrameTransform(SPEC)(Image.fromarray(img), random.Random(0))
    assert torch.equal(x, FrameTransform(SPEC)(img, random.Random(0)))
