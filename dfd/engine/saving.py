"""Callbacks that write files: the selected checkpoint and the resume state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from accelerate import Accelerator

from dfd.engine.callbacks import Callback, EarlyStopping, RunState
from dfd.engine.checkpoint import save_checkpoint
from dfd.engine.resume import comparable_config, write_resume_state, write_rng_state


class BestCheckpoint(Callback):
    """Writes ``<run>/checkpoint`` whenever validation improves (main process only)."""

    def __init__(self, folder: Path, overrides: Sequence[str] | None) -> None:
        self.folder, self.overrides = folder, overrides

    def on_validation_end(self, run: RunState, metrics: Mapping[str, float]) -> None:
        if not (run.improved and run.is_main_process):
            return
        meta = {"epoch": run.epoch, "steps": run.step, "monitor": run.monitor, "val": dict(metrics)}
        # what the weights were trained and selected on (sets, counts, face pipeline of their
        # crops): a model card or an export reads it from the checkpoint alone
        meta["data"] = {k: v for k, v in run.params.items() if k.startswith("data/")}
        save_checkpoint(self.folder, run.best_state, run.cfg, self.overrides, meta)


class ResumeStateWriter(Callback):
    """Writes ``<run>/resume`` after every validation and every `every_steps` optimizer steps.

    Every process writes its own RNG states; after a barrier the main process writes the
    tensors and then ``state.json``. At the end of training the state is marked finished,
    so ``trainer.resume=auto`` does not pick the run again.
    """

    def __init__(self, run_dir: Path, accelerator: Accelerator, every_steps: int | None) -> None:
        self.run_dir, self.acc, self.every_steps = run_dir, accelerator, every_steps
        self.generation = 0

    def on_validation_end(self, run: RunState, metrics: Mapping[str, float]) -> None:
        self._write(run)

    def on_train_batch_end(self, run: RunState) -> None:
        if self.every_steps and run.step % self.every_steps == 0:
            self._write(run)

    def on_test_end(self, run: RunState, results) -> None:
        self._write(run, finished=True)

    def _write(self, run: RunState, finished: bool = False) -> None:
        snap = run.snapshot()
        self.generation += 1
        write_rng_state(self.run_dir, self.generation, self.acc.process_index)
        self.acc.wait_for_everyone()
        if run.is_main_process:
            info = {**snap["info"], "config": comparable_config(run.cfg), "finished": finished}
            write_resume_state(
                self.run_dir,
                self.generation,
                info,
                snap["weights"],
                snap["best_weights"],
                snap["optimizer"],
            )
        self.acc.wait_for_everyone()


def run_files(
    out_dir: Path, accelerator: Accelerator, trainer_cfg, overrides: Sequence[str]
) -> list[Callback]:
    """What a training run writes as it goes: the selected checkpoint, the resume state
    (every `trainer.resume_every_steps`) and, with `trainer.early_stop_patience`, early
    stopping."""
    patience = trainer_cfg.early_stop_patience
    return [
        BestCheckpoint(out_dir / "checkpoint", overrides),
        ResumeStateWriter(out_dir, accelerator, trainer_cfg.resume_every_steps),
        *([EarlyStopping(patience)] if patience else []),
    ]
