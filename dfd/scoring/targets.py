"""Cross-dataset scoring of the selected weights on every target: scores and metrics only.

Logging, plots and files are the reporting code's job (`dfd.tracking`, `dfd.report.results`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from accelerate import Accelerator

from dfd.data.frames import FrameTransform
from dfd.data.index import FrameIndex
from dfd.data.loading import make_loader
from dfd.data.store import StoreOptions, store_for
from dfd.scoring.bootstrap import auc_interval
from dfd.scoring.inference import evaluate
from dfd.scoring.metrics import pooled_metrics, pooled_videos

MEAN_KEYS = ("video_auc", "frame_auc")
# not measurements of a detector's quality: a mean over targets of these means nothing
NOT_AVERAGED = ("_eer_threshold", "_ci_low", "_ci_high")


@dataclass(frozen=True)
class TargetScoring:
    """How target frames are read and scored: the evaluation batch size and loader workers,
    what an unreadable frame does (``raise`` | ``skip``, `data.on_error`), a video's score
    from its frames' (``mean`` | ``median``, `eval.aggregate`), the frame stores to read
    (`data.store`; None: decode the files), whether a non-finite score is left out of the
    metrics rather than an error (`eval.allow_nonfinite`), the bootstrap replicates and seed
    of each target's video-AUC interval (`eval.bootstrap`, 0: none; `eval.bootstrap_seed`)
    and the selection set's EER thresholds (``{"frame": t, "video": t}``) that each target's
    ``acc_at_val_eer`` applies (empty: no such metric)."""

    batch_size: int
    num_workers: int = 0
    on_error: str = "raise"
    aggregate: str = "mean"
    store: StoreOptions | None = None
    allow_nonfinite: bool = False
    bootstrap: int = 0
    bootstrap_seed: int = 0
    val_thresholds: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def of_run(cls, cfg, val_thresholds: Mapping[str, float] | None = None) -> TargetScoring:
        """What a training run's config says: `trainer.eval_batch_size`,
        `trainer.num_workers`, `data.on_error`, `eval.aggregate`, `data.store`,
        `eval.allow_nonfinite`, `eval.bootstrap`, `eval.bootstrap_seed`; `val_thresholds`
        from the selected epoch."""
        t, data = cfg.trainer, cfg.data
        return cls(
            batch_size=t.eval_batch_size,
            num_workers=t.num_workers,
            on_error=data.get("on_error", "raise"),
            aggregate=cfg.eval.aggregate,
            store=StoreOptions.from_config(data.get("store")),
            allow_nonfinite=allow_nonfinite(cfg.eval),
            bootstrap=int(cfg.eval.get("bootstrap", 0) or 0),
            bootstrap_seed=int(cfg.eval.get("bootstrap_seed", 0) or 0),
            val_thresholds=dict(val_thresholds or {}),
        )


def allow_nonfinite(eval_cfg) -> bool:
    """`eval.allow_nonfinite` (false when absent: a config written before it existed)."""
    value = eval_cfg.get("allow_nonfinite", False)
    if not isinstance(value, bool):
        raise ValueError(f"eval.allow_nonfinite={value!r} must be true or false")
    return value


def frame_predictions(
    index: FrameIndex, scores: np.ndarray, unreadable: np.ndarray | None = None
) -> pa.Table:
    """One row per frame: enough to recompute every logged metric. An unreadable frame has
    p_fake NaN and `unreadable` true; a NaN p_fake of a read frame is the detector's."""
    lost = np.zeros(len(index), dtype=bool)
    if unreadable is not None:
        lost[unreadable] = True
    return pa.table(
        {
            "path": index.paths,
            "video_id": index.video_ids,
            "source": index.sources,
            "label": index.labels,
            "p_fake": scores,
            "unreadable": lost,
        }
    )


