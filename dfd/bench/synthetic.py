"""A synthetic benchmark on disk in the official layouts dfd reads, at any size, written fast.

The scale benchmark (`dfd.bench.scale`) needs the files of a real run, not an in-memory index:
FaceForensics++ as `dfd.data.readers.ff` reads it (``faces/ff_c23/{real,DF,F2F,FS,NT}/<video>/
NNN.png`` and the official ``FaceForensics++/splits/{train,val,test}.json`` lists of id
pairs) for training and validation, and two targets in other layouts: Celeb-DF-v2 (its
``List_of_testing_videos.txt``, 1 = real, over ``faces/cdf_v2/<folder>/<video>/``) and DFDC
(``DFDC/test/labels.csv``, 1 = fake, over ``faces/dfdc/test/<video>/``). Every path is the
one `conf/dataset/{ff,cdf_v2,dfdc}.yaml` expects under ``paths.data_dir``.

Frames are copies of a small pool of PNG crops rendered once (`crops.render_crop`, the demo's
faces with sensor noise, so that they decode like real crops); a fake crop carries a tinted
patch, so that a model can tell the classes apart. Writing a frame is then a file write, not a
PNG encode, and a 16x size is written in seconds.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dfd.bench.crops import render_crop

FF_SOURCES = ("real", "DF", "F2F", "FS", "NT")
POOL = 24  # distinct crops per class


@dataclass(frozen=True)
class BenchmarkSize:
    """How much data one size of the scale benchmark holds.

    Attributes:
        train_pairs: id pairs in FF++'s train.json (the official file has 360); each pair is
            2 real videos and 2 fakes per manipulation, so 10 videos.
        eval_pairs: id pairs in val.json and in test.json each (70 officially).
        target_videos: videos of each target (half real, half fake).
        frames: frames per video.
    """

    train_pairs: int
    eval_pairs: int
    target_videos: int
    frames: int

    def scaled(self, factor: int) -> BenchmarkSize:
        """This size with every video count multiplied by `factor` (frames per video kept)."""
        return BenchmarkSize(
            self.train_pairs * factor,
            self.eval_pairs * factor,
            self.target_videos * factor,
            self.frames,
        )

    def frame_counts(self) -> dict[str, int]:
        """Frames the run reads: FF++ train and val, and each target's."""
        per_pair = 10 * self.frames
        return {
            "train": self.train_pairs * per_pair,
            "val": self.eval_pairs * per_pair,
            "cdf_v2": self.target_videos * self.frames,
            "dfdc": self.target_videos * self.frames,
        }


def _pool(rng: np.random.Generator, size: int, fake: bool) -> list[bytes]:
    out = []
    for _ in range(POOL):
        img = render_crop(rng, size)
        if fake:  # a visible cue in the middle of the face, so that the classes differ
            lo, hi = size * 3 // 8, size * 5 // 8
            img[lo:hi, lo:hi] = (0.6 * img[lo:hi, lo:hi] + 0.4 * np.array([200, 40, 40])).astype(
                np.uint8
            )
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


class _FrameWriter:
    """Writes video folders of `frames` PNGs, each a copy of a pooled crop of its class."""

    def __init__(self, crop_size: int, frames: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.pools = {False: _pool(rng, crop_size, False), True: _pool(rng, crop_size, True)}
        self.frames = frames
        self.written = 0

    def video(self, folder: Path, fake: bool) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        pool = self.pools[fake]
        for f in range(self.frames):
            (folder / f"{f:03d}.png").write_bytes(pool[(self.written + f) % len(pool)])
        self.written += self.frames


def write_benchmark(root: Path, size: BenchmarkSize, crop_size: int, seed: int = 0) -> int:
    """Write FF++ (train, val, test), a Celeb-DF-v2 and a DFDC target under `root`
    (a `paths.data_dir`); returns the number of frames written."""
    if min(size.train_pairs, size.eval_pairs, size.target_videos, size.frames) < 1:
        raise ValueError(f"every count of the benchmark size must be >= 1, got {size}")
    if size.target_videos < 2:
        raise ValueError("scale targets need at least 2 videos (one real, one fake)")
    writer = _FrameWriter(crop_size, size.frames, seed)
    _write_ff(root, size, writer)
    _write_cdf(root, size.target_videos, writer)
    _write_dfdc(root, size.target_videos, writer)
    return writer.written


def _write_ff(root: Path, size: BenchmarkSize, writer: _FrameWriter) -> None:
    counts = {"train": size.train_pairs, "val": size.eval_pairs, "test": size.eval_pairs}
    splits = root / "FaceForensics++" / "splits"
    splits.mkdir(parents=True, exist_ok=True)
    frames = root / "faces" / "ff_c23"
    next_id = 0
    for split, n in counts.items():
        pairs = []
        for _ in range(n):
            a, b = f"{next_id:03d}", f"{next_id + 1:03d}"
            next_id += 2
            pairs.append([a, b])
            for source in FF_SOURCES:
                videos = [a, b] if source == "real" else [f"{a}_{b}", f"{b}_{a}"]
                for video in videos:
                    writer.video(frames / source / video, fake=source != "real")
        (splits / f"{split}.json").write_text(json.dumps(pairs))


def _write_cdf(root: Path, videos: int, writer: _FrameWriter) -> None:
    lines = []
    for i in range(videos):
        if i % 2:
            folder, list_label = "Celeb-synthesis", 0
        else:
            folder, list_label = ("Celeb-real" if i % 4 == 0 else "YouTube-real"), 1
        stem = f"id{i}_{i % 7}_{i:04d}" if folder == "Celeb-synthesis" else f"{i:05d}"
        writer.video(root / "faces" / "cdf_v2" / folder / stem, fake=list_label == 0)
        lines.append(f"{list_label} {folder}/{stem}.mp4")
    listing = root / "Celeb-DF-v2" / "List_of_testing_videos.txt"
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("\n".join(lines) + "\n")


def _write_dfdc(root: Path, videos: int, writer: _FrameWriter) -> None:
    rows = ["filename,label"]
    for i in range(videos):
        fake = i % 2 == 1
        stem = f"{i:06x}aaaa"
        writer.video(root / "faces" / "dfdc" / "test" / stem, fake=fake)
        rows.append(f"{stem}.mp4,{int(fake)}")
    labels = root / "DFDC" / "test" / "labels.csv"
    labels.parent.mkdir(parents=True, exist_ok=True)
    labels.write_text("\n".join(rows) + "\n")
