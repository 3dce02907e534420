"""What a sweep leaves behind: the trials table, its plots and the parent run's summary.

Every table and plot puts the SOURCE validation metric that drove the search beside the mean
target video AUC, which is recorded for reporting only (see `dfd.sweeping`).
"""

from __future__ import annotations

import csv
import logging
import math
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: sweep machines have no display
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from dfd.tracking import Tracker  # noqa: E402

log = logging.getLogger(__name__)


def trials_table(study: optuna.Study, monitor: str) -> list[dict[str, Any]]:
    """One row per trial: state, the source-val value that drove the search, the mean target
    video AUC beside it (reported, never optimized), params, reason and the MLflow run id."""
    names: dict[str, None] = {}
    targets: dict[str, None] = {}
    trials = study.get_trials(deepcopy=False)
    for t in trials:
        names.update(dict.fromkeys(t.params))
        targets.update(dict.fromkeys(k for k in t.user_attrs if k.startswith("test/")))
    targets.pop("test/mean/video_auc", None)
    rows = []
    for t in trials:
        duration = t.duration.total_seconds() if t.duration else None
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                # a pruned trial's Optuna value is its last epoch's, not a selected one: blank
                f"val/{monitor}": t.value if t.state == TrialState.COMPLETE else None,
                "test/mean/video_auc": t.user_attrs.get("test/mean/video_auc"),
                **{n: t.params.get(n) for n in names},
                **{k: t.user_attrs.get(k) for k in targets},
                "best_epoch": t.user_attrs.get("best_epoch"),
                "duration_s": round(duration, 1) if duration is not None else None,
                "duplicate_of": t.user_attrs.get("duplicate_of"),
                "reason": t.user_attrs.get("reason"),
                "mlflow_run_id": t.user_attrs.get("mlflow_run_id"),
            }
        )
    return rows


def format_table(rows: Sequence[Mapping[str, Any]], width: int = 60) -> str:
    """Rows as fixed-width text for the console (floats to 4 decimals, long cells cut)."""
    if not rows:
        return "(no trials)"
    skip = {"mlflow_run_id"} | {
        k for k in rows[0] if k.startswith("test/") and k != "test/mean/video_auc"
    }
    keys = [k for k in rows[0] if k not in skip]

    def cell(v: Any) -> str:
        text = "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
        return text if len(text) <= width else text[: width - 3] + "..."

    cells = [[cell(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def plot_study(study: optuna.Study, monitor: str, plots_dir: Path) -> list[Path]:
    """Optimization history, parameter importances and source val vs mean target AUC (PNGs).

    Importances come from Optuna's default evaluator (PED-ANOVA in Optuna 5), which warns
    when there are too few trials for them to mean much; a plot Optuna cannot draw is skipped
    with a warning.
    """
    plots_dir.mkdir(parents=True, exist_ok=True)
    target = f"val {monitor}"
    written = []
    vis = optuna.visualization.matplotlib
    # Optuna's plots switch the global matplotlib style: keep that to these figures
    with warnings.catch_warnings(), plt.rc_context():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for name, draw in [
            (
                "optimization_history",
                lambda: vis.plot_optimization_history(study, target_name=target),
            ),
            ("param_importances", lambda: vis.plot_param_importances(study, target_name=target)),
        ]:
            try:
                ax = draw()
            except (ValueError, RuntimeError, ZeroDivisionError) as err:
                log.warning("plot %s skipped: %s", name, err)
                continue
            written.append(_save(ax.figure, plots_dir / f"{name}.png"))
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if "test/mean/video_auc" in t.user_attrs
    ]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for t in done:
        ax.scatter(t.value, t.user_attrs["test/mean/video_auc"], color="tab:blue")
        ax.annotate(
            str(t.number),
            (t.value, t.user_attrs["test/mean/video_auc"]),
            xytext=(4, 4),
            textcoords="offset points",
            fontsize=8,
        )
    ax.set(
        xlabel=f"source val {monitor} (optimized)",
        ylabel="mean target video AUC (reported only)",
        title="does source validation predict transfer?",
    )
    written.append(_save(fig, plots_dir / "val_vs_target.png"))
    return written


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.set_size_inches(max(fig.get_size_inches()[0], 6.5), max(fig.get_size_inches()[1], 4.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report_study(study: optuna.Study, parent: Tracker, out_dir: Path, monitor: str) -> None:
    """Write `trials.csv` and the plots to `out_dir`, print the table, and log them with the
    trial counts and the best trial (by source validation) to the sweep's parent run."""
    rows = trials_table(study, monitor)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = out_dir / "trials.csv"
    with table.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["trial"])
        writer.writeheader()
        writer.writerows(rows)
    log.info(
        "trials of study %r (val drives the search):\n%s", study.study_name, format_table(rows)
    )
    parent.log_artifact(table)
    counts = Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False))
    parent.log_metrics({f"trials/{state}": n for state, n in counts.items()})
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        log.warning("study %r has no complete trial yet: no best trial, no plots", study.study_name)
        return
    for plot in plot_study(study, monitor, out_dir / "plots"):
        parent.log_artifact(plot, "plots")
    best = study.best_trial
    parent.log_params(
        {"best_trial/number": best.number, **{f"best_trial/{k}": v for k, v in best.params.items()}}
    )
    parent.log_metrics(
        {
            f"best_trial/val/{monitor}": best.value,
            "best_trial/test/mean/video_auc": best.user_attrs.get("test/mean/video_auc", math.nan),
        }
    )
    log.info(
        "best trial %d by source val %s %.4f (its mean target video AUC %.4f, reported only): %s",
        best.number,
        monitor,
        best.value,
        best.user_attrs.get("test/mean/video_auc", math.nan),
        best.user_attrs.get("overrides"),
    )
