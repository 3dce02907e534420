"""Build a reader's `FrameIndex` once and reload it from a parquet file while its inputs are unchanged.

The cache key covers what determines an index: the reader's name, every argument it was
called with, and the *content* of the list/JSON/CSV files it parses (a content hash, not
an mtime, because file systems with coarse timestamps miss an edit made within the same
tick). Folders do not go into the key: the readers that list folders (the preprocessed
layouts, and `check_files`) do so through a `DirScanner`, which records each folder's
mtime; the cache stores those mtimes and rebuilds when any of them changed, so frames
written by a new preprocessing run are picked up without hashing the tree.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dfd.data.index import FrameIndex

log = logging.getLogger(__name__)

# Bump when a reader's output for the same inputs changes, so that old caches are not reused
# (2: the source_video column).
CACHE_VERSION = 2
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_FINGERPRINT_KEY = b"dfd.fingerprint"


class DirScanner:
    """Lists folders (each at most once) and remembers their mtimes for the cache.

    A folder's mtime changes when an entry is added, removed or renamed in it, which is
    exactly what changes an index of paths; recording it here lets `cached_index` tell a
    stale cache from a valid one with one `stat` per folder instead of a rebuild.
    """

    def __init__(self) -> None:
        self.mtimes: dict[str, int | None] = {}
        self._names: dict[str, set[str] | None] = {}

    def _record(self, path: str) -> bool:
        try:
            self.mtimes[path] = os.stat(path).st_mtime_ns
            return True
        except FileNotFoundError:
            self.mtimes[path] = None
            return False

    def subdirs(self, path: str) -> list[str] | None:
        """Sorted names of the sub-folders of `path` (hidden ones excluded); None if it does not exist."""
        if not self._record(path):
            return None
        try:
            with os.scandir(path) as it:
                return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
        except NotADirectoryError:
            return None

    def frames(self, path: str) -> list[str] | None:
        """Sorted image file names in `path`; None if the folder does not exist."""
        if not self._record(path):
            return None
        try:
            with os.scandir(path) as it:
                return sorted(
                    e.name for e in it if e.name.lower().endswith(IMAGE_SUFFIXES) and e.is_file()
                )
        except NotADirectoryError:
            return None

    def names(self, path: str) -> set[str] | None:
        """All entry names in `path` (memoized: `check_files` asks once per frame); None if missing."""
        if path in self._names:
            return self._names[path]
        names: set[str] | None = None
        if self._record(path):
            try:
                names = set(os.listdir(path))
            except NotADirectoryError:
                names = None
        self._names[path] = names
        return names


def file_digest(path: str | os.PathLike) -> str:
    """blake2b of a file's bytes ("missing" if it does not exist), for the cache key."""
    h = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return "missing"
    return h.hexdigest()


def cache_key(reader: str, params: Mapping[str, Any], inputs: Iterable[str | os.PathLike]) -> str:
    """Hex key of one index: reader name, JSON of its arguments, and the digests of its input files."""
    payload = {
        "version": CACHE_VERSION,
        "reader": reader,
        "params": params,
        "inputs": {os.fspath(p): file_digest(p) for p in sorted(map(os.fspath, inputs))},
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


def _fingerprint_valid(mtimes: Mapping[str, int | None]) -> bool:
    for path, recorded in mtimes.items():
        try:
            now: int | None = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            now = None
        if now != recorded:
            return False
    return True


def cached_index(
    reader: str,
    params: Mapping[str, Any],
    inputs: Iterable[str | os.PathLike],
    cache_dir: str | os.PathLike | None,
    build: Callable[[DirScanner], FrameIndex],
) -> FrameIndex:
    """Return the index `build` makes, from `cache_dir` when a valid cached copy exists.

    `params` must be JSON-serializable (paths as strings) and `inputs` lists the files
    `build` parses. With `cache_dir=None` the index is always built. A cache file is
    written atomically (temp file + rename), so concurrent runs never read a half-written
    one; a build that raises writes nothing. Old cache files are left in place: they are
    small and a different split or argument set may still want them.
    """
    inputs = list(inputs)
    if cache_dir is None:
        return build(DirScanner())
    key = cache_key(reader, params, inputs)
    name = str(params.get("name") or reader)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    path = Path(cache_dir) / f"{safe}-{reader}-{key[:24]}.parquet"
    if path.is_file():
        try:
            table = pq.read_table(path)
            meta = table.schema.metadata or {}
            mtimes = json.loads(meta.get(_FINGERPRINT_KEY, b"{}"))
        except (OSError, pa.ArrowException, ValueError) as err:
            log.warning("index cache %s unreadable (%s): rebuilding", path, err)
        else:
            if _fingerprint_valid(mtimes):
                log.info("index cache hit: %s", path)
                return FrameIndex.from_arrow(table)
            log.info("index cache stale (a scanned folder changed): rebuilding %s", path)
    else:
        log.info("index cache miss: building %s", path)
    scanner = DirScanner()
    index = build(scanner)
    table = index.to_arrow()
    meta = dict(table.schema.metadata or {})
    meta[_FINGERPRINT_KEY] = json.dumps(scanner.mtimes).encode()
    table = table.replace_schema_metadata(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return index
