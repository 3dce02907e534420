"""What a sweep leaves behind: the trials table, its plots, a grid ablation's per-row table, and
the parent run's summary.

Every table and plot puts the SOURCE validation metric that drove the sweep beside the target
video AUCs, which are recorded for reporting only. Every plotted point is labelled with its
configuration (a grid point's row and seed, a search trial's sampled values). The parameter
importance plot is drawn only from `sweep.min_trials_for_importance` complete trials up, and
says how many it was computed from.
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
from omegaconf import DictConfig  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402

from dfd.report.ablation import ablation_tables  # noqa: E402
from dfd.report.plots import plot_table  # noqa: E402
from dfd.report.tables import to_csv, to_latex, to_markdown  # noqa: E402

log = logging.getLogger(__name__)

DEFAULT_MIN_TRIALS_FOR_IMPORTANCE = 10


def trial_label(trial: FrozenTrial) -> str:
    """The configuration a trial trained, in a few words (its `label` user attribute)."""
    return str(trial.user_attrs.get("label") or f"#{trial.number}")


def trials_table(study: optuna.Study, monitor: str) -> list[dict[str, Any]]:
    """One row per trial: state, its configuration label, the source-val value that drove the
    sweep, the mean target video AUC beside it (reported, never optimized), params, reason and
    the MLflow run id."""
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
                "label": trial_label(t),
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
    skip = {"mlflow_run_id", "label"} | {
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


def _annotate(ax: plt.Axes, x: float, y: float, text: str) -> None:
    ax.annotate(text, (x, y), xytext=(4, 3), textcoords="offset points", fontsize=7)


def plot_history(study: optuna.Study, monitor: str, path: Path) -> Path | None:
    """Source val of each complete trial by trial number, each point labelled by its
    configuration, and the best value so far."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    numbers = [t.number for t in done]
    values = [t.value for t in done]
    ax.scatter(numbers, values, color="tab:blue", zorder=3)
    for t in done:
        _annotate(ax, t.number, t.value, trial_label(t))
    best, best_line = -math.inf if _maximize(study) else math.inf, []
    for v in values:
        best = max(best, v) if _maximize(study) else min(best, v)
        best_line.append(best)
    ax.step(numbers, best_line, where="post", color="tab:red", label="best so far")
    ax.set(
        xlabel="trial",
        ylabel=f"source val {monitor}",
        title=f"study {study.study_name}: {len(done)} complete trials",
    )
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _maximize(study: optuna.Study) -> bool:
    return study.direction == optuna.study.StudyDirection.MAXIMIZE


