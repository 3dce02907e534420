"""What every reader shares: bad-input handling, split validation, row building, the preprocessed layout.

The preprocessed layout (written by ``python -m dfd.preprocess``) is
``<root>/<source>/<video>/<frame:03d>.png``: a raw video at ``<...>/<parent>/<stem>.mp4``
becomes the folder ``<root>/<parent>/<stem>/``. `frame_dir_key` is that mapping; the readers
that start from a list of raw videos (Celeb-DF, DFDC, DFDCP) use it to find the frames.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from dfd.data.cache import DirScanner
from dfd.data.index import FrameIndex

log = logging.getLogger("dfd.data.readers")

ON_ERROR = ("raise", "skip")
STANDARD_SPLITS = ("train", "val", "test")
_SKIP_HINT = "or set data.on_error=skip to skip such items and count them"


class DataError(ValueError):
    """Bad dataset input (a missing file, an underivable label, an unknown split...).

    The message always names the file (with the line or key when there is one), the
    reason, and how to fix it.
    """


class Problems:
    """Bad items of one read: raise on the first (``on_error="raise"``) or count them by reason (``"skip"``).

    Nothing is dropped silently: every skipped item is counted under its reason, the
    counts end up in `FrameIndex.skipped`, and the first messages of each reason are
    logged so that the user can see *which* items were skipped.
    """

    EXAMPLES_PER_REASON = 3

    def __init__(self, dataset: str, on_error: str) -> None:
        if on_error not in ON_ERROR:
            raise DataError(
                f"dataset {dataset!r}: on_error must be one of {list(ON_ERROR)}, got {on_error!r}"
            )
        self.dataset = dataset
        self.on_error = on_error
        self.counts: Counter[str] = Counter()

    def __call__(self, reason: str, where: str, what: str, fix: str, n: int = 1) -> None:
        """Report `n` bad items: `where` names the file (and line/key), `what` the problem, `fix` the remedy."""
        message = f"dataset {self.dataset!r}: {where}: {what} [{reason}]. Fix: {fix}"
        if self.on_error == "raise":
            raise DataError(f"{message}, {_SKIP_HINT}.")
        if self.counts[reason] < self.EXAMPLES_PER_REASON:
            log.warning("skipped: %s", message)
        self.counts[reason] += n

    def summary(self) -> dict[str, int]:
        """Counts by reason (a plain dict, as `FrameIndex.skipped` holds it)."""
        if self.counts:
            log.warning(
                "dataset %r: skipped %s (data.on_error=skip)", self.dataset, dict(self.counts)
            )
        return dict(self.counts)


def check_on_error(dataset: str, on_error: str) -> None:
    """Reject an unknown `on_error` before any work (and before a cache lookup)."""
    Problems(dataset, on_error)


def wanted_splits(
    dataset: str, split: str | Sequence[str] | None, valid: Sequence[str]
) -> list[str]:
    """The requested split names as a list (None = all `valid`); an unknown name is an error listing the valid ones."""
    if split is None:
        return list(valid)
    names = [split] if isinstance(split, str) else list(split)
    bad = [s for s in names if s not in valid]
    if bad or not names:
        raise DataError(
            f"dataset {dataset!r}: unknown split {bad or names!r}; valid splits: {list(valid)}. "
            f"Fix: set split to one of them (or a list of them, or null for all)"
        )
    return names


def plain(value: Any) -> Any:
    """Hydra hands readers DictConfig/ListConfig: turn them into dicts/lists (for JSON keys and isinstance checks)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def abspath(path: str | os.PathLike) -> str:
    """Absolute form of a configured path, fixed at read time so lazy frame loading never depends on a later cwd."""
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def require_file(dataset: str, path: str, what: str, config_key: str) -> None:
    """A list/JSON/CSV the reader needs must exist: a config error, raised whatever `on_error` says."""
    if not os.path.isfile(path):
        raise DataError(
            f"dataset {dataset!r}: {what} {path} does not exist [missing_file]. "
            f"Fix: point {config_key} at it (e.g. data.<train|val|test.NAME>.{config_key}=/path)"
        )


def load_json(
    dataset: str, path: str, expected: type, shape: str, fix: str, reason: str = ""
) -> Any:
    """Parse a label or split JSON file whose top level must be of type `expected`.

    Invalid JSON or another top-level type is a `DataError` naming the file, the expected
    `shape`, and the `fix`; `reason` (e.g. ``" [bad_split_file]"``) tags the message.
    """
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise DataError(
            f"dataset {dataset!r}: {path}: not valid JSON ({err}){reason}. Fix: {fix}"
        ) from err
    if not isinstance(data, expected):
        raise DataError(
            f"dataset {dataset!r}: {path}: expected {shape}, got {type(data).__name__}{reason}. Fix: {fix}"
        )
    return data


