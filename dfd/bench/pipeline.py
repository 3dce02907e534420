"""Section (a): data-pipeline images/s per worker process, current pipeline against the baseline.

A worker process of a DataLoader runs one item at a time with torch's intra-op threads set
to 1; the benchmark measures the same in the main process, with torch and OpenCV pinned to
one thread for the duration. One item is the stable unit `FrameDataset(index, transform)[i]`:
decode the PNG, augment (train only), resize and normalize. The baseline is
`dfd.bench.baseline`, dfd's previous pipeline; both run on the same crops with the same
seed, interleaved. With a store folder a third variant reads the same frames from a
pre-decoded frame store (`dfd.data.store`, built before timing): what `data/store=all`
gives a run from its second pass (or its second run) on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import cv2
import torch

from dfd.bench import baseline
from dfd.bench.timing import Rate, interleaved, paired_ratio
from dfd.data.frames import FrameDataset, FrameTransform
from dfd.data.index import FrameIndex
from dfd.data.spec import InputSpec
from dfd.data.store import open_store

TRANSFORMS = ("train", "eval")


def current_transform(
    spec: InputSpec, augmentations: Mapping[str, object] | None
) -> FrameTransform:
    """dfd's current transform for one backbone: the only place the benchmark constructs one.

    Sections (a) and (c) both get theirs here, so a change of the constructor is one edit.
    """
    return FrameTransform(spec, augmentations)


def baseline_dataset(index: FrameIndex, spec: InputSpec, train: bool) -> baseline.FrameDataset:
    """dfd's previous pipeline, with the paper's augmentations when `train`."""
    augmentations = baseline.paper_augmentations() if train else None
    return baseline.FrameDataset(index, baseline.FrameTransform(spec, augmentations))


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with one torch and one OpenCV thread, as a DataLoader worker does."""
    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        cv2.setNumThreads(cv2_threads)


def bench_pipeline(
    index: FrameIndex,
    spec: InputSpec,
    train_augmentations: Mapping[str, object],
    images: int,
    repeats: int,
    warmup: int,
    store_folder: Path | None = None,
) -> dict[str, dict[str, Rate]]:
    """Images/s of one worker for the train and eval transforms, baseline ("old") and current ("new").

    Every timed call loads items 0..images-1 of `index` (the same items and random draws
    each repeat), after `warmup` untimed items per variant. Returns ``{"train": {"old",
    "new", "ratio"}, "eval": {...}}`` where ``ratio`` is new/old per repeat; with
    `store_folder` also ``"store"`` (the current pipeline reading a frame store built
    there) and ``"store_ratio"`` (store/old).
    """
    if images < 1:
        raise ValueError(f"pipeline.images={images} must be >= 1")
    datasets = {}
    for transform in TRANSFORMS:
        train = transform == "train"
        datasets[f"{transform}/old"] = baseline_dataset(index, spec, train)
        current = current_transform(spec, train_augmentations if train else None)
        datasets[f"{transform}/new"] = FrameDataset(index, current)
        if store_folder is not None:
            store = open_store(index, current, store_folder)
            datasets[f"{transform}/store"] = FrameDataset(index, current, frames=store.read)
    n = min(images, len(index))

    def load_all(dataset) -> None:
        for i in range(n):
            dataset[i]

    variants = {name: (lambda d=d: load_all(d)) for name, d in datasets.items()}
    with one_thread():
        # first reads: the page cache, PIL/OpenCV codecs and lazy imports warm up untimed
        for dataset in datasets.values():
            for i in range(min(warmup, n)):
                dataset[i]
        rates = interleaved(variants, dict.fromkeys(variants, n), repeats, torch.device("cpu"))
    out: dict[str, dict[str, Rate]] = {}
    for transform in TRANSFORMS:
        old, new = rates[f"{transform}/old"], rates[f"{transform}/new"]
        out[transform] = {"old": old, "new": new, "ratio": paired_ratio(new, old)}
        if store_folder is not None:
            stored = rates[f"{transform}/store"]
            out[transform] |= {"store": stored, "store_ratio": paired_ratio(stored, old)}
    return out
