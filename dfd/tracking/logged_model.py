"""The selected detector as an MLflow model of its run (`dfd.export.mlflow_model`).

At the end of training (and of `dfd.evaluate` with ``log_model=true``), after the target
metrics were logged, the checkpoint is logged as a pyfunc model linked to the run and to those
metrics, so the MLflow UI lists it with its cross-dataset AUCs and it can be registered and
served. ``tracking.log_model`` says what the artifact holds (``checkpoint``, ``full``) or
turns it off (``none``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from mlflow.exceptions import MlflowException

from dfd.engine.callbacks import Callback, Results, RunState
from dfd.export.mlflow_model import check_form, log_detector_model
from dfd.runtime.errors import UserError
from dfd.tracking.tracker import Tracker


class LoggedModelCallback(Callback):
    """Logs ``checkpoint`` as an MLflow model when the targets have been scored.

    Runs after `MLflowCallback` (whose target metrics the model links to). A model that cannot
    be logged (the tracking server went away, an encoder ``full`` cannot embed) does not undo
    the run: it is a warning and the run's tag ``dfd.logged_model_error``.
    """

    def __init__(self, tracker: Tracker, checkpoint: Path, form: str | None = None) -> None:
        self.tracker = tracker
        self.checkpoint = Path(checkpoint)
        self.form = check_form(form or getattr(tracker, "log_model", "checkpoint"))
        self.info = None

    def on_test_end(self, run: RunState, results: Results) -> None:
        t = self.tracker
        if not (t.enabled and t.run_id and run.is_main_process) or self.form == "none":
            return
        if not self.checkpoint.is_dir():
            return
        try:
            self.info = log_detector_model(
                self.checkpoint,
                self.form,
                example=_first_scored_frame(run),
                selected_epoch=results.get("best_epoch"),
            )
        except (MlflowException, OSError, UserError) as err:
            message = f"the detector was not logged as an MLflow model: {err}"
            warnings.warn(message, stacklevel=2)
            t.set_tags({"dfd.logged_model_error": message[:5000]})
            return
        t.set_tags({"dfd.logged_model": self.info.model_uri})


def _first_scored_frame(run: RunState) -> Path | None:
    """A crop the run scored (the input example), from the first target's predictions."""
    for table in run.predictions.values():
        if getattr(table, "num_rows", 0) and "path" in table.column_names:
            return Path(str(table.column("path")[0]))
    return None


def model_callbacks(tracker: Tracker, checkpoint: Path, requested: bool) -> list[Callback]:
    """`dfd.evaluate`'s: a `LoggedModelCallback` when ``log_model=true`` was asked for."""
    if not requested:
        return []
    form = getattr(tracker, "log_model", "checkpoint")
    if form == "none" or not tracker.enabled:
        raise UserError(
            f"log_model=true needs tracking (tracking=mlflow) and tracking.log_model=checkpoint "
            f"or full (it is {form!r}{'' if tracker.enabled else ', tracking is off'})"
        )
    return [LoggedModelCallback(tracker, checkpoint, form)]
