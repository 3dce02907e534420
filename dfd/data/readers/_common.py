"""What every reader shares: the `reader` decorator, the `Reading` context, bad-input handling, splits.

A reader is a function holding its format's logic only: decorated with `reader`, it gets
its arguments bound, normalized and turned into its cache key, plus the arguments every
reader takes (``on_error``, ``verify``, ``cache_dir``); it returns a `Plan` whose `build`
fills a `Reading` (the rows, the folder scanner, the `Problems` counter).

The preprocessed layout (written by ``python -m dfd.preprocess``) is
``<root>/<source>/<video>/<frame:03d>.png``: a raw video at ``<...>/<parent>/<stem>.mp4``
becomes the folder ``<root>/<parent>/<stem>/``. `frame_dir_key` is that mapping; the readers
that start from a list of raw videos (Celeb-DF, DFDC, DFDCP) use it to find the frames.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import logging
import os
import posixpath
import re
import typing
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from dfd.data.cache import DirScanner, cached_index
from dfd.data.index import FAKE, REAL, FrameIndex

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


class _RepeatedKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's members as a dict; a key given twice is an error (json keeps the last and
    drops the first without a word: a video listed twice would lose its first entry)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            siblings = [k for k, _ in pairs if k != key][:3]
            raise _RepeatedKey(f"key {key!r} appears twice in one object (beside {siblings})")
        out[key] = value
    return out


def load_json(
    dataset: str, path: str, expected: type, shape: str, fix: str, reason: str = ""
) -> Any:
    """Parse a label or split JSON file whose top level must be of type `expected`.

    Invalid JSON, a key repeated within one object (a video or frame listed twice, of which
    plain JSON keeps only the last) or another top-level type is a `DataError` naming the
    file, the expected `shape`, and the `fix`; `reason` (e.g. ``" [bad_split_file]"``) tags
    the message.
    """
    try:
        with open(path) as f:
            data = json.load(f, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        raise DataError(
            f"dataset {dataset!r}: {path}: not valid JSON ({err}){reason}. Fix: {fix}"
        ) from err
    except _RepeatedKey as err:
        raise DataError(
            f"dataset {dataset!r}: {path}: {err} [duplicate]. Fix: keep one entry per key "
            f"(merge the two entries' frames into one if both are right)"
        ) from None
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


def normalized(path: str) -> str:
    """`path` with Windows separators turned to ``/`` and ``.``, ``..`` and repeated ``/``
    resolved as text (`posixpath.normpath`; symbolic links are not followed): what every
    reader derives a label, source and video from, so ``real/v0/../v1/000.png`` is read as
    ``real/v1/000.png``, never as a video named ``..``. Cheap for a path already normal."""
    path = path.replace("\\", "/")
    if "/." in path or "//" in path or path.startswith(".") or path.endswith("/"):
        path = posixpath.normpath(path)
    return path


def leaves_root(relpath: str) -> bool:
    """Whether a normalized relative path climbs above the folder it is relative to."""
    return relpath == ".." or relpath.startswith("../")


def _not_normal(paths: Sequence[str]) -> str | None:
    """The first path of `paths` that `normalized` would change (a reader that forgot to
    normalize), or None; one scan of one joined string, so a million paths cost milliseconds."""
    text = "\n".join(paths)
    if "/." not in text and "//" not in text:  # (a hidden file's "/." only costs the slow look)
        return None
    return next((p for p in paths if posixpath.normpath(p) != p), None)


def frame_dir_key(raw_relpath: str, where: str = "") -> tuple[str, str]:
    """(source, video) folder names of a raw video path: its parent folder's name and its stem.

    ``Celeb-synthesis/id0_id1_0000.mp4`` -> (``Celeb-synthesis``, ``id0_id1_0000``): the
    mapping ``python -m dfd.preprocess`` uses to name a video's frame folder. The path is
    `normalized` first; one that climbs out of the dataset's folder is a `DataError`
    naming `where` (the list file and line).
    """
    rel = normalized(raw_relpath)
    if leaves_root(rel):
        raise DataError(
            f"{where + ': ' if where else ''}{raw_relpath!r} leaves the dataset's folder "
            f"[outside_root]. Fix: list the path below the dataset's folder"
        )
    p = PurePosixPath(rel)
    return p.parent.name, p.stem


class Rows:
    """Column lists of an index under construction, one video at a time."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.labels: list[int] = []
        self.video_ids: list[str] = []
        self.sources: list[str] = []
        self.splits: list[str] = []
        self.source_videos: list[str] = []

    def __len__(self) -> int:
        return len(self.paths)

    def add_paths(
        self,
        paths: list[str],
        label: int,
        video_id: str,
        source: str,
        split: str,
        source_video: str = "",
    ) -> None:
        n = len(paths)
        self.paths.extend(paths)
        self.labels.extend([label] * n)
        self.video_ids.extend([video_id] * n)
        self.sources.extend([source] * n)
        self.splits.extend([split] * n)
        self.source_videos.extend([source_video] * n)


