"""The training loop: Accelerate, AdamW + cosine, selection on the run's selection set.

The best epoch is chosen by the selection set's metric (video-level AUC by default); that set
is the source domain's validation split unless the run's `selection` names another (pooled
held-out sets, or a test target, which is marked leaky). An epoch is the new best when its
value is greater than the best so far (a tie keeps the earlier epoch; NaN never wins, but a
NaN best is replaced by any number). Epoch 0 (before training) is validated and, unless
`trainer.select_epoch_0=false` (the authors' Lightning selection, which only sees trained
epochs), a candidate. The best weights stay
in memory on every process so targets are scored with them without a file round trip.
Everything that watches the run (tracking, checkpoint files, resume state, pruning, early
stopping) is a callback.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
from accelerate import Accelerator, skip_first_batches
from accelerate.utils import gather_object
from hydra.utils import instantiate
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from dfd.data.loading import set_loader_epoch
from dfd.engine.callbacks import Callback, RunState
from dfd.engine.checkpoint import load_trainable, trainable_state
from dfd.engine.optim import build_optimizer
from dfd.engine.resume import (
    ResumeError,
    ResumeState,
    optimizer_state_dict,
    optimizer_tensors,
    set_rng_state,
)
from dfd.engine.task import DetectionTask
from dfd.runtime.errors import UserError, config_flag
from dfd.runtime.progress import progress
from dfd.scoring.inference import evaluate
from dfd.scoring.targets import allow_nonfinite


def is_improvement(value: float, best: float | None) -> bool:
    """The selection rule: strictly greater than the best so far; NaN never improves, and
    any number improves on a NaN (or absent) best."""
    if math.isnan(value):
        return best is None
    return best is None or math.isnan(best) or value > best


@dataclass(kw_only=True)
class EpochProgress:
    """Where the current epoch stands: what a mid-epoch resume state records."""

    epoch: int = 1
    batches: int = 0  # training batches consumed in this epoch (all accumulation steps)
    sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))


@dataclass(kw_only=True)
class Trainer:
    """Runs epochs of training and validation on a prepared task, optimizer and loaders.

    `train_loader` is the prepared loader and `epoch_loader` the one `make_loader` built
    (it owns the per-epoch shuffling that the prepared copy shares).
    """

    accelerator: Accelerator
    task: DetectionTask
    optimizer: torch.optim.Optimizer
    scheduler: Any
    train_loader: DataLoader
    epoch_loader: DataLoader
    val_loader: DataLoader
    max_epochs: int
    total_steps: int
    callbacks: Callback
    run: RunState
    log_every_steps: int = 50
    aggregate: str = "mean"  # video score from frame scores: mean | median
    allow_nonfinite: bool = False  # a NaN score leaves its frame out instead of stopping
    select_epoch_0: bool = True  # the untrained model (epoch 0) competes in selection
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)
    position: EpochProgress = field(default_factory=EpochProgress)
    unreadable: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))

    @classmethod
    def prepare(
        cls,
        accelerator: Accelerator,
        task: DetectionTask,
        train_loader: DataLoader,
        val_loader: DataLoader,
        callbacks: Callback,
        run: RunState,
    ) -> Trainer:
        """A trainer for `task` under the run config's `trainer` group: AdamW (no decay on
        the parameters `trainer.no_decay` names) and the cosine schedule over every optimizer
        step of the run, the task compiled if asked, task, optimizer and loaders prepared by
        Accelerate; validation scores videos by `eval.aggregate`."""
        t = run.cfg.trainer
        optimizer = build_optimizer(task, instantiate(t.optimizer), t.weight_decay, t.no_decay)
        if t.compile:
            task = torch.compile(task)
        task, optimizer, prepared_train, prepared_val = accelerator.prepare(
            task, optimizer, train_loader, val_loader
        )
        total_steps = t.max_epochs * math.ceil(
            len(prepared_train) / accelerator.gradient_accumulation_steps
        )
        if t.max_steps is not None:
            total_steps = min(total_steps, t.max_steps)
        select_epoch_0 = config_flag(t, "select_epoch_0") if "select_epoch_0" in t else True
        if not select_epoch_0 and total_steps < 1:
            raise UserError(
                f"trainer.select_epoch_0=false with no training step (trainer.max_epochs="
                f"{t.max_epochs}, trainer.max_steps={t.max_steps}): nothing could be selected; "
                f"train at least one step or set trainer.select_epoch_0=true"
            )
        # stepped once per optimizer step, here rather than by Accelerate, whose prepared
        # scheduler advances num_processes times per step
        scheduler = instantiate(t.scheduler)(optimizer, T_max=max(total_steps, 1))
        trainer = cls(
            accelerator=accelerator,
            task=task,
            optimizer=optimizer,
            scheduler=scheduler,
            train_loader=prepared_train,
            epoch_loader=train_loader,
            val_loader=prepared_val,
            max_epochs=t.max_epochs,
            total_steps=total_steps,
            callbacks=callbacks,
            run=run,
            log_every_steps=t.log_every_steps,
            aggregate=run.cfg.eval.aggregate,
            allow_nonfinite=allow_nonfinite(run.cfg.eval),
            select_epoch_0=select_epoch_0,
        )
        run.snapshot = trainer.snapshot
        return trainer

    @property
    def detector(self):
        return self.accelerator.unwrap_model(self.task).detector

    def load_best(self) -> None:
        """Put the selected epoch's weights (the best source-validation value) in the model."""
        load_trainable(
            self.detector, self.best_state, source=f"epoch {self.run.best_epoch} weights"
        )

    def unreadable_counts(self) -> dict[str, int]:
        """Frames that could not be read (``data.on_error=skip``): training frames counted
        over every process, validation frames (scored on every process) once."""
        train = set().union(*gather_object([self.unreadable["train"]]))
        return {"train": len(train), "val": len(self.unreadable["val"])}

    def fit(self, resume: ResumeState | None = None) -> None:
        """Train and validate until `max_epochs` or `total_steps`; select the best epoch."""
        run = self.run
        if resume is None:
            self._validate()
        else:
            self._restore(resume)
        while run.step < self.total_steps and self.position.epoch <= self.max_epochs:
            stats = self._train_epoch()
            run.epoch = self.position.epoch
            self.callbacks.on_train_epoch_end(run, stats)
            self._validate()
            self.position = EpochProgress(epoch=run.epoch + 1)
            if run.stop_training:
                break
        self.callbacks.on_fit_end(run)

    def _train_epoch(self) -> dict[str, float]:
        acc, run, prog = self.accelerator, self.run, self.position
        self.task.train()
        set_loader_epoch(self.epoch_loader, prog.epoch)
        loader = self.train_loader
        if prog.batches:
            # a mid-epoch resume: the epoch's order is a function of (seed, epoch) only
            loader = skip_first_batches(loader, prog.batches)
        if hasattr(loader, "set_epoch"):
            # Accelerate's loader re-applies its own iteration counter as the epoch on every
            # pass; setting it makes that counter the real epoch, also after a resume
            loader.set_epoch(prog.epoch)
        running = torch.zeros((), device=acc.device)  # summed on device: no host sync per step
        since_log = 0
        bar = progress(
            loader,
            desc=f"epoch {prog.epoch}/{self.max_epochs}",
            total=len(self.train_loader),
            initial=prog.batches,
            disable=not acc.is_local_main_process,
        )
        for batch in bar:
            # checked before a batch, not after one: the bar then counts the last batch
            if run.step >= self.total_steps:
                break
            self._note_unreadable("train", batch)
            if batch["pixel_values"].shape[0] == 0:
                # every frame of the batch was unreadable (data.on_error=skip): nothing to learn
                prog.batches += 1
                continue
            with acc.accumulate(self.task), acc.autocast():
                out = self.task(batch["pixel_values"], batch["label"])
                acc.backward(out["loss"])
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            prog.batches += 1
            loss = out["loss"].detach().float()
            running += loss
            since_log += 1
            for k, v in (("loss", loss), *out["terms"].items()):
                prog.sums[k] = prog.sums[k] + v.detach().float()
            if acc.sync_gradients:
                self.scheduler.step()
                run.step += 1
                if run.step % self.log_every_steps == 0:
                    mean = self._finite(running / since_log, "training loss")
                    bar.set_postfix(loss=f"{mean:.4f}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}")
                    self.callbacks.on_train_steps(
                        run, {"train/step_loss": mean, "train/lr": self.scheduler.get_last_lr()[0]}
                    )
                    running.zero_()
                    since_log = 0
                self.callbacks.on_train_batch_end(run)
        stats = {k: self._finite(v / max(prog.batches, 1), k) for k, v in prog.sums.items()}
        stats["lr"] = self.scheduler.get_last_lr()[0]
        return stats

    def _finite(self, value, what: str) -> float:
        value = float(value)
        if not math.isfinite(value):
            raise FloatingPointError(
                f"{what} became {value} in epoch {self.position.epoch} (step {self.run.step}): "
                f"lower trainer.optimizer.lr or check the data"
            )
        return value

    def _validate(self) -> None:
        acc, run = self.accelerator, self.run
        metrics, _, unreadable = evaluate(
            self.task,
            self.val_loader,
            acc,
            desc=f"val {run.epoch}",
            aggregate=self.aggregate,
            allow_nonfinite=self.allow_nonfinite,
        )
        self.unreadable["val"].update(unreadable)
        value = metrics[run.monitor]
        candidate = run.epoch > 0 or self.select_epoch_0
        run.improved = candidate and is_improvement(value, run.best_value)
        if run.improved:
            run.best_epoch, run.best_value, run.best_val = run.epoch, value, dict(metrics)
            self.best_state = trainable_state(self.detector)
            run.best_state = self.best_state
        if acc.is_main_process:
            tqdm.write(
                f"epoch {run.epoch}: val {run.monitor} = {value:.4f}"
                + ("  (best)" if run.improved else "")
            )
        self.callbacks.on_validation_end(run, metrics)

    def _note_unreadable(self, role: str, batch: dict) -> None:
        rows = batch.get("unreadable")
        if rows is not None and len(rows):
            self.unreadable[role].update(int(i) for i in rows.tolist())

    # ---- resume -------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """What the resume state of this moment holds (tensors and JSON-ready info)."""
        run, prog = self.run, self.position
        opt_tensors, opt_rest = optimizer_tensors(self.optimizer)
        mid_epoch = 0 < prog.batches < len(self.train_loader) and run.step < self.total_steps
        info = {
            "epoch": run.epoch,
            "step": run.step,
            "next_epoch": prog.epoch if mid_epoch else run.epoch + 1,
            "batches_in_epoch": prog.batches if mid_epoch else 0,
            "sums": {k: float(v) for k, v in prog.sums.items()} if mid_epoch else {},
            "best_epoch": run.best_epoch,
            "best_value": run.best_value,
            "best_val": run.best_val,
            "scheduler": self.scheduler.state_dict(),
            "optimizer": opt_rest,
            "unreadable": {k: sorted(v) for k, v in self.unreadable.items()},
            "run_id": run.run_id,
            "world_size": self.accelerator.num_processes,
        }
        return {
            "info": info,
            "weights": trainable_state(self.detector),
            "best_weights": self.best_state,
            "optimizer": opt_tensors,
        }

    def _restore(self, state: ResumeState) -> None:
        info, run = state.info, self.run
        if info["world_size"] != self.accelerator.num_processes:
            raise ResumeError(
                f"trainer.resume={state.run_dir}: the run was saved by {info['world_size']} "
                f"process(es); resume it with the same number ({self.accelerator.num_processes} now)"
            )
        load_trainable(self.detector, state.weights, source=f"{state.run_dir} resume state")
        self.optimizer.load_state_dict(optimizer_state_dict(state.optimizer, info["optimizer"]))
        self.scheduler.load_state_dict(info["scheduler"])
        self.best_state = dict(state.best_weights)
        run.best_state = self.best_state
        run.epoch, run.step = info["epoch"], info["step"]
        run.best_epoch, run.best_value = info["best_epoch"], info["best_value"]
        run.best_val = dict(info["best_val"])
        for role, rows in info["unreadable"].items():
            self.unreadable[role].update(rows)
        self.position = EpochProgress(epoch=info["next_epoch"], batches=info["batches_in_epoch"])
        for k, v in info["sums"].items():
            self.position.sums[k] = torch.tensor(v, device=self.accelerator.device)
        # last: the RNG streams continue exactly where the interrupted run left them
        set_rng_state(state.rng(self.accelerator.process_index))
