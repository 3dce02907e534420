"""The answer of a grid ablation: one row per configuration, mean ± std over its seeds, and its
difference from the reference row with a bootstrap confidence interval over videos.

The interval comes from a paired, label-stratified bootstrap over each target's test videos
(Efron & Tibshirani 1993, ch. 13; paired as in DeLong-style comparisons of two ROC curves on one
test set): every replicate draws the target's real and fake videos with replacement, the same
draw for every run of both rows, and recomputes each run's video AUC on it. A row's AUC in a
replicate is the mean over its seeds, the difference is row minus reference, and the row's
difference in the mean over targets averages the targets' differences. The interval is the
2.5th-97.5th percentile of the replicates. It measures how much the comparison depends on
which videos were tested; the spread over training seeds is the ± std beside it. The
resampling and the replicates' AUCs are `dfd.scoring.bootstrap`'s, the same code as a run's
per-target interval.

Per-video scores are the mean p(fake) of a video's frames (`dfd.scoring.metrics.video_scores`, the same
aggregation as the logged `video_auc`), read from each trial's per-frame predictions
`<trial output_dir>/predictions/<target>.parquet` (columns path, video_id, source, label,
p_fake), or from the trial's MLflow artifacts `predictions/` when the folder is elsewhere.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from optuna.trial import FrozenTrial

from dfd.report.tables import Delta, Stat, Table
from dfd.runtime.errors import UserError
from dfd.scoring.bootstrap import bootstrap_aucs, percentile_interval, roc_auc_rows
from dfd.scoring.metrics import video_scores

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = ("video_id", "label", "p_fake")


@dataclass(frozen=True)
class VideoScores:
    """One run's scores on one target: video ids (sorted), labels (1 = fake) and p(fake)."""

    ids: np.ndarray
    labels: np.ndarray
    scores: np.ndarray


def read_predictions(path: Path) -> VideoScores:
    """Per-frame predictions (parquet) -> per-video scores; a missing column fails naming it."""
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as err:
        raise UserError(
            f"{path}: not a readable predictions parquet ({type(err).__name__}: "
            f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}): delete it (the "
            f"copy its trial logged to MLflow is then read, or its row gets no confidence "
            f"interval) or rerun that trial (its MLflow tag dfd.overrides is its command)"
        ) from None
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: predictions need columns {list(PREDICTION_COLUMNS)}; missing {missing}"
        )
    # unreadable frames (and non-finite scores a run allowed) are in no metric of the run
    frame = frame[np.isfinite(frame["p_fake"].to_numpy(np.float64))]
    ids, labels, scores = video_scores(
        frame["video_id"].astype(str).tolist(),
        frame["label"].to_numpy(np.int64),
        frame["p_fake"].to_numpy(np.float64),
    )
    return VideoScores(np.asarray(ids, dtype=object), np.asarray(labels), np.asarray(scores))


def trial_predictions(
    trial: FrozenTrial, targets: Sequence[str], tracking_uri: str | None
) -> dict[str, VideoScores] | None:
    """A trial's per-video scores for every target, or None when some are not to be found."""
    folder = Path(trial.user_attrs.get("output_dir", "")) / "predictions"
    if all((folder / f"{t}.parquet").is_file() for t in targets):
        return {t: read_predictions(folder / f"{t}.parquet") for t in targets}
    run_id = trial.user_attrs.get("mlflow_run_id")
    if not run_id or not tracking_uri:
        return None
    try:
        from mlflow import MlflowClient

        with tempfile.TemporaryDirectory() as tmp:
            local = Path(MlflowClient(tracking_uri).download_artifacts(run_id, "predictions", tmp))
            return {t: read_predictions(local / f"{t}.parquet") for t in targets}
    except Exception as err:  # no artifacts logged, or the store is out of reach
        log.warning("trial %d: no predictions (%s): its differences get no CI", trial.number, err)
        return None


def bootstrap_difference(
    row: Sequence[VideoScores],
    reference: Sequence[VideoScores],
    n_boot: int,
    rng: np.random.Generator,
) -> tuple[float, np.ndarray]:
    """Mean-over-seeds AUC of `row` minus that of `reference` on one target: the estimate on
    every video, and `n_boot` paired, label-stratified bootstrap replicates.

    Only videos every run scored are compared (they are the same test set in an ablation).
    """
    runs = [*row, *reference]
    common = set(runs[0].ids)
    for r in runs[1:]:
        common &= set(r.ids)
    ids = np.array(sorted(common), dtype=object)
    if len(ids) == 0:
        raise ValueError("the runs share no test video: they were not tested on the same target")

    def aligned(r: VideoScores) -> np.ndarray:
        return r.scores[np.searchsorted(r.ids.astype(str), ids.astype(str))]

    first = runs[0]
    labels = first.labels[np.searchsorted(first.ids.astype(str), ids.astype(str))]
    scores = np.stack([aligned(r) for r in runs])  # (runs, videos)
    k = len(row)
    aucs_full = roc_auc_rows(labels, scores)  # (runs,)
    estimate = float(aucs_full[:k].mean() - aucs_full[k:].mean())
    # (runs, B): every replicate redraws reals among reals and fakes among fakes, the same
    # draw for every run (paired)
    aucs = bootstrap_aucs(labels, scores, n_boot, rng)
    return estimate, aucs[:k].mean(axis=0) - aucs[k:].mean(axis=0)