FF_FAKE_NAME = re.compile(r"(\d+)_(\d+)")


def ff_target(video: str) -> str | None:
    """The real video a fake in FF++ naming was made from: ``000_003`` -> ``000``; None for other names.

    FF++ names a fake ``<target>_<source>``: the frames are the target video's with the
    source's face (or expressions) put in. The authors' generator says so: in
    ondyari/FaceForensics ``dataset/DeepFakes/deepfakes.py``, ``create_from_models``
    converts ``images_path/<chosen_file.split('_')[0]>`` into the output ``<chosen_file>``,
    so ``000_003`` is rendered over the frames of original ``000``.
    """
    m = FF_FAKE_NAME.fullmatch(video)
    return m.group(1) if m else None


def link_ff_sources(
    video_ids: Sequence[str], labels: Sequence[int], splits: Sequence[str]
) -> list[str]:
    """Source video of each video (one entry per input video) by FF++ naming, for layouts without a link file.

    A fake whose last id component is ``<a>_<b>`` gets the real video ``<...>/<src>/<a>`` of
    the same split and the same prefix above the source folder (``FF/real/000`` for
    ``FF/DF/000_003``), when exactly one such real video exists; every other video gets
    ``""``. Used by the DeepfakeBench JSON, file-list and folder readers, which hold FF++
    in the same naming.
    """
    reals: dict[tuple[str, str, str], list[str]] = {}
    for vid, label, split in zip(video_ids, labels, splits, strict=True):
        if label == REAL:
            prefix, _, name = vid.rpartition("/")
            reals.setdefault((split, prefix.rpartition("/")[0], name), []).append(vid)
    out = []
    for vid, label, split in zip(video_ids, labels, splits, strict=True):
        prefix, _, name = vid.rpartition("/")
        target = ff_target(name) if label == FAKE else None
        found = reals.get((split, prefix.rpartition("/")[0], target or ""), []) if target else []
        out.append(found[0] if len(found) == 1 else "")
    return out


