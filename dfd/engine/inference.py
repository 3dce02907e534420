"""Scoring frames with the detector, across any number of processes, each frame counted once."""

from __future__ import annotations

import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from dfd.data.frames import FrameDataset
from dfd.data.index import FrameIndex
from dfd.metrics import detection_metrics
from dfd.models.detector import Detector


@torch.no_grad()
def predict(
    model: Detector, loader: DataLoader, accelerator: Accelerator, desc: str = "eval"
) -> np.ndarray:
    """p(fake) of every frame of the loader's dataset, in dataset order, on every process.

    Each process scores its shard; `gather_for_metrics` drops the samples Accelerate
    duplicated to even out the last batch, and the gathered row indices are checked to
    cover the dataset exactly once, so no frame is lost or counted twice.
    """
    model.eval()
    indices, probs = [], []
    bar = tqdm(
        loader, desc=desc, leave=False, disable=None if accelerator.is_local_main_process else True
    )
    for batch in bar:
        with accelerator.autocast():
            p = accelerator.unwrap_model(model).fake_probability(batch["pixel_values"])
        idx, p = accelerator.gather_for_metrics((batch["index"], p.float()))
        indices.append(idx.cpu())
        probs.append(p.cpu())
    n = len(loader.dataset)
    idx = torch.cat(indices).numpy() if indices else np.zeros(0, dtype=np.int64)
    prob = torch.cat(probs).numpy() if probs else np.zeros(0, dtype=np.float32)
    if idx.size != n or np.unique(idx).size != n:
        raise RuntimeError(
            f"inference on {loader.dataset.index.name!r} returned {idx.size} scores for {n} frames "
            f"({np.unique(idx).size} distinct): frames were dropped or duplicated across processes"
        )
    out = np.empty(n, dtype=np.float64)
    out[idx] = prob
    return out


def evaluate(
    model: Detector, dataset: FrameDataset, loader: DataLoader, accelerator: Accelerator, desc: str
) -> tuple[dict[str, float], np.ndarray]:
    """Frame- and video-level metrics of one dataset, plus the frame scores."""
    scores = predict(model, loader, accelerator, desc)
    index: FrameIndex = dataset.index
    return detection_metrics(index.video_ids, index.labels, scores), scores
