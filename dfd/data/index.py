"""The one record every reader produces: a columnar index of face frames.

A `FrameIndex` is the contract between the readers (demo, FF++, Celeb-DF, DeepfakeBench
JSONs, file lists, folders) and the rest of dfd. It holds paths only; frames are loaded
lazily by `dfd.data.frames.FrameDataset`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pyarrow is only needed by the index cache
    import pyarrow as pa

REAL, FAKE = 0, 1
_DIGITS = re.compile(r"(\d+)")
COLUMNS = ("path", "label", "video_id", "source", "split", "source_video")


def natural_key(path: str) -> tuple:
    """A sort key that compares runs of digits as numbers: frame 10 comes after frame 9."""
    return tuple(int(part) if part.isdigit() else part for part in _DIGITS.split(path))


@dataclass(frozen=True)
class FrameIndex:
    """Frames of one dataset (usually one split of it), one row per frame.

    Attributes:
        name: dataset name used in logs and metric keys (e.g. ``cdf_v2``).
        paths: absolute frame paths.
        labels: int64 array, 0 = real, 1 = fake (dfd's convention everywhere).
        video_ids: video identifier, unique within the dataset. It includes the source
            folder (``DF/000_003``) because FF++ manipulations reuse video folder names.
        sources: source or manipulation name (``real``, ``DF``, ``Celeb-synthesis``...).
        splits: split name of each frame (``train``, ``val``, ``test``).
        skipped: counts of items a reader skipped, by reason (``data.on_error=skip``).
        source_videos: for a fake frame, the video id of the real video it was made from
            (``real/000`` for ``DF/000_003``), when the dataset defines it; ``""`` for real
            frames and for fakes whose source is unknown. `dfd.data.sampling` pairs on it.
    """

    name: str
    paths: list[str]
    labels: np.ndarray
    video_ids: list[str]
    sources: list[str]
    splits: list[str]
    skipped: dict[str, int] = field(default_factory=dict)
    source_videos: list[str] | None = None

    def __post_init__(self) -> None:
        n = len(self.paths)
        if self.source_videos is None:
            object.__setattr__(self, "source_videos", [""] * n)
        lengths = {
            "labels": len(self.labels),
            "video_ids": len(self.video_ids),
            "sources": len(self.sources),
            "splits": len(self.splits),
            "source_videos": len(self.source_videos),
        }
        bad = {k: v for k, v in lengths.items() if v != n}
        if bad:
            raise ValueError(
                f"FrameIndex {self.name!r}: column lengths {bad} differ from {n} paths"
            )
        labels = np.asarray(self.labels, dtype=np.int64)
        object.__setattr__(self, "labels", labels)
        unknown = set(np.unique(labels).tolist()) - {REAL, FAKE}
        if unknown:
            raise ValueError(
                f"FrameIndex {self.name!r}: labels must be 0 (real) or 1 (fake), found {sorted(unknown)}"
            )

    def __len__(self) -> int:
        return len(self.paths)

    @classmethod
    def from_rows(
        cls, name: str, rows: Sequence[dict], skipped: dict[str, int] | None = None
    ) -> FrameIndex:
        """Build an index from dicts with the keys in `COLUMNS`."""
        return cls(
            name=name,
            paths=[r["path"] for r in rows],
            labels=np.array([int(r["label"]) for r in rows], dtype=np.int64),
            video_ids=[r["video_id"] for r in rows],
            sources=[r["source"] for r in rows],
            splits=[r["split"] for r in rows],
            skipped=dict(skipped or {}),
            source_videos=[r.get("source_video") or "" for r in rows],
        )

    def select(self, mask: np.ndarray, name: str | None = None) -> FrameIndex:
        """Rows where the boolean `mask` is true."""
        idx = np.flatnonzero(mask)
        return FrameIndex(
            name=name or self.name,
            paths=[self.paths[i] for i in idx],
            labels=self.labels[idx],
            video_ids=[self.video_ids[i] for i in idx],
            sources=[self.sources[i] for i in idx],
            splits=[self.splits[i] for i in idx],
            skipped=dict(self.skipped),
            source_videos=[self.source_videos[i] for i in idx],
        )

    def split(self, *names: str) -> FrameIndex:
        """Rows whose split is one of `names`; an empty result is an error that lists what exists."""
        wanted = set(names)
        mask = np.array([s in wanted for s in self.splits], dtype=bool)
        if not mask.any():
            raise ValueError(
                f"dataset {self.name!r} has no frames in split(s) {sorted(wanted)}; "
                f"splits present: {sorted(set(self.splits))}"
            )
        return self.select(mask)

    def frames_per_video(self, limit: int | None) -> FrameIndex:
        """Keep at most `limit` frames per video, evenly spaced over the video's frames.

        Frames are ordered by path with digit runs compared as numbers (``9.png`` before
        ``10.png``, ``999.png`` before ``1000.png``), so unpadded and long videos keep their
        frame order; positions are ``round(linspace(0, n - 1, limit))``.
        """
        if limit is None:
            return self
        by_video: dict[str, list[int]] = {}
        for i, v in enumerate(self.video_ids):
            by_video.setdefault(v, []).append(i)
        keep: list[int] = []
        for rows in by_video.values():
            rows.sort(key=lambda i: natural_key(self.paths[i]))
            if len(rows) <= limit:
                keep.extend(rows)
            else:
                picks = np.linspace(0, len(rows) - 1, limit).round().astype(int)
                keep.extend(rows[p] for p in picks)
        mask = np.zeros(len(self), dtype=bool)
        mask[keep] = True
        return self.select(mask)

    def video_labels(self) -> dict[str, int]:
        """Label of every video; a video whose frames disagree on the label is an error."""
        labels: dict[str, int] = {}
        for v, y in zip(self.video_ids, self.labels.tolist(), strict=True):
            if labels.setdefault(v, y) != y:
                raise ValueError(
                    f"dataset {self.name!r}: video {v!r} has frames labelled both real and fake"
                )
        return labels

    def summary(self) -> str:
        n_videos = len(set(self.video_ids))
        n_fake = int(self.labels.sum())
        return (
            f"{self.name}: {len(self)} frames ({len(self) - n_fake} real / {n_fake} fake) "
            f"in {n_videos} videos"
        )

    def to_arrow(self) -> pa.Table:
        """The index as an Arrow table (`COLUMNS`), with name and skipped counts in the schema metadata.

        Labels are stored as int8 and the low-cardinality columns (video, source, split) as
        dictionaries, which keeps a million-frame cache small and fast to reload.
        """
        import json

        import pyarrow as pa

        table = pa.table(
            {
                "path": pa.array(self.paths, pa.string()),
                "label": pa.array(self.labels.astype(np.int8)),
                "video_id": pa.array(self.video_ids, pa.string()).dictionary_encode(),
                "source": pa.array(self.sources, pa.string()).dictionary_encode(),
                "split": pa.array(self.splits, pa.string()).dictionary_encode(),
                "source_video": pa.array(self.source_videos, pa.string()).dictionary_encode(),
            }
        )
        meta = {b"dfd.name": self.name.encode(), b"dfd.skipped": json.dumps(self.skipped).encode()}
        return table.replace_schema_metadata(meta)

    @classmethod
    def from_arrow(cls, table: pa.Table) -> FrameIndex:
        """Inverse of `to_arrow` (dictionary or plain string columns both work)."""
        import json

        import pyarrow as pa

        def strings(col: str) -> list[str]:
            arr = table.column(col).combine_chunks()
            if pa.types.is_dictionary(arr.type):
                # decoding through numpy is ~10x faster than to_pylist() on a dictionary column
                values = np.array(arr.dictionary.to_pylist(), dtype=object)
                return values[arr.indices.to_numpy(zero_copy_only=False)].tolist()
            return arr.to_pylist()

        meta = table.schema.metadata or {}
        return cls(
            name=meta.get(b"dfd.name", b"").decode(),
            paths=strings("path"),
            labels=table.column("label").to_numpy().astype(np.int64),
            video_ids=strings("video_id"),
            sources=strings("source"),
            splits=strings("split"),
            skipped=json.loads(meta.get(b"dfd.skipped", b"{}")),
            source_videos=strings("source_video") if "source_video" in table.column_names else None,
        )
