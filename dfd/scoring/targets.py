"""Cross-dataset scoring of the selected weights on every target: scores and metrics only.

Logging, plots and files are the reporting code's job (`dfd.tracking`, `dfd.report.results`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from accelerate import Accelerator

from dfd.data.frames import FrameTransform
from dfd.data.index import FrameIndex
from dfd.data.loading import make_loader
from dfd.data.store import StoreOptions, store_for
from dfd.scoring.inference import evaluate

MEAN_KEYS = ("video_auc", "frame_auc")


@dataclass(frozen=True)
class TargetScoring:
    """How target frames are read and scored: the evaluation batch size and loader workers,
    what an unreadable frame does (``raise`` | ``skip``, `data.on_error`), a video's score
    from its frames' (``mean`` | ``median``, `eval.aggregate`), the frame stores to read
    (`data.store`; None: decode the files) and whether a non-finite score is left out of the
    metrics rather than an error (`eval.allow_nonfinite`)."""

    batch_size: int
    num_workers: int = 0
    on_error: str = "raise"
    aggregate: str = "mean"
    store: StoreOptions | None = None
    allow_nonfinite: bool = False

    @classmethod
    def of_run(cls, cfg) -> TargetScoring:
        """What a training run's config says: `trainer.eval_batch_size`,
        `trainer.num_workers`, `data.on_error`, `eval.aggregate`, `data.store`,
        `eval.allow_nonfinite`."""
        t, data = cfg.trainer, cfg.data
        store = StoreOptions.from_config(data.get("store"))
        on_error = data.get("on_error", "raise")
        allow = allow_nonfinite(cfg.eval)
        return cls(t.eval_batch_size, t.num_workers, on_error, cfg.eval.aggregate, store, allow)


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
    """The mean of every level metric present in all targets (AUCs first)."""
    if not results:
        return {}
    shared = set.intersection(*(set(m) for m in results.values()))
    keys = [k for k in MEAN_KEYS if k in shared]
    keys += sorted(k for k in shared if k not in keys and k.startswith(("frame_", "video_")))
    return {k: float(np.mean([m[k] for m in results.values()])) for k in keys}


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

    Returns ``({"test": {target: metrics}, "mean": {...}}, {target: predictions},
    {target: unreadable frame count})``. A target's predictions are its per-frame table
    (`frame_predictions`), or, with a `sink`, what ``sink(target, table)`` returns: a sink
    that writes the table (`dfd.report.results.PredictionWriter`) lets the run keep one
    target's per-frame rows at a time instead of every target's until the end.
    """
    per_target, predictions, unreadable = {}, {}, {}
    for name, index in targets.items():
        loader = target_loader(index, transform, accelerator, setup)
        metrics, scores, lost = evaluate(
            task,
            loader,
            accelerator,
            desc=f"test {name}",
            aggregate=setup.aggregate,
            allow_nonfinite=setup.allow_nonfinite,
        )
        per_target[name] = metrics
        table = frame_predictions(index, scores, lost)
        predictions[name] = table if sink is None else sink(name, table)
        unreadable[name] = int(lost.size)
    return {"test": per_target, "mean": mean_over_targets(per_target)}, predictions, unreadable