class Reading:
    """One build of a reader's index: the rows it collects, the folder scanner and the bad-item counter.

    A reader's `build` receives one of these; everything the readers share (adding a
    preprocessed video folder, scanning labelled source folders, the empty-result error)
    is a method here, so a reader is only its format's logic.
    """

    def __init__(self, name: str, on_error: str, scanner: DirScanner) -> None:
        self.name = name
        self.scanner = scanner
        self.problems = Problems(name, on_error)
        self.rows = Rows()
        self._listed: dict[tuple[str, str], str] = {}  # (split, video id) -> where listed

    def add_video(
        self,
        paths: list[str],
        *,
        label: int,
        video_id: str,
        source: str,
        split: str,
        where: str,
        source_video: str = "",
    ) -> None:
        """Add one listed video's frames; a video id listed a second time in the same split is
        a bad item ``duplicate_video`` naming both entries (never two videos merged into one,
        nor the first silently replaced)."""
        first = self._listed.setdefault((split, video_id), where)
        if first != where:
            self.problems(
                "duplicate_video",
                where,
                f"video {video_id!r} of split {split!r} is listed again (first at {first})",
                "list each video once per split (merge the two entries if both are right)",
            )
            return
        self.rows.add_paths(paths, label, video_id, source, split, source_video)

    def entry_path(self, root: str, entry: str, where: str) -> str | None:
        """The frame path a list entry names: relative to `root` unless absolute, `normalized`.
        A relative entry that climbs out of `root` is a bad item ``outside_root``."""
        path = normalized(entry)
        if path.startswith("/"):
            return path
        if leaves_root(path):
            self.problems(
                "outside_root",
                where,
                f"{entry!r} leaves the dataset's root {root}",
                "list the frame below root (or by its absolute path)",
            )
            return None
        return f"{root}/{path}" if path != "." else root

    def video_folder(
        self,
        folder: str,
        *,
        label: int,
        video_id: str,
        source: str,
        split: str,
        where: str,
        source_video: str = "",
    ) -> None:
        """Add every frame of one preprocessed video folder; a missing or empty folder is a bad item.

        `where` names the file and line/key that asked for this video (or the folder that
        was scanned), so the message points at what to fix.
        """
        frames = self.scanner.frames(folder)
        if frames is None:
            self.problems(
                "missing_video",
                where,
                f"video {video_id!r} has no frame folder {folder}",
                "preprocess the video into that folder (python -m dfd.preprocess) or correct the entry",
            )
            return
        if not frames:
            self.problems(
                "no_frames",
                where,
                f"video folder {folder} of {video_id!r} holds no frames (*.png/*.jpg)",
                "re-run the preprocessing for this video (no face was found in any frame?) "
                "or delete the empty folder",
            )
            return
        paths = [f"{normalized(folder)}/{f}" for f in frames]
        self.add_video(
            paths,
            label=label,
            video_id=video_id,
            source=source,
            split=split,
            where=where,
            source_video=source_video,
        )

    def source_folder(self, source_dir: str, what: str, fix: str) -> list[str] | None:
        """The video folders of one source folder; a missing one is a bad item ``missing_source``."""
        videos = self.scanner.subdirs(source_dir)
        if videos is None:
            self.problems("missing_source", source_dir, what, fix)
        return videos

    def labelled_sources(
        self,
        root: str,
        sources: Mapping[str, tuple[str, int, str]],
        skip_videos: set[str] | None = None,
    ) -> None:
        """Add every video under ``root/<folder>/`` for each ``folder -> (source name, label, split)``.

        Video ids are ``<folder>/<video>`` so that folders reusing a video name stay apart.
        A missing source folder is a bad item (reason ``missing_source``); `skip_videos`
        holds video ids to leave out (e.g. Celeb-DF's test videos when reading its train split).
        """
        for folder, (source, label, split) in sources.items():
            source_dir = f"{root}/{folder}"
            videos = self.source_folder(
                source_dir,
                f"source folder {folder!r} does not exist under {root}",
                "preprocess that source, or drop it from the reader's source folders in the config",
            )
            for video in videos or []:
                video_id = f"{folder}/{video}"
                if skip_videos is not None and video_id in skip_videos:
                    continue
                self.video_folder(
                    f"{source_dir}/{video}",
                    label=label,
                    video_id=video_id,
                    source=source,
                    split=split,
                    where=f"folder {source_dir}",
                )

    def link_ff_sources(self) -> None:
        """Fill the rows' source videos by FF++ naming (`link_ff_sources`) where none is recorded."""
        rows = self.rows
        videos = dict.fromkeys(zip(rows.video_ids, rows.labels, rows.splits, strict=True))
        linked = link_ff_sources(*zip(*videos, strict=True)) if videos else []
        by_video = {v[0]: s for v, s in zip(videos, linked, strict=True)}
        rows.source_videos = [
            sv or by_video[v] for v, sv in zip(rows.video_ids, rows.source_videos, strict=True)
        ]

    def empty_error(self, where: str) -> DataError:
        """The error of a read that found no frames (there would be nothing to train or test on)."""
        skipped = dict(self.problems.counts)
        detail = f" (all items skipped: {skipped})" if skipped else ""
        return DataError(
            f"dataset {self.name!r}: no frames found for the requested split(s) in {where}{detail}. "
            f"Fix: check root and the split, and that the frames were preprocessed"
        )

    def index(self, where: str) -> FrameIndex:
        """The collected rows as an index; no rows is `empty_error`."""
        rows = self.rows
        if not rows.paths:
            raise self.empty_error(where)
        return FrameIndex(
            name=self.name,
            paths=rows.paths,
            labels=np.asarray(rows.labels, dtype=np.int64),
            video_ids=rows.video_ids,
            sources=rows.sources,
            splits=rows.splits,
            source_videos=rows.source_videos,
        )


@dataclass(frozen=True)
class Plan:
    """What a reader function returns: how to build its index and which files that build parses.

    Attributes:
        build: makes the index from a fresh `Reading` (called on a cache miss only).
        inputs: the list/JSON/CSV files `build` parses; their content hashes join the cache key.
        where: what was read, for the message when verification leaves no frame.
        name: the index's name when it is not the `name` argument (the demo names its
            index after its dataset unless told otherwise).
    """

    build: Callable[[Reading], FrameIndex]
    inputs: Sequence[str] = ()
    where: str = ""
    name: str | None = None


