"""A seeded sample of a dataset's videos, or the rest of them: held-out validation sets and carved-out val splits.

GenD selects its checkpoint on small sets "sampled from train" of its target datasets
(DeepSpeak's ``my-val``, a Celeb-DF++ subset, FFIW); DF40's releases have only train and
test. Neither sample is public, so dfd draws its own, reproducibly: per source, the videos
sorted by id and shuffled with a seed derived from `seed` and the source, the first
`videos_per_source` (or the `fraction`) kept. ``part: rest`` returns exactly the videos the
sample leaves out, so a sample and its rest with the same arguments never share a video.

A data config uses it around any reader call::

    heldout:
      deepspeak_v2:
        _target_: dfd.data.subset.video_subset
        name: deepspeak_v2_heldout
        videos_per_source: 50
        index: {_target_: dfd.data.readers.folder.read_folder, ...}
"""

from __future__ import annotations

import random

import numpy as np

from dfd.data.index import FrameIndex
from dfd.data.readers import DataError

PARTS = ("sample", "rest")


def chosen_videos(
    index: FrameIndex, videos_per_source: int | None, fraction: float | None, seed: int
) -> set[str]:
    """The sampled video ids of `index` (see the module docstring)."""
    by_source: dict[str, set[str]] = {}
    for video, source in zip(index.video_ids, index.sources, strict=True):
        by_source.setdefault(source, set()).add(video)
    chosen: set[str] = set()
    for source, videos in sorted(by_source.items()):
        order = sorted(videos)
        random.Random(f"{seed}/{source}").shuffle(order)
        if videos_per_source is not None:
            k = min(videos_per_source, len(order))
        else:
            k = max(1, round(fraction * len(order)))  # type: ignore[operator]
        chosen.update(order[:k])
    return chosen


def video_subset(
    index: FrameIndex,
    name: str | None = None,
    videos_per_source: int | None = None,
    fraction: float | None = None,
    seed: int = 0,
    part: str = "sample",
) -> FrameIndex:
    """A seeded per-source sample of `index`'s videos (``part=sample``) or the videos it leaves out (``rest``).

    Exactly one of `videos_per_source` (at most that many videos of each source) and
    `fraction` (that share of each source's videos, at least one) must be set. All frames of
    a chosen video are kept; the result is named `name` (default: the index's name).
    """
    label = name or index.name
    if (videos_per_source is None) == (fraction is None):
        raise DataError(
            f"dataset {label!r}: set exactly one of videos_per_source and fraction, got "
            f"videos_per_source={videos_per_source}, fraction={fraction}"
        )
    if videos_per_source is not None and videos_per_source < 1:
        raise DataError(
            f"dataset {label!r}: videos_per_source must be >= 1, got {videos_per_source}"
        )
    if fraction is not None and not 0 < fraction < 1:
        raise DataError(f"dataset {label!r}: fraction must lie in (0, 1), got {fraction}")
    if part not in PARTS:
        raise DataError(f"dataset {label!r}: part must be one of {list(PARTS)}, got {part!r}")
    chosen = chosen_videos(index, videos_per_source, fraction, seed)
    keep = np.fromiter((v in chosen for v in index.video_ids), dtype=bool, count=len(index))
    if part == "rest":
        keep = ~keep
    if not keep.any():
        raise DataError(
            f"dataset {label!r}: the {part} of {index.name!r} holds no video "
            f"({len(set(index.video_ids))} videos, videos_per_source={videos_per_source}, "
            f"fraction={fraction}). Fix: sample fewer videos"
        )
    return index.select(keep, name=label)
