"""Scoring frames with the detector, across any number of processes, each frame counted once.

A frame that could not be read (``data.on_error=skip``) and a frame whose score is not a
number are two different things and stay apart: the first is left out of the metrics and
counted as unreadable; the second means the weights or the precision broke, and stops the
evaluation naming the set (`NonFiniteScoresError`) unless ``eval.allow_nonfinite=true``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from dfd.data.index import FrameIndex
from dfd.runtime.progress import progress
from dfd.scoring.metrics import detection_metrics


class NonFiniteScoresError(FloatingPointError):
    """The detector gave NaN or infinite p(fake) for some frames (never an unreadable frame)."""


def predict(
    task: torch.nn.Module, loader: DataLoader, accelerator: Accelerator, desc: str = "eval"
) -> tuple[np.ndarray, np.ndarray]:
    """p(fake) of every frame of the loader's dataset, in dataset order, on every process.

    Returns ``(scores, unreadable)``: the rows of frames that could not be read
    (``data.on_error=skip``) are the second array, and their scores are NaN; any other
    score is the detector's, NaN or infinite only if the detector gave that. Each process
    scores its shard in the accelerator's precision under inference mode;
    `gather_for_metrics` drops the samples Accelerate duplicated to even out the last
    batch, and the rows are checked to cover the dataset exactly once, so no frame is lost
    or counted twice.
    """
    detector = accelerator.unwrap_model(task).detector
    detector.eval()
    scored, bad = [], []
    bar = progress(
        loader, desc=desc, leave=False, disable=None if accelerator.is_local_main_process else True
    )
    with torch.inference_mode():
        for batch in bar:
            x = batch["pixel_values"]
            if x.shape[0]:
                with accelerator.autocast():
                    p = detector.fake_probability(x)
            else:  # every frame of the batch was unreadable
                p = torch.zeros(0, device=x.device)
            rows = torch.stack([batch["index"].double(), p.double()], dim=1)  # (B, 2)
            scored.append(_gather_rows(accelerator, rows))
            if "unreadable" in batch:
                lost = batch["unreadable"].to(accelerator.device).double().view(-1, 1)
                bad.append(_gather_rows(accelerator, lost))
    n = len(loader.dataset)
    rows = torch.cat(scored).numpy() if scored else np.zeros((0, 2))
    # Accelerate repeats samples to even out the last batch: the repeats are exact copies
    idx, first = np.unique(rows[:, 0].astype(np.int64), return_index=True)
    prob = rows[first, 1]
    unreadable = (
        np.unique(torch.cat(bad).numpy()[:, 0].astype(np.int64))
        if bad
        else np.zeros(0, dtype=np.int64)
    )
    covered = np.concatenate([idx, unreadable])
    if covered.size != n or np.unique(covered).size != n or (n and covered.max() >= n):
        raise RuntimeError(
            f"inference on {loader.dataset.index.name!r} returned {idx.size} scores and "
            f"{unreadable.size} unreadable frames for {n} frames ({np.unique(covered).size} "
            f"distinct): frames were dropped or duplicated across processes"
        )
    out = np.full(n, np.nan, dtype=np.float64)
    out[idx] = prob
    return out, unreadable


def _gather_rows(accelerator: Accelerator, rows: torch.Tensor) -> torch.Tensor:
    """Rows of every process (their counts may differ: unreadable frames drop out of a
    batch), padding removed, on the CPU."""
    if accelerator.num_processes > 1:
        rows = accelerator.pad_across_processes(rows.contiguous(), dim=0, pad_index=-1)
        rows = accelerator.gather(rows)
    rows = rows.cpu()
    return rows[rows[:, 0] >= 0]


def evaluate(
    task: torch.nn.Module,
    loader: DataLoader,
    accelerator: Accelerator,
    desc: str,
    aggregate: str = "mean",
    allow_nonfinite: bool = False,
    val_thresholds: Mapping[str, float] | None = None,
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Frame- and video-level metrics of one dataset, its frame scores and unreadable rows.

    Unreadable frames are left out of the metrics (and counted by the caller). A frame the
    detector scored NaN or infinite raises `NonFiniteScoresError` naming `desc` (the set) and
    the first such frame; with `allow_nonfinite` such frames are left out of the metrics too,
    with a warning that counts them. `val_thresholds` (the selection set's EER thresholds
    per level) adds ``acc_at_val_eer``.
    """
    scores, unreadable = predict(task, loader, accelerator, desc)
    index: FrameIndex = loader.dataset.index
    keep = np.ones(len(scores), dtype=bool)
    keep[unreadable] = False
    broken = keep & ~np.isfinite(scores)
    if broken.any():
        first = int(np.flatnonzero(broken)[0])
        what = (
            f"{desc}: {int(broken.sum())} of {int(keep.sum())} frames got a non-finite p(fake) "
            f"(first: {index.paths[first]}, {scores[first]})"
        )
        if not allow_nonfinite:
            raise NonFiniteScoresError(
                f"{what}: the weights or the precision broke; check the checkpoint, score in "
                f"full precision (precision=no), or set eval.allow_nonfinite=true to leave "
                f"such frames out of the metrics"
            )
        warnings.warn(f"{what}: left out of the metrics (eval.allow_nonfinite=true)", stacklevel=2)
        keep &= ~broken
    if keep.all():
        metrics = detection_metrics(
            index.video_ids, index.labels, scores, aggregate, val_thresholds
        )
    else:
        ids = [v for v, k in zip(index.video_ids, keep, strict=True) if k]
        metrics = detection_metrics(
            ids, index.labels[keep], scores[keep], aggregate, val_thresholds
        )
    return metrics, scores, unreadable
