"""A pre-decoded frame store: a dataset's frames decoded once into memory-mapped Arrow files.

Decoding a PNG is most of what loading a frame costs (about 0.7 ms of 1.4 ms per 256x256
crop on one core for evaluation, 0.7 of 1.7 for training), and every epoch, every
validation and every trial of a sweep decodes the same files again. A store keeps each
frame as raw uint8 pixels in Arrow stream files, which `datasets` memory-maps: reading a
frame is a page-cache copy, shared by every DataLoader worker and every process on the
machine. What it keeps depends on the transform (`FrameTransform.stored_form`):

- training (augmentations): the frame as decoded, since the augmentations draw anew every
  epoch and run on the full crop;
- evaluation (no augmentations): the frame already resized as the backbone's image processor
  resizes it (its integer rule and filter; the centre crop is taken at load), so loading it
  is a copy and a normalization (`resized-short224-bicubic-pillow` for CLIP).

Either way the model sees bit for bit the pixels of the PNG path (tested). Frames that do
not decode are recorded with their decoder's message and raise or are skipped at read time
exactly as from the files (`data.on_error`).

A store is named by the index's name, the form and a fingerprint of every frame file's path,
size and modification time, so editing, re-preprocessing or removing a frame builds a new
one; it is built once under a file lock (concurrent runs and the processes of one
multi-GPU run wait for the first) and appears atomically (a rename) when complete. Raw
pixels take room: 192 KiB per 256x256 frame as decoded, 147 KiB at 224x224, about 1.9x
and 1.4x a typical PNG crop; a build that would not fit on its disk is refused up front.
Old stores are never deleted by dfd: remove their folders to reclaim the space.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import DataLoader, Dataset

from dfd.data.frames import FrameTransform, UnreadableFrameError, decode_frame, pyspng
from dfd.data.index import FrameIndex
from dfd.runtime.interprocess import file_lock, pid_alive
from dfd.runtime.progress import progress
from dfd.runtime.workers import one_thread_per_worker

log = logging.getLogger(__name__)

# Bump when what a store holds for the same frames and form changes.
STORE_VERSION = 1
ROLES = ("train", "val", "test")
META_FILE = "dfd_store.json"
SHARD_BYTES = 1 << 30  # one Arrow file per ~1 GiB of pixels
BUILD_BATCH = 32  # frames per record batch (a few MiB)
# free space a build leaves on its disk, beyond the store itself
FREE_MARGIN_BYTES = 1 << 30

SCHEMA = pa.schema(
    [
        ("pixels", pa.binary()),  # (height, width, 3) uint8, row-major; empty if unreadable
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("error", pa.string()),  # the decoder's message for an unreadable frame, else null
    ]
)


class FrameStoreError(ValueError):
    """A frame store that cannot be built or read (no room, a foreign or damaged folder)."""


@dataclass(frozen=True)
class StoreOptions:
    """Which sets read their frames from a store, and where stores live (`data.store`)."""

    roles: tuple[str, ...]
    folder: Path

    @classmethod
    def from_config(cls, store: Mapping[str, Any] | None) -> StoreOptions | None:
        """The options of a `data.store` node; None when it is absent or names no role."""
        if not store or not store.get("roles"):
            return None
        roles = tuple(str(r) for r in store["roles"])
        unknown = sorted(set(roles) - set(ROLES))
        if unknown:
            raise FrameStoreError(
                f"data.store.roles={list(roles)}: unknown {unknown}; use any of {list(ROLES)} "
                f"(data/store=eval for [val, test], data/store=all for every set)"
            )
        if not store.get("folder"):
            raise FrameStoreError("data.store.folder is empty: set it to a folder for the stores")
        return cls(roles=roles, folder=Path(str(store["folder"])).expanduser())


def _pixel_libraries() -> str:
    """Versions of what turns a file into stored pixels: a new one may change them."""
    import cv2
    import PIL

    spng = getattr(pyspng, "__version__", "?") if pyspng is not None else "none"
    return (
        f"pillow {PIL.__version__} opencv {cv2.__version__} pyspng {spng} torch {torch.__version__}"
    )


def fingerprint(index: FrameIndex, form: str) -> str:
    """A hash of what a store of `index` in `form` holds: every frame's path, size and mtime.

    One `stat` per frame (no reading), in index order, since store row i is index row i; plus
    the decoders' and resamplers' versions, so an upgrade that changes the pixels of the
    file path also rebuilds the store instead of serving the old ones.
    """
    head = f"dfd-frame-store {STORE_VERSION} {form} {len(index)} {_pixel_libraries()}\n"
    h = hashlib.sha256(head.encode())
    for path in index.paths:
        try:
            st = os.stat(path)
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{path}\0missing\n".encode())
    return h.hexdigest()


class FrameStore:
    """Frames of one `FrameIndex` by row, memory-mapped: `store.read(i)` -> (H, W, 3) uint8.

    Pickles without its open files (DataLoader workers reopen them lazily), so a worker
    process started by fork or by spawn shares the same pages.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        meta_path = self.folder / META_FILE
        try:
            self.meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as err:
            raise FrameStoreError(
                f"{meta_path} is missing or unreadable ({err}): this folder is not a complete "
                f"dfd frame store; delete {self.folder} and it is rebuilt on the next run"
            ) from None
        self.shards = [self.folder / name for name in self.meta["shards"]]
        self._frames = None

    def __len__(self) -> int:
        return int(self.meta["rows"])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_frames": None}

    def _open(self):
        import datasets  # memory-maps the Arrow files; imported only where stores are used

        try:
            parts = [datasets.Dataset.from_file(str(p)) for p in self.shards]
        except (OSError, ValueError) as err:  # a missing or truncated shard
            raise FrameStoreError(
                f"frame store {self.folder} is damaged ({err}): delete the folder and it is "
                f"rebuilt on the next run"
            ) from None
        frames = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
        if len(frames) != len(self):
            raise FrameStoreError(
                f"frame store {self.folder} holds {len(frames)} frames, its {META_FILE} says "
                f"{len(self)}: the files were cut short; delete the folder to rebuild it"
            )
        return frames

    def read(self, i: int) -> np.ndarray:
        """Frame `i` as stored; `UnreadableFrameError` with the decoder's message if it was not."""
        if self._frames is None:
            self._frames = self._open()
        row = self._frames[int(i)]
        if row["error"] is not None:
            raise UnreadableFrameError(row["error"])
        return np.frombuffer(row["pixels"], np.uint8).reshape(row["height"], row["width"], 3)


