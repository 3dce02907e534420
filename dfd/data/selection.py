"""Held-out validation sets: pooled into one, and checked to share no video with the sets a
run tests or trains on (what `selection=heldout` needs; `dfd.data.splits` reads the sets).

GenD's `config.val_files` is a list, so its held-out sets (videos drawn from target datasets'
training folders) are pooled into ONE validation set; `pool` does the same. A held-out video
that is also a test or training video would make the selection leaky: `check_disjoint`
refuses it at start, naming the video and both sets.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

import numpy as np

from dfd.data.index import FrameIndex

Key = tuple[str, ...]


def pool(sets: Mapping[str, FrameIndex], name: str) -> FrameIndex:
    """Several sets as one index named `name`; video ids (and fakes' source videos) are
    prefixed with their set's last key part, since a video id is unique per dataset only."""
    paths, labels, videos, sources, splits, source_videos = [], [], [], [], [], []
    skipped: dict[str, int] = {}
    for key, index in sets.items():
        prefix = key.rsplit(".", 1)[-1]
        paths += index.paths
        labels.append(index.labels)
        videos += [f"{prefix}/{v}" for v in index.video_ids]
        sources += index.sources
        splits += index.splits
        source_videos += [f"{prefix}/{v}" if v else "" for v in index.source_videos]
        for reason, n in index.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
    return FrameIndex(
        name=name,
        paths=paths,
        labels=np.concatenate(labels) if labels else np.zeros(0, np.int64),
        video_ids=videos,
        sources=sources,
        splits=splits,
        skipped=skipped,
        source_videos=source_videos,
    )


class _Resolver:
    """Frame paths with their folders' symlinks resolved, each folder resolved once."""

    def __init__(self) -> None:
        self.folders: dict[str, str] = {}

    def folder(self, path: str) -> str:
        head = os.path.dirname(path)
        if head not in self.folders:
            self.folders[head] = os.path.realpath(head)
        return self.folders[head]

    def file(self, path: str) -> str:
        return os.path.join(self.folder(path), os.path.basename(path))


def _video_folders(index: FrameIndex, resolve: _Resolver) -> dict[str, str]:
    """{resolved folder: video} for the folders that hold the frames of exactly one video of
    the index (a video's own folder); a flat folder of many one-frame videos is none."""
    owners: dict[str, set[str]] = {}
    for path, video in zip(index.paths, index.video_ids, strict=True):
        owners.setdefault(resolve.folder(path), set()).add(video)
    return {folder: next(iter(v)) for folder, v in owners.items() if len(v) == 1}


def _identities(index: FrameIndex, resolve: _Resolver) -> Iterator[tuple[Key, str]]:
    """Every key that identifies a video of `index`, with that video: each frame's resolved
    file, (dataset name, video id), and the video's own folder (`_video_folders`)."""
    for path, video in zip(index.paths, index.video_ids, strict=True):
        yield ("file", resolve.file(path)), video
        yield ("id", index.name, video), video
    for folder, video in _video_folders(index, resolve).items():
        yield ("folder", folder), video


def _how(key: Key) -> str:
    kind = key[0]
    if kind == "file":
        return f"the same frame file {key[1]}"
    if kind == "folder":
        return f"the same frame folder {key[1]}"
    return f"the same video id in dataset {key[1]!r}"


def check_disjoint(heldout: Mapping[str, FrameIndex], others: Mapping[str, FrameIndex]) -> None:
    """Refuse a held-out video that is also a video of `others` (test targets, training).

    Videos are compared by what identifies them across datasets, not by id strings alone
    (an id is unique within its dataset only): a frame file (symlinked folders resolved), a
    video's own frame folder (another sample of frames of the same video, e.g. a held-out
    list of random frames beside a test list of uniform ones) or the same id in a dataset
    of the same name. The first overlap is a ValueError naming the video and both sets.
    Only the held-out sets' keys are kept in memory; the others are streamed past them.
    """
    resolve = _Resolver()
    owner: dict[Key, tuple[str, str]] = {}
    for key, index in heldout.items():
        for identity, video in _identities(index, resolve):
            owner.setdefault(identity, (key, video))
    for other_key, index in others.items():
        for identity, video in _identities(index, resolve):
            if identity in owner:
                set_key, held_video = owner[identity]
                raise ValueError(
                    f"selection=heldout: video {held_video!r} of {set_key} is also video "
                    f"{video!r} of {other_key} ({_how(identity)}): a held-out set must not share "
                    f"videos with a test target or the training set; drop it from {set_key}"
                )