def mean_over_targets(results: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The mean of every level metric present in all targets (AUCs first); thresholds and
    interval bounds are not averaged."""
    if not results:
        return {}
    shared = set.intersection(*(set(m) for m in results.values()))
    shared = {k for k in shared if not k.endswith(NOT_AVERAGED)}
    keys = [k for k in MEAN_KEYS if k in shared]
    keys += sorted(k for k in shared if k not in keys and k.startswith(("frame_", "video_")))
    return {k: float(np.mean([m[k] for m in results.values()])) for k in keys}


def video_auc_interval(
    v_labels: np.ndarray, v_scores: np.ndarray, setup: TargetScoring
) -> dict[str, float]:
    """``video_auc_ci_low`` and ``video_auc_ci_high``: the 95% bootstrap interval of a set's
    video AUC over its videos (`dfd.scoring.bootstrap.auc_interval`, `setup.bootstrap`
    replicates from `setup.bootstrap_seed`); nothing when `setup.bootstrap` is 0."""
    if setup.bootstrap <= 0:
        return {}
    low, high = auc_interval(v_labels, v_scores, setup.bootstrap, setup.bootstrap_seed)
    return {"video_auc_ci_low": low, "video_auc_ci_high": high}


def score_target(
    task,
    index: FrameIndex,
    transform: FrameTransform,
    accelerator: Accelerator,
    setup: TargetScoring,
    desc: str,
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """One target read and scored as `setup` says (its store, aggregation, non-finite rule,
    transferred thresholds): its metrics, frame scores and unreadable rows (`evaluate`)."""
    loader = target_loader(index, transform, accelerator, setup)
    return evaluate(
        task,
        loader,
        accelerator,
        desc=desc,
        aggregate=setup.aggregate,
        allow_nonfinite=setup.allow_nonfinite,
        val_thresholds=setup.val_thresholds,
    )


def target_loader(index: FrameIndex, transform, accelerator: Accelerator, setup: TargetScoring):
    """The prepared evaluation loader of one target: index order, every frame, its frame
    store when `setup.store` names the test role (the first process to take the store's file
    lock builds it; the others wait on the lock, outside any collective)."""
    frames = store_for("test", index, transform, setup.store, setup.num_workers)
    return accelerator.prepare(
        make_loader(
            index,
            transform,
            setup.batch_size,
            setup.num_workers,
            train=False,
            seed=0,
            on_error=setup.on_error,
            frames=frames,
        )
    )


def score_targets(
    task,
    targets: Mapping[str, FrameIndex],
    transform: FrameTransform,
    accelerator: Accelerator,
    setup: TargetScoring,
    sink: Callable[[str, pa.Table], Any] | None = None,
) -> tuple[dict, dict[str, Any], dict[str, int]]:
    """Score every target dataset with the task's current weights.

    Returns ``({"test": {target: metrics}, "mean": {...}, "pooled": {...}}, {target:
    predictions}, {target: unreadable frame count})``. Each target's metrics hold its video
    AUC's bootstrap interval (`video_auc_interval`) and, given the selection set's
    thresholds, ``acc_at_val_eer``; ``pooled`` is every metric on all targets' frames and
    videos together, videos kept apart per target (`dfd.scoring.metrics.pooled_metrics`).
    A target's predictions are its per-frame table (`frame_predictions`), or, with a `sink`,
    what ``sink(target, table)`` returns: a sink that writes the table
    (`dfd.report.results.PredictionWriter`) lets the run keep one target's per-frame rows at
    a time instead of every target's until the end (the pooled metrics keep only each
    frame's video id, label and score).
    """
    per_target, predictions, unreadable, scored = {}, {}, {}, {}
    for name, index in targets.items():
        metrics, scores, lost = score_target(
            task, index, transform, accelerator, setup, f"test {name}"
        )
        # unreadable frames (NaN) and, with eval.allow_nonfinite, non-finite scores are left
        # out, as in `evaluate`
        keep = np.isfinite(scores)
        ids = [v for v, k in zip(index.video_ids, keep, strict=True) if k]
        scored[name] = (ids, index.labels[keep], scores[keep])
        interval = video_auc_interval(*pooled_videos({name: scored[name]}, setup.aggregate), setup)
        per_target[name] = {**metrics, **interval}
        table = frame_predictions(index, scores, lost)
        predictions[name] = table if sink is None else sink(name, table)
        unreadable[name] = int(lost.size)
    pooled = pooled_metrics(scored, setup.aggregate, setup.val_thresholds)
    # its interval: the same bootstrap over the (target, video) pairs
    pooled |= video_auc_interval(*pooled_videos(scored, setup.aggregate), setup)
    results = {"test": per_target, "mean": mean_over_targets(per_target), "pooled": pooled}
    return results, predictions, unreadable