class _StoreInput(Dataset):
    """What a store keeps for each frame of an index: (row, pixels or None, error or None)."""

    def __init__(self, index: FrameIndex, transform: FrameTransform) -> None:
        self.paths = index.paths
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, str | None]:
        try:
            return i, self.transform.store_frame(decode_frame(self.paths[i])), None
        except UnreadableFrameError as err:
            return i, None, str(err)


def _as_batch(rows: Sequence[tuple[int, np.ndarray | None, str | None]]) -> pa.RecordBatch:
    shapes = [(0, 0) if img is None else img.shape[:2] for _, img, _ in rows]
    return pa.record_batch(
        [
            pa.array([b"" if img is None else img.tobytes() for _, img, _ in rows], pa.binary()),
            pa.array([s[0] for s in shapes], pa.int32()),
            pa.array([s[1] for s in shapes], pa.int32()),
            pa.array([err for _, _, err in rows], pa.string()),
        ],
        schema=SCHEMA,
    )


def _estimated_bytes(index: FrameIndex, transform: FrameTransform) -> int:
    """The store's size: the stored form of the first readable frame, times the frames."""
    for path in index.paths[:16]:
        try:
            return transform.store_frame(decode_frame(path)).nbytes * len(index)
        except UnreadableFrameError:
            continue
    return 0


