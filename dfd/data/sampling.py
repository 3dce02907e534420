"""Training batch samplers: plain shuffling, and paired real/fake batches.

Both are batch samplers over the rows of a `FrameIndex` with one constructor,
``(index, batch_size, seed, drop_last=True, ...)``, and ``set_epoch(epoch)``: the batches
of an epoch depend only on (seed, epoch), never on the worker count or on how many
batches an earlier run consumed, so a resumed run sees the batches an uninterrupted one
would. `conf/data/sampler/*.yaml` picks one (``data/sampler=paired``); `batch_sampler`
builds the configured one.

Paired batches follow the successor work (GenD, Yermakov et al., arXiv 2508.06248), which
found that training on real and fake frames *of the same source video* counters shortcut
learning: with each fake frame beside the frame it was made from, what differs inside a
pair is the manipulation, not the identity, background or compression.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from torch.utils.data import Sampler

from dfd.data.index import FAKE, REAL, FrameIndex
from dfd.data.readers._common import DataError

log = logging.getLogger(__name__)

UNPAIRED = ("raise", "drop")
# what records a fake's source video, for the message when nothing does
_LINKED_READERS = (
    "ff (official FF++), deepfakebench / filelist / folder with FF++ naming (<target>_<source>), "
    "dfdc train (metadata 'original'), hf (source_video_column), the demo"
)


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed for one (seed, epoch) pair, distinct across pairs."""
    return (int(seed) * 1_000_003 + int(epoch)) & 0x7FFF_FFFF_FFFF_FFFF


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The permutation of ``range(n)`` of one (seed, epoch): epoch 3's never depends on epochs 0-2.

    `ShuffleBatchSampler` (what `dfd.data.loading.make_loader` trains with by default) cuts
    it into batches, the last partial one dropped.
    """
    g = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    return torch.randperm(n, generator=g).numpy()


def _check_batch_size(batch_size: int, n: int, what: str, name: str, drop_last: bool) -> None:
    if batch_size < 1:
        raise DataError(f"trainer.batch_size must be positive, got {batch_size}")
    if drop_last and n < batch_size:
        raise DataError(
            f"training set {name!r} has {n} {what}, fewer than trainer.batch_size={batch_size}: "
            f"no full batch. Fix: lower trainer.batch_size"
        )


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of units (groups of rows that stay together), in a random unit order per (seed, epoch).

    `units` is (U, k): each row of it is k index rows that go into the same batch, in that
    order; a batch holds `units_per_batch` units. The base of both samplers below.
    """

    def __init__(
        self, units: np.ndarray, units_per_batch: int, seed: int, drop_last: bool = True
    ) -> None:
        self.units = units
        self.units_per_batch = units_per_batch
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order `__iter__` yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        full, rest = divmod(len(self.units), self.units_per_batch)
        return full if self.drop_last or not rest else full + 1

    def __iter__(self) -> Iterator[list[int]]:
        per_batch = self.units_per_batch
        order = self.units[epoch_permutation(len(self.units), self.seed, self.epoch)]
        for b in range(len(self)):
            yield order[b * per_batch : (b + 1) * per_batch].reshape(-1).tolist()


class ShuffleBatchSampler(EpochBatchSampler):
    """Every row once per epoch in a random order (seeded by seed and epoch), cut into batches."""

    def __init__(
        self, index: FrameIndex, batch_size: int, seed: int, drop_last: bool = True
    ) -> None:
        _check_batch_size(batch_size, len(index), "frames", index.name, drop_last)
        super().__init__(np.arange(len(index)).reshape(-1, 1), batch_size, seed, drop_last)
        self.batch_size = batch_size


def _frame_key(path: str) -> str:
    # a frame's position in its video is its file name: DeepfakeBench and dfd's preprocessing
    # both write frame k of a video as <video>/<k:03d>.png, fakes and their reals alike
    return path.rpartition("/")[2].rpartition(".")[0]


def pair_frames(index: FrameIndex) -> tuple[np.ndarray, dict[str, int]]:
    """(fake row, real row) pairs: each fake frame with the frame of its source video at the same position.

    A fake frame's partner is the frame of its source video (`FrameIndex.source_videos`)
    with the same file name (``DF/000_003/007.png`` -> ``real/000/007.png``); where the real
    video has no frame of that name (a frame dropped because no face was found, or a
    subsampled index), the frame at the same relative position of the real video. Returns
    the pairs, shape (P, 2), in index order, and the counts of fakes left unpaired by
    reason: ``no_source`` (none recorded), ``source_absent`` (not in this index) and
    ``source_not_real``.
    """
    rows_of: dict[str, list[int]] = {}
    for i, v in enumerate(index.video_ids):
        rows_of.setdefault(v, []).append(i)
    for rows in rows_of.values():
        rows.sort(key=lambda i: index.paths[i])
    by_name = {v: {_frame_key(index.paths[i]): i for i in rows} for v, rows in rows_of.items()}
    labels = index.labels
    pairs: list[tuple[int, int]] = []
    unpaired = {"no_source": 0, "source_absent": 0, "source_not_real": 0}
    for rows in rows_of.values():
        if labels[rows[0]] != FAKE:
            continue
        source = index.source_videos[rows[0]]
        if not source:
            unpaired["no_source"] += len(rows)
            continue
        real_rows = rows_of.get(source)
        if real_rows is None:
            unpaired["source_absent"] += len(rows)
            continue
        if labels[real_rows[0]] != REAL:
            unpaired["source_not_real"] += len(rows)
            continue
        names = by_name[source]
        span = max(len(rows) - 1, 1)
        for k, i in enumerate(rows):
            j = names.get(_frame_key(index.paths[i]))
            if j is None:
                j = real_rows[round(k * (len(real_rows) - 1) / span)]
            pairs.append((i, j))
    pairs.sort()
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2), {
        k: n for k, n in unpaired.items() if n
    }