def require_dir(dataset: str, path: str, what: str, config_key: str) -> None:
    """The dataset's root folder must exist: a config error, raised whatever `on_error` says."""
    if not os.path.isdir(path):
        raise DataError(
            f"dataset {dataset!r}: {what} {path} does not exist or is not a folder [missing_root]. "
            f"Fix: point {config_key} at it (e.g. data.<train|val|test.NAME>.{config_key}=/path), "
            f"or preprocess the raw videos into it with python -m dfd.preprocess"
        )


def frame_dir_key(raw_relpath: str) -> tuple[str, str]:
    """(source, video) folder names of a raw video path: its parent folder's name and its stem.

    ``Celeb-synthesis/id0_id1_0000.mp4`` -> (``Celeb-synthesis``, ``id0_id1_0000``): the
    mapping ``python -m dfd.preprocess`` uses to name a video's frame folder.
    """
    p = PurePosixPath(raw_relpath.replace("\\", "/"))
    return p.parent.name, p.stem


class Rows:
    """Column lists of an index under construction, one video at a time."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.labels: list[int] = []
        self.video_ids: list[str] = []
        self.sources: list[str] = []
        self.splits: list[str] = []

    def __len__(self) -> int:
        return len(self.paths)

    def add_video(
        self, folder: str, frames: Iterable[str], label: int, video_id: str, source: str, split: str
    ) -> None:
        self.add_paths([f"{folder}/{f}" for f in frames], label, video_id, source, split)

    def add_paths(
        self, paths: list[str], label: int, video_id: str, source: str, split: str
    ) -> None:
        n = len(paths)
        self.paths.extend(paths)
        self.labels.extend([label] * n)
        self.video_ids.extend([video_id] * n)
        self.sources.extend([source] * n)
        self.splits.extend([split] * n)

    def to_index(self, name: str, problems: Problems, where: str) -> FrameIndex:
        """The finished index; an empty one is an error (there would be nothing to train or test on)."""
        skipped = problems.summary()
        if not self.paths:
            detail = f" (all items skipped: {skipped})" if skipped else ""
            raise DataError(
                f"dataset {name!r}: no frames found for the requested split(s) in {where}{detail}. "
                f"Fix: check root and the split, and that the frames were preprocessed"
            )
        return FrameIndex(
            name=name,
            paths=self.paths,
            labels=np.asarray(self.labels, dtype=np.int64),
            video_ids=self.video_ids,
            sources=self.sources,
            splits=self.splits,
            skipped=skipped,
        )


def add_video_folder(
    rows: Rows,
    scanner: DirScanner,
    problems: Problems,
    folder: str,
    *,
    label: int,
    video_id: str,
    source: str,
    split: str,
    where: str,
) -> None:
    """Add every frame of one preprocessed video folder; a missing or empty folder is a bad item.

    `where` names the file and line/key that asked for this video (or the folder that was
    scanned), so the message points at what to fix.
    """
    frames = scanner.frames(folder)
    if frames is None:
        problems(
            "missing_video",
            where,
            f"video {video_id!r} has no frame folder {folder}",
            "preprocess the video into that folder (python -m dfd.preprocess) or correct the entry",
        )
        return
    if not frames:
        problems(
            "no_frames",
            where,
            f"video folder {folder} of {video_id!r} holds no frames (*.png/*.jpg)",
            "re-run the preprocessing for this video (no face was found in any frame?) "
            "or delete the empty folder",
        )
        return
    rows.add_video(folder, frames, label, video_id, source, split)


def scan_labelled_sources(
    rows: Rows,
    scanner: DirScanner,
    problems: Problems,
    root: str,
    sources: Mapping[str, tuple[str, int, str]],
    skip_videos: set[str] | None = None,
) -> None:
    """Add every video under ``root/<folder>/`` for each ``folder -> (source name, label, split)``.

    Video ids are ``<folder>/<video>`` so that folders reusing a video name stay apart.
    A missing source folder is a bad item (reason ``missing_source``); `skip_videos` holds
    video ids to leave out (e.g. Celeb-DF's test videos when reading its train split).
    """
    for folder, (source, label, split) in sources.items():
        source_dir = f"{root}/{folder}"
        videos = scanner.subdirs(source_dir)
        if videos is None:
            problems(
                "missing_source",
                source_dir,
                f"source folder {folder!r} does not exist under {root}",
                "preprocess that source, or drop it from the reader's source folders in the config",
            )
            continue
        for video in videos:
            video_id = f"{folder}/{video}"
            if skip_videos is not None and video_id in skip_videos:
                continue
            add_video_folder(
                rows,
                scanner,
                problems,
                f"{source_dir}/{video}",
                label=label,
                video_id=video_id,
                source=source,
                split=split,
                where=f"folder {source_dir}",
            )


def is_real_name(name: str, real_sources: Sequence[str] | None) -> bool:
    """Label rule of the file lists and folders: in `real_sources` if given, else the name contains "real" (any case)."""
    if real_sources is not None:
        return name in real_sources
    return "real" in name.lower()