def _check_room(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if needed + FREE_MARGIN_BYTES > free:
        raise FrameStoreError(
            f"a frame store needs about {needed / 2**30:.1f} GiB in {folder}, which has "
            f"{free / 2**30:.1f} GiB free: point data.store.folder at a larger disk, "
            f"store fewer sets (data/store=eval stores only val and test), or data/store=none"
        )


def _build(
    index: FrameIndex, transform: FrameTransform, target: Path, key: str, num_workers: int
) -> None:
    """Decode every frame of `index` into a new store at `target` (appears when complete)."""
    started = time.perf_counter()
    _check_room(target.parent, _estimated_bytes(index, transform))
    tmp = target.with_name(f".{target.name}.building-{socket.gethostname()}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _write(index, transform, tmp, key, started, num_workers)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed build keeps no GiBs in a hidden folder
        raise
    try:
        os.replace(tmp, target)
    except OSError:
        if not (target / META_FILE).is_file():
            raise
        # another machine sharing the folder finished the same store first (its file system
        # did not honour the lock): the stores are equal, keep that one
        shutil.rmtree(tmp, ignore_errors=True)


def _write(
    index: FrameIndex,
    transform: FrameTransform,
    tmp: Path,
    key: str,
    started: float,
    num_workers: int,
) -> None:
    loader = DataLoader(
        _StoreInput(index, transform),
        batch_size=BUILD_BATCH,
        num_workers=num_workers,
        collate_fn=list,
        worker_init_fn=one_thread_per_worker if num_workers else None,
        # its own generator: drawing worker seeds from torch's global one would change the
        # run's random stream, so a run with a store would differ from one without
        generator=torch.Generator(),
    )
    shards: list[str] = []
    writer = sink = None
    shard_bytes = unreadable = 0
    bar = progress(
        desc=f"frame store {index.name} ({transform.stored_form})", total=len(index), unit="frame"
    )
    try:
        for rows in loader:
            bar.update(len(rows))
            batch = _as_batch(rows)
            if writer is None or shard_bytes >= SHARD_BYTES:
                if writer is not None:
                    writer.close()
                    sink.close()
                shards.append(f"frames-{len(shards):05d}.arrow")
                sink = pa.OSFile(str(tmp / shards[-1]), "wb")
                writer = pa.ipc.new_stream(sink, SCHEMA)
                shard_bytes = 0
            writer.write_batch(batch)
            shard_bytes += batch.nbytes
            unreadable += sum(err is not None for _, _, err in rows)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
            sink.close()
    meta = {
        "version": STORE_VERSION,
        "dataset": index.name,
        "form": transform.stored_form,
        "fingerprint": key,
        "rows": len(index),
        "unreadable": unreadable,
        "shards": shards,
        "bytes": sum((tmp / s).stat().st_size for s in shards),
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2))


def _remove_leftovers(target: Path) -> None:
    """What a killed build left: its half-written folder (this host's, its process gone) and
    a target without its metadata file. Called holding the store's lock."""
    host = socket.gethostname()
    for stale in target.parent.glob(f".{target.name}.building-{host}-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if not (pid.isdigit() and pid_alive(int(pid))):
            shutil.rmtree(stale, ignore_errors=True)
    if target.exists():
        shutil.rmtree(target, ignore_errors=True)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def open_store(
    index: FrameIndex, transform: FrameTransform, folder: Path, num_workers: int = 0
) -> FrameStore:
    """The store of `index` for `transform` under `folder`, built first if there is none.

    Building decodes every frame once with `num_workers` DataLoader workers and a progress
    bar; other processes asking for the same store meanwhile wait for it.
    """
    form = transform.stored_form
    key = fingerprint(index, form)
    target = Path(folder) / f"{_safe(index.name)}-{form}-{key[:16]}"
    if not (target / META_FILE).is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        # where the file system cannot lock, concurrent builders each write the store and
        # `_build` keeps the first complete one
        with file_lock(target.parent / f".{target.name}.lock", required=False):
            if not (target / META_FILE).is_file():
                _remove_leftovers(target)
                _build(index, transform, target, key, num_workers)
    store = FrameStore(target)
    if store.meta.get("fingerprint") != key:
        raise FrameStoreError(
            f"{target} holds {len(store)} frames of another index (fingerprint "
            f"{store.meta.get('fingerprint', '?')[:16]}): delete the folder to rebuild it"
        )
    check_store(store, index, transform)
    log.info(
        "frames of %s (%d, %s) read from the frame store %s", index.name, len(index), form, target
    )
    return store


def check_store(store: FrameStore, index: FrameIndex, transform) -> None:
    """Refuse a store built for another index or another transform's form."""
    if len(store) != len(index) or store.meta.get("form") != transform.stored_form:
        raise FrameStoreError(
            f"frame store {store.folder} holds {len(store)} {store.meta.get('form')} frames; "
            f"this set needs {len(index)} {transform.stored_form} frames of {index.name!r}: "
            f"pass the store open_store built for this index and transform"
        )


def store_for(
    role: str,
    index: FrameIndex,
    transform: FrameTransform,
    options: StoreOptions | None,
    num_workers: int = 0,
) -> FrameStore | None:
    """The store a set in `role` (train, val or test) reads from, or None to decode its files."""
    if options is None or role not in options.roles:
        return None
    return open_store(index, transform, options.folder, num_workers)
