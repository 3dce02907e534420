"""Section (b): the model step on synthetic tensors, and its FLOPs counted on one step.

The detector, objective and optimizer are built from the same config groups and builders
as `dfd.train` (`dfd.models.build.build_detector`, `dfd.engine.task.DetectionTask`,
`dfd.engine.optim.build_optimizer`) and prepared by the same Accelerator, so the step
measured is the step training runs: forward through the backbone with its PEFT adapter, the
objective on the head, backward, optimizer step, under Accelerate's autocast for the
configured precision. The benchmark's step never reads the
loss on the host, so steps queue on the device without a per-step synchronization.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from dfd.bench.timing import Rate, interleaved, synchronize
from dfd.data.spec import InputSpec
from dfd.engine.accelerator import make_accelerator
from dfd.engine.optim import build_optimizer
from dfd.engine.task import DetectionTask
from dfd.models.adapters import count_parameters
from dfd.models.build import build_detector


@dataclass
class StepSetup:
    """A prepared task (detector + objective) and optimizer, as training would run them."""

    accelerator: Accelerator
    task: nn.Module
    optimizer: torch.optim.Optimizer
    input_spec: InputSpec
    trainable_params: int
    total_params: int

    @property
    def device(self) -> torch.device:
        return self.accelerator.device


def build_setup(cfg: DictConfig) -> StepSetup:
    """Build and prepare model, objective and optimizer from the bench config's groups."""
    accelerator = make_accelerator(cfg.precision, 1, cfg.cpu)
    set_seed(cfg.seed)
    torch.set_float32_matmul_precision(cfg.matmul_precision)
    if cfg.threads is not None:
        # on a CPU shared with other jobs, fewer threads than cores can be much faster:
        # torch's OpenMP threads spin-wait for each other
        torch.set_num_threads(int(cfg.threads))
    detector, objective = build_detector(cfg)
    trainable, total = count_parameters(detector)
    spec = detector.backbone.input_spec
    task = DetectionTask(detector, objective)
    optimizer = build_optimizer(task, instantiate(cfg.optimizer), cfg.weight_decay, cfg.no_decay)
    task, optimizer = accelerator.prepare(task, optimizer)
    return StepSetup(accelerator, task, optimizer, spec, trainable, total)


def train_step(setup: StepSetup, pixel_values: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One optimizer step, the body of `dfd.engine.trainer.Trainer`'s loop; returns the loss unread."""
    acc, task = setup.accelerator, setup.task
    with acc.accumulate(task), acc.autocast():
        out = task(pixel_values, labels)  # {"loss", "logits", "terms"}
        acc.backward(out["loss"])
        setup.optimizer.step()
        setup.optimizer.zero_grad(set_to_none=True)
    return out["loss"].detach()


def eval_step(setup: StepSetup, pixel_values: torch.Tensor) -> torch.Tensor:
    """p(fake) of a batch in the training precision under inference mode, as evaluation scores."""
    acc = setup.accelerator
    with torch.inference_mode(), acc.autocast():
        return acc.unwrap_model(setup.task).detector.fake_probability(pixel_values)  # (B,)


def synthetic_batches(
    spec: InputSpec, batch_size: int, device: torch.device, sets: int = 3, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`sets` random normalized-image batches with balanced labels, already on `device`.

    Random values rather than zeros (which can run faster than real data), and several sets
    rotated so that repeated steps do not all read one buffer.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    g = torch.Generator().manual_seed(seed)
    h, w = spec.size
    labels = (torch.arange(batch_size) % 2).to(device)
    return [(torch.randn(batch_size, 3, h, w, generator=g).to(device), labels) for _ in range(sets)]


def _cpu_flash_attention_flop(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_flash_attention_backward_flop(
    grad_out, query, key, value, *args, out_shape=None, **kwargs
) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# torch's counter knows the CUDA attention kernels but not the CPU flash kernel that SDPA
# dispatches to on a CPU, which it would count as zero; same formulas as the CUDA kernels
_CPU_ATTENTION_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention_flop,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: (
        _cpu_flash_attention_backward_flop
    ),
}


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of `fn` as torch's FlopCounterMode counts them.

    It counts matrix products, convolutions and attention (forward and backward), the work a
    matmul ceiling bounds; elementwise ops and norms are not counted.
    """
    with FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION_FLOPS) as counter:
        fn()
    return int(counter.get_total_flops())


def bench_model(
    setup: StepSetup,
    batch_size: int,
    eval_batch_size: int,
    steps: int,
    repeats: int,
    warmup: int,
) -> tuple[dict[str, Rate], dict[str, int]]:
    """Images/s of the train step and the eval forward, and the FLOPs of one step of each.

    Each timed call runs `steps` steps; the two kinds run interleaved over `repeats`, after
    `warmup` untimed steps of each.
    """
    if steps < 1:
        raise ValueError(f"steps={steps} must be >= 1")
    device = setup.device
    train_batches = synthetic_batches(setup.input_spec, batch_size, device)
    eval_batches = synthetic_batches(setup.input_spec, eval_batch_size, device, seed=1)

    def train_window(n: int = steps) -> None:
        setup.task.train()
        for s in range(n):
            train_step(setup, *train_batches[s % len(train_batches)])

    def eval_window(n: int = steps) -> None:
        setup.task.eval()
        for s in range(n):
            eval_step(setup, eval_batches[s % len(eval_batches)][0])

    train_window(warmup)
    eval_window(warmup)
    synchronize(device)
    flops = {
        "train": count_flops(lambda: train_window(1)),
        "eval": count_flops(lambda: eval_window(1)),
    }
    rates = interleaved(
        {"train": train_window, "eval": eval_window},
        {"train": steps * batch_size, "eval": steps * eval_batch_size},
        repeats,
        device,
    )
    return rates, flops