@dataclass
class RowRuns:
    """The completed trials of one ablation row."""

    label: str
    trials: list[FrozenTrial]


def group_rows(trials: Sequence[FrozenTrial], row_order: Sequence[str]) -> list[RowRuns]:
    """Completed grid trials grouped by row, rows in the sweep file's order."""
    by_row: dict[str, list[FrozenTrial]] = {label: [] for label in row_order}
    for t in trials:
        by_row.setdefault(str(t.params.get("row")), []).append(t)
    return [
        RowRuns(label, sorted(ts, key=lambda t: t.params.get("seed", 0)))
        for label, ts in by_row.items()
        if ts
    ]


def targets_of(trials: Sequence[FrozenTrial]) -> list[str]:
    """The target names the trials recorded (`test/<target>/video_auc`), in the data config's
    order where the trials recorded it (`targets`), else as first seen."""
    names: dict[str, None] = {}
    for t in trials:
        names.update(dict.fromkeys(t.user_attrs.get("targets") or []))
        for key in t.user_attrs:
            parts = key.split("/")
            if len(parts) == 3 and parts[0] == "test" and parts[1] != "mean":
                names[parts[1]] = None
    return list(names)


@dataclass
class Ablation:
    """The per-row summary table and the per-target differences table of a grid ablation."""

    summary: Table
    deltas: Table
    reference: str | None
    n_boot: int


def ablation_tables(
    trials: Sequence[FrozenTrial],
    row_order: Sequence[str],
    monitor: str,
    reference: str | None,
    tracking_uri: str | None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Ablation:
    """One row per ablation row: seeds, source val `monitor` and each target's video AUC as mean
    ± std over seeds, the mean over targets, and the difference in that mean from `reference`
    with its bootstrap CI; plus a table of the per-target differences with their CIs."""
    rows = group_rows(trials, row_order)
    targets = targets_of(trials)
    rng = np.random.default_rng(seed)
    ref = next((r for r in rows if r.label == reference), None)
    if reference is not None and ref is None:
        log.warning("reference row %r has no completed run yet: no differences", reference)
    delta_col = f"Δ mean vs {reference} [{confidence:.0%} CI]"
    summary = Table(
        "row", ["seeds", f"val {monitor}", *targets, "mean", *([delta_col] if ref else [])]
    )
    deltas = Table("row", [*targets, "mean"])
    ref_preds = _predictions(ref, targets, tracking_uri) if ref else None
    for row in rows:
        per_target = [
            Stat.of([t.user_attrs.get(f"test/{name}/video_auc", math.nan) for t in row.trials])
            for name in targets
        ]
        mean = Stat.of([_trial_mean(t, targets) for t in row.trials])
        cells = [
            len(row.trials),
            Stat.of([t.user_attrs.get(f"val/{monitor}", t.value) for t in row.trials]),
            *per_target,
            mean,
        ]
        if ref is None:
            summary.add(row.label, cells)
            continue
        if row is ref:
            summary.add(f"{row.label} (reference)", [*cells, None])
            continue
        preds = _predictions(row, targets, tracking_uri)
        target_deltas = []
        replicates = []
        for i, name in enumerate(targets):
            point = per_target[i].mean - _row_stat(ref, name).mean
            if preds is None or ref_preds is None:
                target_deltas.append(Delta(point, math.nan, math.nan))
                continue
            estimate, reps = bootstrap_difference(
                [p[name] for p in preds], [p[name] for p in ref_preds], n_boot, rng
            )
            target_deltas.append(_interval(estimate, reps, confidence))
            replicates.append(reps)
        mean_point = mean.mean - Stat.of([_trial_mean(t, targets) for t in ref.trials]).mean
        if replicates and len(replicates) == len(targets):
            estimate = float(np.mean([d.value for d in target_deltas]))
            mean_delta = _interval(estimate, np.mean(replicates, axis=0), confidence)
        else:
            mean_delta = Delta(mean_point, math.nan, math.nan)
        summary.add(row.label, [*cells, mean_delta])
        deltas.add(row.label, [*target_deltas, mean_delta])
    return Ablation(summary, deltas, ref.label if ref else None, n_boot)


def _interval(estimate: float, replicates: np.ndarray, confidence: float) -> Delta:
    return Delta(estimate, *percentile_interval(replicates, confidence))


def _row_stat(row: RowRuns, target: str) -> Stat:
    return Stat.of([t.user_attrs.get(f"test/{target}/video_auc", math.nan) for t in row.trials])


def _trial_mean(trial: FrozenTrial, targets: Sequence[str]) -> float:
    values = [trial.user_attrs.get(f"test/{name}/video_auc", math.nan) for name in targets]
    return float(np.mean(values)) if values else math.nan


def _predictions(
    row: RowRuns, targets: Sequence[str], tracking_uri: str | None
) -> list[Mapping[str, VideoScores]] | None:
    preds = [trial_predictions(t, targets, tracking_uri) for t in row.trials]
    return None if any(p is None for p in preds) else preds