VERIFY = ("none", "decode")
# Arguments every reader takes; `reader` adds them to the reader function's own.
COMMON_ARGS = (
    inspect.Parameter("on_error", inspect.Parameter.KEYWORD_ONLY, default="raise", annotation=str),
    inspect.Parameter("verify", inspect.Parameter.KEYWORD_ONLY, default="none", annotation=str),
    inspect.Parameter(
        "cache_dir",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation="str | os.PathLike | None",
    ),
    # the dfd.preprocess command(s) that make the dataset's crops, printed by `python -m
    # dfd.datasets` for a missing dataset: documentation, not an input, so not in the cache key
    inspect.Parameter(
        "preprocess",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation="str | Sequence[str] | None",
    ),
)


def _is_path(annotation: Any) -> bool:
    return (
        any(
            a is os.PathLike or typing.get_origin(a) is os.PathLike
            for a in typing.get_args(annotation)
        )
        or annotation is os.PathLike
    )


def reader(kind: str) -> Callable[[Callable[..., Plan]], Callable[..., FrameIndex]]:
    """Make a reader of the family from a function holding only its format's logic.

    The decorated function takes the reader's own arguments (at least `name`) and returns a
    `Plan`. The reader it becomes also takes ``on_error`` (``raise``/``skip``), ``verify``
    (``none``/``decode``: decode every frame once when the index is built), ``cache_dir``
    and ``preprocess`` (the command(s) that make the crops, which ``python -m dfd.datasets``
    prints for a missing dataset; it changes nothing that is read). Before calling the
    function it binds its arguments to the signature, turns Hydra containers into plain ones
    and every path-typed argument (annotated ``os.PathLike``) into an absolute path. The
    cache key is exactly those bound arguments (all but `cache_dir` and `preprocess`) plus
    the plan's input files: an argument added to a reader is in its key without anyone
    writing it there, so a changed argument can never serve a stale index.
    """

    def decorate(fn: Callable[..., Plan]) -> Callable[..., FrameIndex]:
        own = inspect.signature(fn)
        if "name" not in own.parameters:
            raise TypeError(f"reader {fn.__qualname__} must take a `name` argument")
        clash = [p.name for p in COMMON_ARGS if p.name in own.parameters]
        if clash:
            raise TypeError(f"reader {fn.__qualname__}: {clash} are added by @reader, drop them")
        hints = typing.get_type_hints(fn)
        paths = {n for n, t in hints.items() if _is_path(t)} | {"cache_dir"}
        signature = own.replace(parameters=[*own.parameters.values(), *COMMON_ARGS])

        @functools.wraps(fn)
        def read(*args: Any, **kwargs: Any) -> FrameIndex:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            values = {
                k: (abspath(v) if k in paths and v is not None else plain(v))
                for k, v in bound.arguments.items()
            }
            name, on_error, verify = values["name"], values["on_error"], values["verify"]
            name = name or kind
            check_on_error(name, on_error)
            if verify not in VERIFY:
                raise DataError(
                    f"dataset {name!r}: verify must be one of {list(VERIFY)}, got {verify!r}. "
                    f"Fix: data.verify=decode to decode every frame when the index is built, "
                    f"or none"
                )
            cache_dir = values.pop("cache_dir")
            values.pop("preprocess")
            plan = fn(**{k: v for k, v in values.items() if k in own.parameters})

            def build(scanner: DirScanner) -> FrameIndex:
                reading = Reading(plan.name or name, on_error, scanner)
                index = check_index(plan.build(reading), reading.problems)
                if verify == "decode":
                    index = drop_unreadable(index, reading.problems, plan.where or kind)
                return dataclasses.replace(index, skipped=reading.problems.summary())

            return cached_index(kind, values, plan.inputs, cache_dir, build)

        read.__signature__ = signature  # type: ignore[attr-defined]
        read.kind = kind  # type: ignore[attr-defined]
        return read

    return decorate


