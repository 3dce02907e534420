"""The one seam through which anything watches or steers a training run.

Tracking, the best checkpoint, the resume state, a sweep's pruner and early stopping are
callbacks (as in Lightning and lightning-hydra-template): the loop calls them at fixed
points and knows nothing of MLflow, Optuna or files. Every method is optional.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from dfd.runtime.run_info import command_overrides

Results = dict[str, Any]
"""One shape for train(), dfd.evaluate and metrics.json:
``{"best_epoch": int, "val": {metric: v}, "test": {target: {metric: v}}, "mean": {metric: v}}``
(dfd.evaluate has no ``best_epoch`` and ``val``)."""


class RunStopped(Exception):
    """Raised by a callback to stop a run on purpose (a pruned sweep trial).

    The run ends KILLED in MLflow, with tag ``dfd.stopped`` holding the message: it did not
    fail, and its checkpoints stay valid.
    """


@dataclass
class RunState:
    """What callbacks see of a run; the loop updates it, callbacks may read it at any point.

    ``step`` counts optimizer steps over the whole run, ``epoch`` the epoch that just
    ended (0 = before training). ``stop_training`` set by a callback ends training after
    the current epoch, normally (early stopping); the best epoch is still the one selected.
    """

    cfg: DictConfig
    output_dir: Path
    is_main_process: bool = True
    epoch: int = 0
    step: int = 0
    total_steps: int = 0
    monitor: str = "video_auc"
    best_epoch: int | None = None
    best_value: float | None = None
    best_val: dict[str, float] = field(default_factory=dict)
    improved: bool = False
    run_id: str | None = None
    resumed: bool = False
    stop_training: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    # the selected (best so far) trainable tensors, canonical keys: what checkpoints hold
    best_state: dict[str, Any] = field(default_factory=dict)
    # per-frame target scores of the finished run, {target: table}, for reporting callbacks
    predictions: dict[str, Any] = field(default_factory=dict)
    # a callable returning the resume state of this moment (set by the trainer)
    snapshot: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of_training(
        cls, cfg: DictConfig, output_dir: Path, main: bool, resume, params: dict[str, Any]
    ) -> RunState:
        """A training run's state: `trainer.monitor`, a resumed run's id (`resume`, a
        `dfd.engine.resume.ResumeState` or None), the command's overrides and `params`."""
        return cls(
            cfg=cfg,
            output_dir=output_dir,
            is_main_process=main,
            monitor=cfg.trainer.monitor,
            run_id=resume.info["run_id"] if resume else None,
            resumed=resume is not None,
            extra={"overrides": command_overrides(cfg)},
            params=params,
        )


class Callback:
    """Base class: override the hooks you need. Hooks run on every process; check
    ``run.is_main_process`` before writing files or talking to a server."""

    def on_fit_start(self, run: RunState) -> None:
        """Before the first validation; ``run.params`` holds the run's counts."""

    def on_train_epoch_end(self, run: RunState, metrics: Mapping[str, float]) -> None:
        """After epoch ``run.epoch``'s optimizer steps; ``metrics`` are its train stats."""

    def on_train_steps(self, run: RunState, metrics: Mapping[str, float]) -> None:
        """Every ``trainer.log_every_steps`` optimizer steps, with the recent mean loss."""

    def on_train_batch_end(self, run: RunState) -> None:
        """After every optimizer step (``run.step`` just advanced)."""

    def on_validation_end(self, run: RunState, metrics: Mapping[str, float]) -> None:
        """After the source validation of ``run.epoch``; ``run.improved`` says whether it is
        the best so far (``run.best_*`` already updated)."""

    def on_fit_end(self, run: RunState) -> None:
        """After the last epoch; ``run.best_epoch`` is the selected one."""

    def on_test_end(self, run: RunState, results: Results) -> None:
        """After every target was scored with the selected weights."""

    def on_exception(self, run: RunState, error: BaseException) -> None:
        """The run raised (or was interrupted); the error is re-raised afterwards."""

    def teardown(self, run: RunState) -> None:
        """Always last, after success or failure."""


class CallbackList(Callback):
    """Calls each callback in order. A failing hook in ``on_exception``/``teardown`` does not
    stop the others from running (the original error matters more)."""

    def __init__(self, callbacks: Iterable[Callback]) -> None:
        self.callbacks = list(callbacks)

    def on_fit_start(self, run: RunState) -> None:
        for cb in self.callbacks:
            cb.on_fit_start(run)

    def on_train_epoch_end(self, run: RunState, metrics: Mapping[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_train_epoch_end(run, metrics)

    def on_train_steps(self, run: RunState, metrics: Mapping[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_train_steps(run, metrics)

    def on_train_batch_end(self, run: RunState) -> None:
        for cb in self.callbacks:
            cb.on_train_batch_end(run)

    def on_validation_end(self, run: RunState, metrics: Mapping[str, float]) -> None:
        for cb in self.callbacks:
            cb.on_validation_end(run, metrics)

    def on_fit_end(self, run: RunState) -> None:
        for cb in self.callbacks:
            cb.on_fit_end(run)

    def on_test_end(self, run: RunState, results: Results) -> None:
        for cb in self.callbacks:
            cb.on_test_end(run, results)

    def on_exception(self, run: RunState, error: BaseException) -> None:
        for cb in self.callbacks:
            _guarded(cb.on_exception, run, error)

    def teardown(self, run: RunState) -> None:
        for cb in self.callbacks:
            _guarded(cb.teardown, run)


def _guarded(hook, *args) -> None:
    try:
        hook(*args)
    except Exception as err:  # noqa: BLE001  (cleanup must reach every callback)
        warnings.warn(f"{type(hook.__self__).__name__}.{hook.__name__} failed: {err}", stacklevel=2)


@contextlib.contextmanager
def watched(callbacks: Callback, run: RunState) -> Iterator[None]:
    """Run a block under `callbacks`: ``on_exception`` on any error (then re-raised, Ctrl-C
    and SIGTERM included), ``teardown`` always."""
    try:
        yield
    except BaseException as err:
        callbacks.on_exception(run, err)
        raise
    finally:
        callbacks.teardown(run)


class EarlyStopping(Callback):
    """Stop training when the source-validation metric has not improved for ``patience`` epochs."""

    def __init__(self, patience: int) -> None:
        if patience < 1:
            raise ValueError(f"trainer.early_stop_patience={patience} must be at least 1")
        self.patience = patience

    def on_validation_end(self, run: RunState, metrics: Mapping[str, float]) -> None:
        if run.best_epoch is not None and run.epoch - run.best_epoch >= self.patience:
            run.stop_training = True
