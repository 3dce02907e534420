"""Section (c): end-to-end training images/s: PNG crops on disk -> DataLoader workers -> train step.

The loader is dfd's own (`make_loader`, prepared by the Accelerator as `dfd.train` prepares
it), over the current pipeline's training transform; the step is `model_step.train_step`.
The loader is iterated once, continuously: warm-up steps (worker start-up, first batches)
run untimed, then `repeats` windows of `steps` steps are timed back to back. The index is
long enough that one epoch covers all of them, so no worker restart falls into a window.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from dfd.bench.crops import crops_index
from dfd.bench.model_step import StepSetup, train_step
from dfd.bench.pipeline import current_transform
from dfd.bench.timing import Rate, time_region
from dfd.data.loading import make_loader
from dfd.data.store import open_store


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
) -> Rate:
    """Training images/s through the real loader with `workers` worker processes.

    With `store_folder` the loader reads a frame store built there first (untimed) instead
    of decoding the PNGs: what a run with `data/store=all` does.
    """
    if steps < 1 or repeats < 1:
        raise ValueError(f"steps={steps} and repeats={repeats} must be >= 1")
    n_batches = warmup + steps * repeats
    index = crops_index(crop_paths, length=n_batches * batch_size)
    transform = current_transform(setup.input_spec, train_augmentations)
    frames = open_store(index, transform, store_folder, workers) if store_folder else None
    loader = setup.accelerator.prepare(
        make_loader(index, transform, batch_size, workers, train=True, seed=seed, frames=frames)
    )
    setup.task.train()
    batches = iter(loader)

    def run(n: int) -> None:
        for _ in range(n):
            batch = next(batches)
            train_step(setup, batch["pixel_values"], batch["label"])

    try:
        run(warmup)
        seconds = [time_region(lambda: run(steps), setup.device) for _ in range(repeats)]
    finally:
        # stop the worker processes now rather than whenever the iterator is collected
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    return Rate(tuple(steps * batch_size / s for s in seconds))
