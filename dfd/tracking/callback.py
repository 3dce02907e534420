"""Tracking as a callback: what the training loop and evaluation report, sent to MLflow.

Params at fit start, train/val metrics per epoch, target metrics, the results table, plots,
predictions and the checkpoint at the end; the run's status on every exit (FINISHED, FAILED,
KILLED). Only the main process talks to MLflow.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Mapping
from pathlib import Path

from omegaconf import OmegaConf

from dfd.engine.callbacks import Callback, Results, RunState, RunStopped
from dfd.report.plots import plot_results
from dfd.report.results import write_results_table
from dfd.report.tables import LEAKY_MARK
from dfd.runtime.run_info import run_name, run_tags
from dfd.tracking.pending import PENDING_FILE
from dfd.tracking.tracker import Tracker, _raise_interrupt, flatten


def level_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """The measurements, each under its level's name (``frame_*``, ``video_*``): what MLflow
    charts. Counts are params; nothing is logged under a second, unlevelled name."""
    return {k: v for k, v in metrics.items() if k.startswith(("frame_", "video_"))}


def counts(metrics: Mapping[str, float]) -> dict[str, int]:
    return {k: int(v) for k, v in metrics.items() if k.startswith("n_")}


class MLflowCallback(Callback):
    """Tracking as a callback: params at fit start, train/val metrics per epoch, target
    metrics, plots, predictions and the checkpoint at the end; status on every exit."""

    def __init__(self, tracker: Tracker, plots_dir: Path | None = None) -> None:
        self.tracker = tracker
        self.plots_dir = plots_dir
        self.status = "FINISHED"
        self._previous_sigterm = None

    def on_fit_start(self, run: RunState) -> None:
        t = self.tracker
        t.enabled = t.enabled and run.is_main_process
        if not t.enabled:
            return
        resumed_id = run.run_id
        # what a lost server cannot take waits in the run folder (dfd.tracking.pending)
        t.journal = Path(run.output_dir) / PENDING_FILE
        overrides = list(run.extra.get("overrides") or [])
        if t.run_name is None:
            # from what the command changed, never from MLflow's RNG (seeded by the run)
            t.run_name = run_name(overrides)
        run.run_id = t.start(
            run_id=resumed_id,
            tags={
                **(run_tags(run.cfg, overrides) if "trainer" in run.cfg else {}),
                "dfd.host": socket.gethostname(),
                "dfd.pid": str(os.getpid()),
                "dfd.run_dir": str(run.output_dir),
                **({"dfd.resumed": "true"} if resumed_id else {}),
            },
        )
        self._previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
        if not resumed_id:
            t.log_params(flatten(OmegaConf.to_container(run.cfg, resolve=True)))
            t.log_params(run.params)

    def on_train_steps(self, run: RunState, metrics: Mapping[str, float]) -> None:
        self.tracker.log_metrics(metrics, step=run.step)

    def on_train_epoch_end(self, run: RunState, metrics: Mapping[str, float]) -> None:
        self.tracker.log_metrics({f"train/{k}": v for k, v in metrics.items()}, step=run.epoch)

    def on_validation_end(self, run: RunState, metrics: Mapping[str, float]) -> None:
        self.tracker.log_metrics(
            {f"val/{k}": v for k, v in level_metrics(metrics).items()}, step=run.epoch
        )

    def on_fit_end(self, run: RunState) -> None:
        if self.tracker.enabled and run.best_epoch is not None:
            self.tracker.log_params({"selected_epoch": run.best_epoch})

    def on_test_end(self, run: RunState, results: Results) -> None:
        t = self.tracker
        if not t.enabled:
            return
        for name, metrics in results["test"].items():
            t.log_metrics({f"test/{name}/{k}": v for k, v in level_metrics(metrics).items()})
            t.log_params({f"test/{name}/{k}": v for k, v in counts(metrics).items()})
        t.log_metrics({f"test/mean/{k}": v for k, v in results["mean"].items()})
        # every target's videos together, kept apart per target: the mixed-domain figure
        pooled = results.get("pooled") or {}
        t.log_metrics({f"test/pooled/{k}": v for k, v in level_metrics(pooled).items()})
        t.log_params({f"test/pooled/{k}": v for k, v in counts(pooled).items()})
        t.log_params(
            {f"data/{k}/skipped/unreadable": n for k, n in run.extra.get("unreadable", {}).items()}
        )
        folder = run.output_dir
        self._results_table(results, folder / "results")
        for sub in ("predictions", "results"):
            if (folder / sub).is_dir():
                t.log_artifact(folder / sub, sub)
        if t.log_plots and run.predictions:
            aggregate = run.cfg.get("eval", {}).get("aggregate", "mean")
            for path in plot_results(run.predictions, results, folder / "plots", aggregate):
                t.log_artifact(path, "plots")
        if (folder / "checkpoint").is_dir():
            t.log_artifact(folder / "checkpoint", "checkpoint")

    def _results_table(self, results: Results, folder: Path) -> None:
        """results.md / results.csv (one row per target plus the mean) and the same table as
        the run's description, so one click shows the cross-dataset row."""
        markdown = write_results_table(results, folder)
        selection = (results.get("protocol") or {}).get("selection") or {}
        rule = f"{selection.get('rule', 'source_val')} ({', '.join(selection.get('sets') or ['data.val'])})"
        leaky = f"{LEAKY_MARK} LEAKY: selected on a test target. " if selection.get("leaky") else ""
        selected = (
            f"{leaky}selected epoch {results['best_epoch']} on {rule}. "
            if "best_epoch" in results
            else leaky
        )
        self.tracker.set_tags(
            {"mlflow.note.content": f"{selected}Video-level results:\n\n{markdown}"}
        )

    def on_exception(self, run: RunState, error: BaseException) -> None:
        if not self.tracker.run_id:
            return
        if isinstance(error, KeyboardInterrupt | RunStopped):
            self.status = "KILLED"
            if isinstance(error, RunStopped):
                self.tracker.set_tags({"dfd.stopped": str(error)[:5000]})
        else:
            self.status = "FAILED"
            self.tracker.set_tags({"dfd.error": f"{type(error).__name__}: {error}"[:5000]})

    def teardown(self, run: RunState) -> None:
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
        self.tracker.end(self.status)
