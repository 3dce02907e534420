"""Face crops on disk for the benchmark: a folder the user gives, or PNGs written for the run.

Written crops are demo faces (`dfd.data.demo.render`) drawn small, enlarged to the crop size
and given sensor noise, so that their PNGs compress and decode about like real 256x256 face
crops (a noiseless drawing would compress to a fraction of a real crop and decode faster).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from dfd.data.demo.render import jitter_pose, render_face, sample_identity, to_uint8
from dfd.data.index import FAKE, REAL, FrameIndex

# sensor noise of the written crops, in uint8 levels (real video frames carry a few levels)
_NOISE_LEVELS = 3.0


def write_crops(folder: Path, count: int, size: int, seed: int = 0) -> list[Path]:
    """Write `count` RGB PNG crops of `size` x `size` pixels into `folder`; returns their paths."""
    if count < 1 or size < 8:
        raise ValueError(f"crops.count={count} must be >= 1 and crops.size={size} >= 8")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"{i:05d}.png"
        Image.fromarray(render_crop(rng, size)).save(path)
        paths.append(path)
    return paths


def render_crop(rng: np.random.Generator, size: int) -> np.ndarray:
    """One synthetic face crop, (size, size, 3) uint8 RGB: a demo face with sensor noise."""
    identity = sample_identity(rng)
    small = render_face(identity, jitter_pose(identity.pose, rng), rng)  # (64, 64, 3) in [0, 1]
    big = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC) * 255.0
    big = big + rng.normal(0.0, _NOISE_LEVELS, big.shape)
    return to_uint8(big / 255.0)


def crops_index(paths: list[Path], length: int | None = None) -> FrameIndex:
    """A FrameIndex over `paths`, listed cyclically up to `length` rows (default: once each).

    Labels alternate real/fake and each crop is its own video: the benchmark measures speed,
    and both classes in every batch keep the objective's per-class terms in the step.
    Repeating paths lets one epoch of a loader cover every timed step with few files.
    """
    if not paths:
        raise ValueError("no crops to benchmark on")
    n = length or len(paths)
    rows = [str(paths[i % len(paths)]) for i in range(n)]
    return FrameIndex(
        name="bench_crops",
        paths=rows,
        labels=np.array([REAL if i % 2 == 0 else FAKE for i in range(n)], dtype=np.int64),
        video_ids=[f"crop{i % len(paths):05d}" for i in range(n)],
        sources=["real" if i % 2 == 0 else "fake" for i in range(n)],
        splits=["train"] * n,
    )


def find_crops(folder: Path, limit: int | None) -> list[Path]:
    """The PNG files under `folder` (recursively, sorted), at most `limit` of them."""
    if not folder.is_dir():
        raise FileNotFoundError(
            f"crops.folder={str(folder)!r} is not a folder: pass a folder of PNG face crops, "
            f"or crops.folder=null to let the benchmark write its own"
        )
    paths = sorted(folder.rglob("*.png"))
    if not paths:
        raise FileNotFoundError(
            f"crops.folder={str(folder)!r} holds no .png files: pass a folder of PNG face crops "
            f"(e.g. the output of dfd.preprocess), or crops.folder=null"
        )
    return paths[:limit] if limit else paths
