"""DataLoaders over a `FrameIndex`: shuffling that is a pure function of (seed, epoch),
worker processes pinned to one thread each, prefetching, pinned memory on a GPU.

The order of every epoch depends only on the seed and the epoch number, never on what
ran before, so a resumed run sees exactly the batches the uninterrupted run would have.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader

from dfd.data.frames import FrameDataset, FrameTransform, collate_frames
from dfd.data.index import FrameIndex
from dfd.data.sampling import batch_sampler, epoch_seed
from dfd.data.store import FrameStore, StoreOptions, check_store, store_for
from dfd.runtime.workers import one_thread_per_worker


def make_loader(
    index: FrameIndex,
    transform: FrameTransform,
    batch_size: int,
    num_workers: int,
    train: bool,
    seed: int,
    *,
    on_error: str = "raise",
    sampler: Mapping[str, Any] | None = None,
    prefetch_factor: int | None = None,
    frames: FrameStore | None = None,
) -> DataLoader:
    """A DataLoader over lazily loaded frames.

    Training draws its batches from the `data.sampler` option (`sampler`, a partial config;
    None = plain shuffling), advanced with `set_loader_epoch`, and drops the last partial
    batch; evaluation keeps the index order and every frame. `frames` is the index's
    frame store (`dfd.data.store.store_for`) to read instead of decoding the files.
    """
    if frames is not None:
        check_store(frames, index, transform)
    dataset = FrameDataset(
        index,
        transform,
        seed=seed,
        on_error=on_error,
        frames=frames.read if frames is not None else None,
    )
    if train and len(dataset) < batch_size:
        raise ValueError(
            f"training set {index.name!r} has {len(dataset)} frames, fewer than "
            f"trainer.batch_size={batch_size}: lower trainer.batch_size or add data"
        )
    batches = batch_sampler(sampler, index, batch_size, seed, drop_last=True) if train else None
    workers = {}
    if num_workers > 0:
        workers = {
            "worker_init_fn": one_thread_per_worker,
            "persistent_workers": True,
            "prefetch_factor": prefetch_factor or 4,
        }
    loader = DataLoader(
        dataset,
        **({"batch_sampler": batches} if train else {"batch_size": batch_size}),
        num_workers=num_workers,
        # re-seeded every epoch by set_loader_epoch: worker seeds depend on (seed, epoch) only
        generator=torch.Generator().manual_seed(seed),
        collate_fn=collate_frames,
        pin_memory=torch.cuda.is_available(),
        **workers,
    )
    loader.epoch_sampler = batches
    return loader


def source_loaders(
    cfg: Any, splits: Any, train_transform: FrameTransform, eval_transform: FrameTransform
) -> tuple[DataLoader, DataLoader]:
    """The loaders of `splits.train` and `splits.val` under a run config (`trainer`'s batch
    sizes and workers, `data.sampler`, `data.on_error`, `seed`), each reading its frame store
    when `data.store` names its role.

    Every process asks for its stores: the first to take a store's file lock builds it, the
    others wait on the lock (no collective, so no NCCL timeout however long it takes).
    """
    t, on_error = cfg.trainer, cfg.data.get("on_error", "raise")
    store = StoreOptions.from_config(cfg.data.get("store"))
    train, val = splits.train, splits.val
    train_loader = make_loader(
        train,
        train_transform,
        t.batch_size,
        t.num_workers,
        True,
        cfg.seed,
        on_error=on_error,
        sampler=cfg.data.get("sampler"),
        frames=store_for("train", train, train_transform, store, t.num_workers),
    )
    val_loader = make_loader(
        val,
        eval_transform,
        t.eval_batch_size,
        t.num_workers,
        False,
        cfg.seed,
        on_error=on_error,
        frames=store_for("val", val, eval_transform, store, t.num_workers),
    )
    return train_loader, val_loader


def set_loader_epoch(loader: DataLoader, epoch: int) -> None:
    """Make `loader` yield epoch `epoch`'s batches.

    Pass the loader `make_loader` returned: Accelerate's prepared copy shares its sampler,
    dataset and generator, so it follows too.
    """
    if loader.epoch_sampler is not None:
        loader.epoch_sampler.set_epoch(epoch)
    loader.dataset.set_epoch(epoch)
    loader.generator.manual_seed(epoch_seed(loader.dataset.seed, epoch))
