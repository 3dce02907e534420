"""The training loop: Accelerate, AdamW + cosine, selection on the source validation split.

The best epoch is chosen by the source domain's validation metric (video-level AUC by
default), never by a target dataset; its trainable tensors are kept in memory on every
process (so targets are scored with them without a file round trip) and written to disk
by the main process as soon as they become the best.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from dfd.engine.checkpoint import save_checkpoint, trainable_state
from dfd.engine.inference import evaluate
from dfd.models.detector import Detector
from dfd.tracking import Tracker


@dataclass
class FitResult:
    """What training selected: the epoch (0 = untrained), its validation metrics and weights."""

    best_epoch: int
    best_val: dict[str, float]
    best_state: dict[str, torch.Tensor]


@dataclass
class Trainer:
    """Runs epochs of training and validation on prepared model, optimizer and loaders."""

    accelerator: Accelerator
    model: Detector
    objective: Callable
    optimizer: torch.optim.Optimizer
    scheduler_factory: Callable
    train_loader: DataLoader
    val_loader: DataLoader
    max_epochs: int
    max_steps: int | None
    monitor: str
    tracker: Tracker
    checkpoint_dir: Path
    cfg: DictConfig

    def fit(self) -> FitResult:
        acc = self.accelerator
        steps_per_epoch = math.ceil(len(self.train_loader) / acc.gradient_accumulation_steps)
        total_steps = self.max_epochs * steps_per_epoch
        if self.max_steps is not None:
            total_steps = min(total_steps, self.max_steps)
        # stepped once per optimizer step, here rather than by Accelerate, whose prepared
        # scheduler advances num_processes times per step
        scheduler = self.scheduler_factory(self.optimizer, T_max=max(total_steps, 1))

        result = self._validate(epoch=0, best=None, steps=0)
        steps = 0
        for epoch in range(1, self.max_epochs + 1):
            if steps >= total_steps:
                break
            train_stats, steps = self._train_epoch(epoch, scheduler, steps, total_steps)
            self.tracker.log_metrics({f"train/{k}": v for k, v in train_stats.items()}, step=epoch)
            result = self._validate(epoch, result, steps)
        return result

    def _train_epoch(
        self, epoch: int, scheduler, steps: int, total_steps: int
    ) -> tuple[dict[str, float], int]:
        acc, model = self.accelerator, self.model
        model.train()
        self.train_loader.dataset.set_epoch(epoch)
        if hasattr(self.train_loader, "set_epoch"):
            self.train_loader.set_epoch(epoch)
        head = acc.unwrap_model(model).head
        sums: dict[str, float] = defaultdict(float)
        batches = 0
        bar = tqdm(
            self.train_loader,
            desc=f"epoch {epoch}/{self.max_epochs}",
            disable=not acc.is_local_main_process,
        )
        for batch in bar:
            with acc.accumulate(model), acc.autocast():
                features = model(batch["pixel_values"])  # (B, D)
                out = self.objective(features, batch["label"], head)
                acc.backward(out["loss"])
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            if acc.sync_gradients:
                scheduler.step()
                steps += 1
            loss = out["loss"].detach().float().item()
            if not math.isfinite(loss):
                raise FloatingPointError(
                    f"training loss became {loss} at epoch {epoch}, step {steps}"
                )
            sums["loss"] += loss
            for k, v in out["terms"].items():
                sums[k] += float(v)
            batches += 1
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            if steps >= total_steps:
                break
        stats = {k: v / max(batches, 1) for k, v in sums.items()}
        stats["lr"] = scheduler.get_last_lr()[0]
        return stats, steps

    def _validate(self, epoch: int, best: FitResult | None, steps: int) -> FitResult:
        acc = self.accelerator
        metrics, _ = evaluate(
            self.model, self.val_loader.dataset, self.val_loader, acc, desc=f"val {epoch}"
        )
        self.tracker.log_metrics({f"val/{k}": v for k, v in metrics.items()}, step=epoch)
        value = metrics[self.monitor]
        improved = best is None or (
            not math.isnan(value)
            and (math.isnan(best.best_val[self.monitor]) or value > best.best_val[self.monitor])
        )
        if acc.is_main_process:
            tqdm.write(
                f"epoch {epoch}: val {self.monitor} = {value:.4f}"
                + ("  (best)" if improved else "")
            )
        if not improved:
            return best
        state = trainable_state(acc.unwrap_model(self.model))
        if acc.is_main_process:
            meta = {"epoch": epoch, "steps": steps, "monitor": self.monitor, "val": metrics}
            save_checkpoint(self.checkpoint_dir, state, self.cfg, None, meta)
        return FitResult(epoch, metrics, state)
