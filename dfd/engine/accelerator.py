"""The Accelerator every entry point uses: one process, `accelerate launch` or `torchrun`."""

from __future__ import annotations

import gc

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DataLoaderConfiguration, set_seed

from dfd.runtime.workers import set_torch_threads


def finish(accelerator: Accelerator) -> None:
    """End a run's processes together: a process group torn down while a peer is still in
    a collective can hang that peer. Accelerate's references to prepared models go first
    (`free_memory`), so no DDP wrapper outlives the group."""
    accelerator.wait_for_everyone()
    accelerator.free_memory()
    gc.collect()
    accelerator.end_training()


def make_accelerator(
    precision: str, grad_accum_steps: int = 1, cpu: bool | None = None
) -> Accelerator:
    """An Accelerator for this process.

    `cpu=None` means: run on the CPU when torch sees no accelerator device. It matters for
    multi-process CPU runs: Accelerate sets up its gloo process group only when told the
    run is on the CPU, and would otherwise run every torchrun process as a lone job.
    """
    if cpu is None:
        cpu = not torch.accelerator.is_available()
    # Accelerate keeps its settings in a process-wide singleton; runs made one after another
    # in one process (sweeps, tests) may change precision or accumulation, so start afresh.
    # The process group (PartialState) is kept.
    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(
        mixed_precision=precision,
        gradient_accumulation_steps=grad_accum_steps,
        cpu=cpu,
        # batches come from pinned memory on a GPU box: copy them without blocking the host
        dataloader_config=DataLoaderConfiguration(non_blocking=not cpu),
    )


def start_training_process(trainer_cfg, seed: int) -> tuple[Accelerator, int]:
    """This process ready to train: torch's threads (`trainer.threads`, set before any torch
    work: on a busy few-core CPU torch's default is ~10x slower), its Accelerator, the seed
    and the float32 matmul precision. Returns the Accelerator and the thread count."""
    threads = set_torch_threads(trainer_cfg.get("threads"))
    accelerator = make_accelerator(
        trainer_cfg.precision, trainer_cfg.grad_accum_steps, trainer_cfg.cpu
    )
    set_seed(seed)
    torch.set_float32_matmul_precision(trainer_cfg.matmul_precision)
    return accelerator, threads
