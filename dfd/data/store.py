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
multi-GPU run wait for the first) and appears atomically (a rename) when complete. What it
serves is verified: each shard's Arrow schema names its dataset and index fingerprint, and
the metadata holds each shard's content checksum (XXH3-128); `open_store` refuses a shard of
another store and a shard edited since the build, hashing each shard once per process
(`FrameStore.verify`). Raw pixels take room: 192 KiB per 256x256 frame as decoded, 147 KiB at 224x224, about 1.9x
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
from tqdm.auto import tqdm

from dfd.data.frames import FrameTransform, UnreadableFrameError, decode_frame, pyspng
from dfd.data.index import FrameIndex
from dfd.runtime.interprocess import file_lock, pid_alive
from dfd.runtime.progress import progress
from dfd.runtime.workers import one_thread_per_worker

log = logging.getLogger(__name__)

# Bump when what a store holds for the same frames and form changes.
# 2: every shard names its dataset and index in its schema; the metadata holds checksums
STORE_VERSION = 2
ROLES = ("train", "val", "test")
META_FILE = "dfd_store.json"
SHARD_BYTES = 1 << 30  # one Arrow file per ~1 GiB of pixels
BUILD_BATCH = 32  # frames per record batch (a few MiB)
# free space a build leaves on its disk, beyond the store itself
FREE_MARGIN_BYTES = 1 << 30
# what a store that does not fit does: refuse (an error naming its size) or decode the files
WHEN_FULL = ("refuse", "decode")
# `when_full=decode` (data/store=auto) builds a store only if it takes at most this share of
# the disk's free space beyond the margin: a cache never crowds out a run's own outputs
AUTO_SHARE = 0.5

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


# shards whose content this process has checked: (path, size, mtime_ns, checksum)
_VERIFIED: set[tuple[str, int, int, str]] = set()
_CHUNK = 16 << 20


def shard_checksum(path: Path) -> str:
    """XXH3-128 of a shard file's bytes (xxhash comes with `datasets`): tens of GB/s on one
    core, so verifying a store costs about what reading it from the page cache does.

    Not cryptographic: it catches an edited or damaged shard; a folder someone can write to
    at will could have its metadata rewritten too, which no checksum stored beside it stops.
    """
    import xxhash

    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _identity(index_name: str, key: str, shard: str) -> dict[bytes, bytes]:
    """What a shard's Arrow schema records of the store it belongs to."""
    return {
        b"dfd.dataset": index_name.encode(),
        b"dfd.fingerprint": key.encode(),
        b"dfd.shard": shard.encode(),
    }


@dataclass(frozen=True)
class StoreOptions:
    """Which sets read their frames from a store, where stores live, and what a store that
    the disk cannot hold does (`data.store`): ``refuse`` (one line naming its size) or
    ``decode`` (the set decodes its files, with a note; data/store=auto)."""

    roles: tuple[str, ...]
    folder: Path
    when_full: str = "refuse"

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
        when_full = str(store.get("when_full") or "refuse")
        if when_full not in WHEN_FULL:
            raise FrameStoreError(
                f"data.store.when_full={when_full!r}: use refuse (an error naming the size) or "
                f"decode (decode the frames instead, as data/store=auto does)"
            )
        return cls(roles, Path(str(store["folder"])).expanduser(), when_full)


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

    def verify(self) -> None:
        """Refuse a shard of another store (read from its schema: dataset and index
        fingerprint), and a shard whose bytes changed since the build (its checksum in
        `META_FILE`). Each shard's content is hashed once per process (again if its size or
        modification time changes); the identity is read every time (a few bytes).
        """
        dataset, key = self.meta.get("dataset"), self.meta.get("fingerprint", "")
        sums = self.meta.get("checksums") or {}
        fix = f"delete {self.folder} and the next run rebuilds it"
        for shard in self.shards:
            try:
                with pa.OSFile(str(shard), "rb") as f:
                    found = pa.ipc.open_stream(f).schema.metadata or {}
            except (OSError, pa.ArrowInvalid) as err:
                raise FrameStoreError(
                    f"frame store {self.folder}: shard {shard.name} cannot be read ({err}): {fix}"
                ) from None
            their = found.get(b"dfd.dataset", b"").decode()
            their_key = found.get(b"dfd.fingerprint", b"").decode()
            if (their, their_key, found.get(b"dfd.shard", b"").decode()) != (
                dataset,
                key,
                shard.name,
            ):
                whose = (
                    f"frames of dataset {their!r} (index {their_key[:16]})"
                    if their
                    else "no record of its store"
                )
                raise FrameStoreError(
                    f"frame store {self.folder}: shard {shard.name} holds {whose}, not this "
                    f"store's {dataset!r} (index {key[:16]}): it was swapped or copied in; {fix}"
                )
            st = shard.stat()
            expected = sums.get(shard.name, "")
            seen = (str(shard), st.st_size, st.st_mtime_ns, expected)
            if seen in _VERIFIED:
                continue
            if shard_checksum(shard) != expected:
                raise FrameStoreError(
                    f"frame store {self.folder}: shard {shard.name} changed after it was built "
                    f"(its checksum differs from the one in {META_FILE}): {fix}"
                )
            _VERIFIED.add(seen)

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