def plot_importances(study: optuna.Study, monitor: str, path: Path, min_trials: int) -> Path | None:
    """Optuna's parameter importances (its default evaluator), only from `min_trials` complete
    trials up, the count in the title; None (and a log line) below that."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) < min_trials:
        log.info(
            "parameter importances not plotted: %d complete trials, fewer than %d "
            "(sweep.min_trials_for_importance)",
            len(done),
            min_trials,
        )
        return None
    with warnings.catch_warnings(), plt.rc_context():
        # Optuna's plots switch the global matplotlib style: keep that to this figure
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            ax = optuna.visualization.matplotlib.plot_param_importances(
                study, target_name=f"val {monitor}"
            )
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            log.warning("plot param_importances skipped: %s", err)
            return None
        for loc in ("left", "center", "right"):  # Optuna titles its plot on the left
            ax.set_title("", loc=loc)
        ax.set_title(f"parameter importances for val {monitor}, from {len(done)} complete trials")
        fig = ax.figure
        fig.set_size_inches(7.5, 4.5)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
    return path


def plot_val_vs_target(study: optuna.Study, monitor: str, path: Path) -> Path | None:
    """Source val (what selected) against mean target video AUC (what it bought), each point
    labelled by its configuration."""
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if "test/mean/video_auc" in t.user_attrs
    ]
    if not done:
        return None
    fig, ax = plt.subplots(figsize=(7, 5.5), layout="constrained")
    for t in done:
        y = t.user_attrs["test/mean/video_auc"]
        ax.scatter(t.value, y, color="tab:blue")
        _annotate(ax, t.value, y, trial_label(t))
    ax.set(
        xlabel=f"source val {monitor} (drives the sweep)",
        ylabel="mean target video AUC (reported only)",
        title="does source validation predict transfer?",
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report_study(
    study: optuna.Study,
    parent: Any,
    out_dir: Path,
    monitor: str,
    spec: DictConfig,
    tracking_uri: str | None = None,
) -> None:
    """Write `trials.csv`, the plots and (for a grid) the ablation tables to `out_dir`, print
    them, and log them with the trial counts and the best trial to the sweep's parent run.

    `tracking_uri` is the trials' MLflow store, where a grid ablation finds a trial's
    predictions when its folder is on another machine.
    """
    rows = trials_table(study, monitor)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = out_dir / "trials.csv"
    with table.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["trial"])
        writer.writeheader()
        writer.writerows(rows)
    log.info("trials of study %r (val drives the sweep):\n%s", study.study_name, format_table(rows))
    parent.log_artifact(table)
    counts = Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False))
    parent.log_metrics({f"trials/{state}": n for state, n in counts.items()})
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        log.warning("study %r has no complete trial yet: no best trial, no plots", study.study_name)
        return
    plots_dir = out_dir / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    min_trials = int(spec.get("min_trials_for_importance") or DEFAULT_MIN_TRIALS_FOR_IMPORTANCE)
    plots = [
        plot_history(study, monitor, plots_dir / "optimization_history.png"),
        plot_importances(study, monitor, plots_dir / "param_importances.png", min_trials),
        plot_val_vs_target(study, monitor, plots_dir / "val_vs_target.png"),
    ]
    if spec.get("rows") is not None:
        plots.append(report_ablation(complete, parent, out_dir, monitor, spec, tracking_uri))
    for plot in plots:
        if plot is not None:
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
        "best trial %d (%s) by source val %s %.4f (its mean target video AUC %.4f, reported only)",
        best.number,
        trial_label(best),
        monitor,
        best.value,
        best.user_attrs.get("test/mean/video_auc", math.nan),
    )


def report_ablation(
    complete: Sequence[FrozenTrial],
    parent: Any,
    out_dir: Path,
    monitor: str,
    spec: DictConfig,
    tracking_uri: str | None,
) -> Path:
    """A grid ablation's per-row table (`ablation.{md,csv,tex}`), its per-target differences
    (`ablation_deltas.*`) and its plot; logged to the parent run, the table also printed."""
    result = ablation_tables(
        complete,
        list(spec.rows),
        monitor,
        spec.get("reference"),
        tracking_uri,
        n_boot=int(spec.get("bootstrap", 1000)),
        seed=int(spec.get("bootstrap_seed", 0)),
    )
    for name, tab in [("ablation", result.summary), ("ablation_deltas", result.deltas)]:
        if not tab.rows:
            continue
        for suffix, text in [
            ("md", to_markdown(tab)),
            ("csv", to_csv(tab)),
            ("tex", to_latex(tab, caption=f"{spec.study_name}: {name.replace('_', ' ')}")),
        ]:
            path = out_dir / f"{name}.{suffix}"
            path.write_text(text + ("\n" if not text.endswith("\n") else ""))
            parent.log_artifact(path)
    log.info(
        "ablation %r: mean ± std over seeds; Δ = difference from the reference row with a "
        "%d-replicate bootstrap CI over videos:\n%s",
        spec.study_name,
        result.n_boot,
        to_markdown(result.summary),
    )
    targets = [
        c for c in result.summary.columns if c not in ("seeds", f"val {monitor}") and "Δ" not in c
    ]
    return plot_table(
        result.summary,
        [f"val {monitor}", *targets],
        out_dir / "plots" / "ablation.png",
        f"{spec.study_name}: video AUC per row (mean ± std over seeds)",
        kind=str(spec.get("plot", "bars")),
    )
