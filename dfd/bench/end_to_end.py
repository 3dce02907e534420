"""Section (c): end-to-end images/s: PNG crops on disk -> DataLoader workers -> model step.

The loader is dfd's own (`make_loader`, prepared by the Accelerator as `dfd.train` prepares
it). Training runs the current pipeline's training transform into `model_step.train_step`;
evaluation (validation and target scoring) runs the eval transform in index order into
`model_step.eval_step`. Each loader is iterated once, continuously: warm-up steps (worker
start-up, first batches) run untimed, then `repeats` windows of `steps` steps are timed
back to back. The index is long enough that one pass covers all of them, so no worker
restart falls into a window.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from dfd.bench.crops import crops_index
from dfd.bench.model_step import StepSetup, eval_step, train_step
from dfd.bench.pipeline import current_transform
from dfd.bench.timing import Rate, time_region
from dfd.data.loading import make_loader
from dfd.data.store import open_store


def _loader_rate(
    setup: StepSetup,
    loader,
    step: Callable[[dict], object],
    batch_size: int,
    steps: int,
    repeats: int,
    warmup: int,
) -> Rate:
    batches = iter(loader)

    def run(n: int) -> None:
        for _ in range(n):
            step(next(batches))

    try:
        run(warmup)
        seconds = [time_region(lambda: run(steps), setup.device) for _ in range(repeats)]
    finally:
        # stop the worker processes now rather than whenever the iterator is collected
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    return Rate(tuple(steps * batch_size / s for s in seconds))


def bench_end_to_end(
    setup: StepSetup,
    crop_paths: list[Path],
    train_augmentations: Mapping[str, object],
    batch_size: int,
    workers: int,
    steps: int,
    repeats: int,
    warmup: int,
    seed: int,
    store_folder: Path | None = None,
    eval_batch_size: int | None = None,
) -> dict[str, Rate]:
    """Training and evaluation images/s through the real loader with `workers` processes.

    Returns ``{"train": Rate, "eval": Rate}``. With `store_folder` the loaders read frame
    stores built there first (untimed) instead of decoding the PNGs: what a run with
    `data/store=all` does.
    """
    if steps < 1 or repeats < 1:
        raise ValueError(f"steps={steps} and repeats={repeats} must be >= 1")
    eval_batch_size = eval_batch_size or batch_size
    n_batches = warmup + steps * repeats
    rates = {}
    for kind, size in (("train", batch_size), ("eval", eval_batch_size)):
        train = kind == "train"
        index = crops_index(crop_paths, length=n_batches * size)
        transform = current_transform(setup.input_spec, train_augmentations if train else None)
        frames = open_store(index, transform, store_folder, workers) if store_folder else None
        loader = setup.accelerator.prepare(
            make_loader(index, transform, size, workers, train=train, seed=seed, frames=frames)
        )
        if train:
            setup.task.train()

            def step(batch: dict) -> None:
                train_step(setup, batch["pixel_values"], batch["label"])
        else:
            setup.task.eval()

            def step(batch: dict) -> None:
                eval_step(setup, batch["pixel_values"])

        rates[kind] = _loader_rate(setup, loader, step, size, steps, repeats, warmup)
    return rates