def _gib(n: float) -> str:
    """A size in GiB (MiB below one GiB), as store messages print it."""
    if n < 2**30:
        return f"{n / 2**20:.1f} MiB"
    return f"{n / 2**30:.1f} GiB" if n < 100 * 2**30 else f"{n / 2**30:,.0f} GiB"


def _check_room(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if needed + FREE_MARGIN_BYTES > free:
        raise FrameStoreError(
            f"a frame store needs about {_gib(needed)} in {folder}, which has {_gib(free)} "
            f"free: point data.store.folder at a larger disk, store fewer sets (data/store=eval "
            f"stores only val and test), or decode the frames (data/store=auto decodes what "
            f"does not fit, data/store=none never stores)"
        )


def fits_on_disk(folder: Path, needed: int) -> bool:
    """Whether data/store=auto builds a store of `needed` bytes in `folder`: it may take at
    most `AUTO_SHARE` of the disk's free space beyond `FREE_MARGIN_BYTES`."""
    free = shutil.disk_usage(folder).free
    return needed <= AUTO_SHARE * (free - FREE_MARGIN_BYTES)


def _build(
    index: FrameIndex,
    transform: FrameTransform,
    target: Path,
    key: str,
    num_workers: int,
    needed: int,
) -> None:
    """Decode every frame of `index` into a new store at `target` (appears when complete)."""
    started = time.perf_counter()
    _check_room(target.parent, needed)
    tqdm.write(
        f"frame store of {index.name} ({transform.stored_form}): {len(index):,} frames, "
        f"about {_gib(needed)}, building in {target.parent}"
    )
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
                identity = _identity(index.name, key, shards[-1])
                writer = pa.ipc.new_stream(sink, SCHEMA.with_metadata(identity))
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
        "checksums": {s: shard_checksum(tmp / s) for s in shards},
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
    index: FrameIndex,
    transform: FrameTransform,
    folder: Path,
    num_workers: int = 0,
    when_full: str = "refuse",
) -> FrameStore | None:
    """The store of `index` for `transform` under `folder`, built first if there is none.

    Building prints the store's size, then decodes every frame once with `num_workers`
    DataLoader workers and a progress bar; other processes asking for the same store
    meanwhile wait for it. A store the disk cannot hold is refused (`when_full="refuse"`,
    one line naming its size) or not built (``"decode"``: returns None after a note, and the
    set decodes its files; `fits_on_disk` says what fits).
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
                needed = _estimated_bytes(index, transform)
                if when_full == "decode" and not fits_on_disk(target.parent, needed):
                    free = shutil.disk_usage(target.parent).free
                    tqdm.write(
                        f"frame store of {index.name} not built: it needs about "
                        f"{_gib(needed)} and data/store=auto takes at most half of the "
                        f"{_gib(free)} free in {target.parent}; its frames are decoded from "
                        f"the files (data.store.folder=<a larger disk> stores them)"
                    )
                    return None
                _build(index, transform, target, key, num_workers, needed)
    store = FrameStore(target)
    if store.meta.get("fingerprint") != key:
        raise FrameStoreError(
            f"{target} holds {len(store)} frames of another index (fingerprint "
            f"{store.meta.get('fingerprint', '?')[:16]}): delete the folder to rebuild it"
        )
    check_store(store, index, transform)
    store.verify()
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
    return open_store(index, transform, options.folder, num_workers, options.when_full)