class PairedBatchSampler(EpochBatchSampler):
    """Batches of (fake frame, its source video's real frame) pairs: half fakes, half their reals.

    An epoch is every paired fake frame once, in a random order of pairs (seeded by seed
    and epoch), `batch_size` // 2 pairs a batch, each batch laid out ``[fake, real, fake,
    real, ...]``. A real frame appears once per fake made from it (FF++: the real ``000``
    beside ``DF/000_003``, ``F2F/000_003``...), so the classes stay balanced; real videos
    no fake in the index was made from are not drawn. `unpaired` says what to do with
    fakes that cannot be paired (no source recorded, or their source is not in the
    index): ``raise`` (a `DataError` with the counts and examples) or ``drop`` them (logged).
    """

    def __init__(
        self,
        index: FrameIndex,
        batch_size: int,
        seed: int,
        drop_last: bool = True,
        unpaired: str = "raise",
    ) -> None:
        if unpaired not in UNPAIRED:
            raise DataError(
                f"data.sampler.unpaired must be one of {list(UNPAIRED)}, got {unpaired!r}"
            )
        if batch_size < 2 or batch_size % 2:
            raise DataError(
                f"data.sampler=paired needs an even trainer.batch_size (half fakes, half the "
                f"real frames they were made from), got {batch_size}. Fix: trainer.batch_size="
                f"{max(2, batch_size + batch_size % 2)}"
            )
        pairs, left = pair_frames(index)
        n_fake = int(index.labels.sum())
        if not len(pairs):
            raise DataError(
                f"dataset {index.name!r}: none of its {n_fake} fake frames can be paired with "
                f"its source video ({_describe(left)}), so data/sampler=paired has nothing to "
                f"draw. Readers that record the source video: {_LINKED_READERS}. Fix: use one "
                f"of them, or data/sampler=shuffle"
            )
        if left:
            message = (
                f"dataset {index.name!r}: {sum(left.values())} of {n_fake} fake frames cannot "
                f"be paired with their source video ({_describe(left)}; e.g. "
                f"{_examples(index, pairs)})"
            )
            if unpaired == "raise":
                raise DataError(
                    f"{message}. Fix: data.sampler.unpaired=drop to train on the paired ones, "
                    f"or read the real videos of the same split too (FF++: include_real=true)"
                )
            log.warning("%s: dropped (data.sampler.unpaired=drop)", message)
        _check_batch_size(batch_size, 2 * len(pairs), "paired frames", index.name, drop_last)
        super().__init__(pairs, batch_size // 2, seed, drop_last)
        self.pairs = pairs  # (P, 2): fake row, real row
        self.batch_size = batch_size


def _describe(left: Mapping[str, int]) -> str:
    reasons = {
        "no_source": "no source video recorded",
        "source_absent": "source video not in this index",
        "source_not_real": "source video is not real",
    }
    return ", ".join(f"{n} with {reasons[k]}" for k, n in left.items()) or "no fake frames"


def _examples(index: FrameIndex, pairs: np.ndarray, n: int = 3) -> str:
    paired = set(pairs[:, 0].tolist())
    seen: list[str] = []
    for i in np.flatnonzero(index.labels == FAKE):
        v = index.video_ids[i]
        if i not in paired and v not in seen:
            seen.append(v)
            if len(seen) == n:
                break
    return ", ".join(
        f"{v} (source {index.source_videos[index.video_ids.index(v)] or 'unknown'!r})" for v in seen
    )


def batch_sampler(
    spec: Mapping[str, Any] | None,
    index: FrameIndex,
    batch_size: int,
    seed: int,
    drop_last: bool = True,
) -> Sampler[list[int]]:
    """The training batch sampler `spec` (a ``conf/data/sampler`` option) configures; None = shuffling.

    `spec` is a partial config (``_target_`` + ``_partial_: true`` + the sampler's own
    options); the index, batch size, seed and drop_last come from the run.
    """
    if spec is None:
        return ShuffleBatchSampler(index, batch_size, seed, drop_last)
    return instantiate(spec)(index=index, batch_size=batch_size, seed=seed, drop_last=drop_last)