def check_index(index: FrameIndex, problems: Problems) -> FrameIndex:
    """What every reader's index must be, checked once when it is built: paths in normal form,
    each frame once, one label per frame and per video.

    - a path holding ``.``, ``..`` or ``//`` (a reader that derived a label from its text
      without `normalized`) is a `DataError`;
    - a frame listed under two labels (a real and a fake video) is a bad item
      ``conflicting_label``: under ``skip`` every copy goes, since neither label can be
      trusted; one listed twice with one label is a bad item ``duplicate`` (the first stays);
    - a video whose frames carry both labels is a bad item ``conflicting_label`` (it goes).
    """
    odd = _not_normal(index.paths)
    if odd is not None:
        raise DataError(
            f"dataset {index.name!r}: frame path {odd} holds '.', '..' or '//': its label and "
            f"video would be read from its text [not_normalized]. Fix: list it by the path it "
            f"resolves to"
        )
    n = len(index)
    keep = np.ones(n, dtype=bool)
    labels = np.asarray(index.labels)
    if len(set(index.paths)) != n:
        rows: dict[str, list[int]] = {}
        for i, p in enumerate(index.paths):
            rows.setdefault(p, []).append(i)
        for path, found in rows.items():
            if len(found) < 2:
                continue
            videos = [
                f"{index.video_ids[i]} ({'real' if labels[i] == REAL else 'fake'})" for i in found
            ]
            if len(set(labels[found].tolist())) > 1:
                problems(
                    "conflicting_label",
                    f"frame {path}",
                    f"is listed under a real and a fake video: {', '.join(videos)}",
                    "list the frame once, under the video (and label) it belongs to",
                )
                keep[found] = False
            else:
                problems(
                    "duplicate",
                    f"frame {path}",
                    f"is listed {len(found)} times: {', '.join(videos)}",
                    "list each frame once (a repeated frame would be counted twice)",
                )
                keep[found[1:]] = False
    number: dict[str, int] = {}
    codes = np.fromiter(
        (number.setdefault(v, len(number)) for v in index.video_ids), np.int64, len(index)
    )
    fakes = np.bincount(codes, weights=(labels == FAKE).astype(np.float64), minlength=len(number))
    frames = np.bincount(codes, minlength=len(number))
    names = np.asarray(list(number), dtype=object)
    mixed = [str(v) for v in names[(fakes > 0) & (fakes < frames)]]
    if mixed:
        bad = set(mixed)
        for v in mixed:
            problems(
                "conflicting_label",
                f"video {v!r}",
                "holds frames labelled real and frames labelled fake",
                "give the video one label (its frames are one clip of one kind)",
            )
        keep &= np.array([v not in bad for v in index.video_ids], dtype=bool)
    if keep.all():
        return index
    if not keep.any():
        raise DataError(
            f"dataset {index.name!r}: no frame left after the conflicting or repeated entries "
            f"were dropped. Fix: correct the lists"
        )
    return index.select(keep)


def drop_unreadable(index: FrameIndex, problems: Problems, where: str) -> FrameIndex:
    """Decode every frame once (in parallel threads); an undecodable frame is a bad item ``unreadable``.

    Under ``on_error=raise`` the first bad frame in index order raises, naming the file;
    under ``skip`` the bad frames are dropped and counted. Decoding (zlib, libjpeg)
    releases the GIL, so threads use every core without pickling paths to processes.
    """
    from concurrent.futures import ThreadPoolExecutor

    workers = min(32, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        errors = list(pool.map(_decode_error, index.paths, chunksize=64))
    bad = [i for i, e in enumerate(errors) if e is not None]
    for i in bad:
        problems(
            "unreadable",
            f"frame {index.paths[i]}",
            f"cannot be decoded as an image ({errors[i]})",
            "re-run the preprocessing for this video, or delete the frame (and its list line)",
        )
    if not bad:
        return index
    keep = np.ones(len(index), dtype=bool)
    keep[bad] = False
    if not keep.any():
        raise DataError(
            f"dataset {index.name!r}: no readable frame in {where} (all {len(index)} unreadable). "
            f"Fix: re-run the preprocessing"
        )
    return index.select(keep)


def _decode_error(path: str) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
    except Exception as err:  # noqa: BLE001 - any decoder failure means the frame is unusable
        return f"{type(err).__name__}: {err}"
    return None


def is_real_name(name: str, real_sources: Sequence[str] | None) -> bool:
    """Label rule of the file lists and folders: in `real_sources` if given, else the name contains "real" (any case)."""
    if real_sources is not None:
        return name in real_sources
    return "real" in name.lower()


def below_source_video(parts: Sequence[str]) -> str:
    """The crop folder name ``dfd.preprocess video_name=below_source`` gives a video.

    `parts` are the folders between its source folder and the video, then the stem; they are
    joined by ``__`` exactly as `dfd.preprocess.inputs.below_source_name` joins them (a test
    runs both on the same release layout).
    """
    return "__".join(parts)
