"""From a `FrameIndex` to model inputs: frame decoding, augmentation, resize, normalization.

One sample costs a PNG decode (most of the time), the augmentations (uint8, OpenCV, one
pass each), one resample to the backbone's size and one float pass (a table look-up)
that normalizes into (3, H, W). Every image stays a uint8 RGB array until that last step.
8-bit RGB PNGs (what `dfd.preprocess` writes) decode with libspng (`pyspng`), 1.35x
faster than Pillow and 1.2x faster than OpenCV per core; anything else (JPEG, grey,
palette, alpha, 16-bit) with OpenCV. PNG is lossless, so any correct decoder gives
Pillow's pixels; OpenCV's JPEG decoder (libjpeg-turbo, like Pillow's) does too (tested).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, default_collate

from dfd.data.index import FrameIndex
from dfd.data.spec import InputSpec

try:  # optional: without it OpenCV decodes everything, slower
    import pyspng
except ImportError:  # pragma: no cover - pyspng is a dependency
    pyspng = None

Augmentation = Callable[[np.ndarray, random.Random], np.ndarray]

ON_ERROR = ("raise", "skip")


class UnreadableFrameError(OSError):
    """A frame file that is missing or does not decode to a whole image.

    Built from one message string, since DataLoader workers re-raise a worker's exception
    as ``type(err)(message)``.
    """


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _imdecode_rgb(data: bytes) -> np.ndarray | None:
    buf = np.frombuffer(data, np.uint8)
    if hasattr(cv2, "IMREAD_COLOR_RGB"):  # OpenCV >= 4.10 converts while decoding
        return cv2.imdecode(buf, cv2.IMREAD_COLOR_RGB)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _is_rgb8_png(data: bytes) -> bool:
    # IHDR is the first chunk: bytes 24 and 25 hold the bit depth and the colour type (2 = RGB)
    return len(data) > 28 and data[:8] == _PNG_SIGNATURE and data[24] == 8 and data[25] == 2


def decode_frame(path: str | Path) -> np.ndarray:
    """The image at `path` as a ``(H, W, 3)`` uint8 RGB array; `UnreadableFrameError` if it is not one.

    Both decoders reject a truncated or corrupt file instead of returning a partial image
    (unlike Pillow with ``LOAD_TRUNCATED_IMAGES``, which the authors' code sets), as well
    as a zero-byte file and one that is not an image; a missing file fails on open.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:  # missing, a directory, unreadable
        raise UnreadableFrameError(f"{err.strerror or err}") from err
    if not data:
        raise UnreadableFrameError("the file is empty (0 bytes)")
    if pyspng is not None and _is_rgb8_png(data):
        try:
            img = pyspng.load(data, format="RGB")  # 3 channels even with a tRNS chunk
        except RuntimeError as err:  # libspng: truncated stream, bad CRC, bad filter...
            raise UnreadableFrameError(
                f"corrupt or truncated PNG ({len(data)} bytes): {err}"
            ) from None
    else:
        img = _imdecode_rgb(data)
    if img is None or img.ndim != 3 or img.shape[2] != 3 or img.size == 0:
        raise UnreadableFrameError(
            f"not a decodable image ({len(data)} bytes: truncated, corrupt or not an image)"
        )
    return img


RESIZE = ("pillow", "torch")


class FrameTransform:
    """uint8 RGB image -> normalized (3, H, W) float32 tensor for one backbone.

    Augmentations (training only) run first, in order, on the image as stored; then the
    image is resized and centre-cropped to the backbone's input exactly as its transformers
    image processor does (the same integer rule: `InputSpec.geometry`; for CLIP, the shortest
    edge to 224 and the long edge to ``int(224 * long / short)``, then the centre 224x224,
    which for square face crops is a plain resize) with its interpolation, and normalized
    with its mean and std: all from the backbone's image-processor config. A PIL image is
    accepted too (converted first).

    `resize` picks the resampler of that one filter (antialiased, Pillow's kernels):
    ``"pillow"`` is Pillow's own, bit for bit what the backbone's (slow) image processor
    and dfd's previous pipeline give; ``"torch"`` is torch's uint8 kernel (what
    torchvision's `Resize` and transformers' fast processors run), 4x faster and within
    2/255 of Pillow (1/255 on ~0.5% of pixels, 2/255 on ~1 in 10^6). The default (None)
    is exact without augmentations (evaluation) and fast with them (training, where the
    augmentations move pixels by far more).
    """

    def __init__(
        self,
        spec: InputSpec,
        augmentations: Mapping[str, Augmentation | None] | None = None,
        resize: str | None = None,
    ) -> None:
        self.spec = spec
        self.augmentations = [a for a in (augmentations or {}).values() if a is not None]
        if resize is None:
            resize = "torch" if self.augmentations else "pillow"
        if resize not in RESIZE:
            raise ValueError(f"resize={resize!r} must be one of {list(RESIZE)}")
        if resize == "torch" and spec.resample not in _TORCH_MODES:
            resize = "pillow"  # torch has no antialiased kernel for this filter
        self.resize = resize
        # (x / 255 - mean) / std for every uint8 value, in float32 as the old float path
        # computed it: normalization is then a table look-up per channel
        v = np.arange(256, dtype=np.float32) / np.float32(255.0)
        mean = np.asarray(spec.mean, dtype=np.float32)
        std = np.asarray(spec.std, dtype=np.float32)
        self._lut = [((v - mean[c]) / std[c]).reshape(1, 256) for c in range(3)]

    @property
    def stored_form(self) -> str:
        """What a frame store (`dfd.data.store`) keeps for this transform, as a name.

        With augmentations the frame as decoded (they run on it, fresh every epoch); without
        (evaluation) the frame already resized as the backbone's processor resizes it (the
        one expensive deterministic step; the centre crop is a view taken at load), so that
        loading it costs a look-up: ``resized-short224-bicubic-pillow`` for CLIP.
        """
        if self.augmentations:
            return "decoded"
        rule = self.spec.resize_to
        rule = f"short{rule}" if isinstance(rule, int) else f"{rule[0]}x{rule[1]}"
        return f"resized-{rule}-{Image.Resampling(self.spec.resample).name.lower()}-{self.resize}"

    def store_frame(self, img: np.ndarray) -> np.ndarray:
        """The (H, W, 3) uint8 array a frame store keeps for `img` (see `stored_form`).

        ``self(self.store_frame(img), rng)`` equals ``self(img, rng)`` exactly: an image
        already resized by the processor's rule is left as it is (the rule maps its size to
        itself), and only the centre crop is taken.
        """
        if self.augmentations:
            return img
        return np.ascontiguousarray(self._resized(img))

    def _resized(self, img: np.ndarray) -> np.ndarray:
        """`img` resized by the spec's rule, before the crop: (h', w', 3) uint8, maybe a view."""
        if self.resize == "pillow":
            return _resize_pillow(img, self.spec)
        return _resize_torch(img, self.spec)

    def __call__(self, img: np.ndarray | Image.Image, rng: random.Random) -> torch.Tensor:
        if isinstance(img, Image.Image):
            img = np.asarray(img.convert("RGB"))
        for augment in self.augmentations:
            img = augment(img, rng)
        resized = self._resized(img)  # (h', w', 3) uint8
        th, tw = self.spec.size
        nh, nw = resized.shape[:2]
        top, left = (nh - th) // 2, (nw - tw) // 2  # transformers' center_crop
        planes = cv2.split(np.ascontiguousarray(resized[top : top + th, left : left + tw]))
        out = np.empty((3, th, tw), dtype=np.float32)  # (3, H, W)
        for c, plane in enumerate(planes):
            cv2.LUT(plane, self._lut[c], dst=out[c])
        return torch.from_numpy(out)


# Pillow filter id -> torch interpolate mode with the same antialiased kernel
_TORCH_MODES = {2: "bilinear", 3: "bicubic"}


def _resize_pillow(img: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Pillow's resize of (H, W, 3) uint8 to `spec`'s resized size (before the crop); `img`
    itself when it is at that size already."""
    h, w = img.shape[:2]
    nh, nw = spec.resized_size(h, w)
    if (nh, nw) == (h, w):
        return img
    pil = Image.frombuffer("RGB", (w, h), np.ascontiguousarray(img), "raw", "RGB", 0, 1)
    return np.asarray(pil.resize((nw, nh), resample=Image.Resampling(spec.resample)))


def _resize_torch(img: np.ndarray, spec: InputSpec) -> np.ndarray:
    """torch's antialiased uint8 resize of (H, W, 3) to `spec`'s resized size (before the
    crop), as an (h', w', 3) view; `img` itself when it is at that size already."""
    h, w = img.shape[:2]
    nh, nw = spec.resized_size(h, w)
    if (nh, nw) == (h, w):
        return img
    if not img.flags.writeable:  # a frame store's memory-mapped frame: torch wants to own it
        img = img.copy()
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).unsqueeze(0)  # (1, 3, H, W)
    x = torch.nn.functional.interpolate(
        x, size=(nh, nw), mode=_TORCH_MODES[spec.resample], antialias=True, align_corners=False
    )
    return x[0].permute(1, 2, 0).numpy()  # (h', w', 3)


class FrameDataset(Dataset):
    """Frames of a `FrameIndex`, loaded lazily; items are dicts with pixel_values, label, index.

    `index` is the row in the FrameIndex, so that predictions gathered from several
    processes can be matched to their frames and counted exactly once. A frame that cannot
    be read raises `UnreadableFrameError` (``on_error="raise"``) or, with
    ``on_error="skip"``, gives an item with ``unreadable=True`` and empty (0, H, W)
    pixel_values, which `collate_frames` drops from the batch and reports (torch's default
    collate fails loudly on such an item instead of training on it).

    `frames` (a `dfd.data.store.FrameStore` of this index, built for this transform's
    `stored_form`) replaces decoding the files: same items, same errors.
    """

    def __init__(
        self,
        index: FrameIndex,
        transform: FrameTransform,
        seed: int = 0,
        on_error: str = "raise",
        frames: Callable[[int], np.ndarray] | None = None,
    ) -> None:
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error={on_error!r} must be one of {list(ON_ERROR)}")
        self.index = index
        self.transform = transform
        self.seed = seed
        self.on_error = on_error
        self.frames = frames
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> dict:
        path = self.index.paths[i]
        label = int(self.index.labels[i])
        try:
            img = decode_frame(path) if self.frames is None else self.frames(i)
        except UnreadableFrameError as err:
            if self.on_error == "raise":
                raise UnreadableFrameError(
                    f"cannot read frame {path} (dataset {self.index.name!r}): {err}. "
                    f"Re-run the preprocessing for this video, remove the frame from the list, "
                    f"or set data.on_error=skip to skip unreadable frames."
                ) from None
            th, tw = self.transform.spec.size
            return {
                "pixel_values": torch.empty((0, th, tw)),
                "label": label,
                "index": i,
                "unreadable": True,
            }
        # reproducible augmentation that differs per sample, epoch and seed, whatever the worker count
        rng = random.Random(hash((self.seed, self.epoch, i)) & 0xFFFFFFFF)
        # no "unreadable" key: a loader with torch's default collate sees the old items
        return {"pixel_values": self.transform(img, rng), "label": label, "index": i}


def collate_frames(items: Sequence[dict]) -> dict[str, torch.Tensor]:
    """A batch of `FrameDataset` items without the unreadable ones (the DataLoader's collate_fn).

    Returns ``pixel_values`` (B, 3, H, W) float, ``label`` (B,) long, ``index`` (B,) long
    (rows of the FrameIndex) and ``unreadable`` (K,) long: the rows of the frames that
    were skipped. B is 0 when every frame of the batch was unreadable.
    """
    good = [it for it in items if not it.get("unreadable", False)]
    bad = [it["index"] for it in items if it.get("unreadable", False)]
    if good:
        # default_collate stacks into shared memory inside a worker: no copy on the way out
        pixels = default_collate([it["pixel_values"] for it in good])
    else:
        _, h, w = items[0]["pixel_values"].shape if items else (0, 0, 0)
        pixels = torch.empty((0, 3, h, w))
    return {
        "pixel_values": pixels,
        "label": torch.tensor([it["label"] for it in good], dtype=torch.long),
        "index": torch.tensor([it["index"] for it in good], dtype=torch.long),
        "unreadable": torch.tensor(bad, dtype=torch.long),
    }
