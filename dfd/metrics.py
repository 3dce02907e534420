"""Detection metrics at frame and video level, written out so that they can be checked.

Frame- and video-level numbers are computed separately and carry the level in their
names (``frame_auc`` vs ``video_auc``): they are never mixed. Scores are p(fake); label 1 =
fake is the positive class.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct score threshold, from (0, 0) to (1, 1)."""
    labels = np.asarray(labels, dtype=np.int64)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    s, y = np.asarray(scores, dtype=np.float64)[order], labels[order]
    # one ROC point per distinct threshold: the last index of each run of equal scores
    last_of_run = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tps = np.cumsum(y)[last_of_run]
    fps = (last_of_run + 1) - tps
    tpr = np.r_[0.0, tps / max(tps[-1], 1)]
    fpr = np.r_[0.0, fps / max(fps[-1], 1)]
    return fpr, tpr


def _check_both_classes(labels: np.ndarray) -> bool:
    return bool(np.any(labels == 1) and np.any(labels == 0))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids; ties count one half). NaN with a single class."""
    labels = np.asarray(labels)
    if not _check_both_classes(labels):
        return float("nan")
    fpr, tpr = roc_curve(labels, scores)
    return float(np.trapezoid(tpr, fpr))


def equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> float:
    """EER: the rate where the false-positive rate equals the false-negative rate.

    Linear interpolation between the two ROC points where FNR - FPR changes sign.
    """
    labels = np.asarray(labels)
    if not _check_both_classes(labels):
        return float("nan")
    fpr, tpr = roc_curve(labels, scores)
    gap = (1.0 - tpr) - fpr  # decreasing from 1 to -1 along the curve
    k = int(np.flatnonzero(gap <= 0)[0])
    if gap[k] == 0 or k == 0:
        return float(fpr[k])
    w = gap[k - 1] / (gap[k - 1] - gap[k])
    return float(fpr[k - 1] + w * (fpr[k] - fpr[k - 1]))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """AP of the fake class: sum_n (R_n - R_{n-1}) P_n over distinct thresholds (no interpolation)."""
    labels = np.asarray(labels, dtype=np.int64)
    if not np.any(labels == 1):
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    s, y = np.asarray(scores, dtype=np.float64)[order], labels[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tps = np.cumsum(y)[last_of_run]
    precision = tps / (last_of_run + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def accuracy(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> float:
    """Fraction correct when p(fake) >= threshold predicts fake."""
    labels = np.asarray(labels)
    return float(np.mean((np.asarray(scores) >= threshold).astype(np.int64) == labels))


def video_scores(
    video_ids: Sequence[str], labels: np.ndarray, scores: np.ndarray
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Group frames into videos: video score = mean of its frames' p(fake), label = its frames' label.

    Returns (sorted video ids, video labels, video scores). A video whose frames
    disagree on the label is an error.
    """
    ids, inverse = np.unique(np.asarray(video_ids, dtype=object).astype(str), return_inverse=True)
    counts = np.bincount(inverse, minlength=ids.size)
    mean_scores = (
        np.bincount(inverse, weights=np.asarray(scores, dtype=np.float64), minlength=ids.size)
        / counts
    )
    label_sums = np.bincount(
        inverse, weights=np.asarray(labels, dtype=np.float64), minlength=ids.size
    )
    mixed = (label_sums != 0) & (label_sums != counts)
    if mixed.any():
        raise ValueError(
            f"video {ids[np.flatnonzero(mixed)[0]]!r} has frames labelled both real and fake"
        )
    return ids.tolist(), (label_sums > 0).astype(np.int64), mean_scores


def level_metrics(labels: np.ndarray, scores: np.ndarray, prefix: str) -> dict[str, float]:
    """AUC, EER, AP (fake class) and accuracy at one level, keys prefixed with that level."""
    return {
        f"{prefix}_auc": roc_auc(labels, scores),
        f"{prefix}_eer": equal_error_rate(labels, scores),
        f"{prefix}_ap": average_precision(labels, scores),
        f"{prefix}_acc": accuracy(labels, scores),
    }


def detection_metrics(
    video_ids: Sequence[str], labels: np.ndarray, scores: np.ndarray
) -> dict[str, float]:
    """Frame-level and video-level metrics of one dataset.

    Keys: ``frame_{auc,eer,ap,acc}``, ``video_{auc,eer,ap,acc}``, ``n_frames``, ``n_videos``,
    and ``eer``, ``ap``, ``acc``: the video-level values under the short names, because the
    video level is the protocol's headline level (the paper reports video-level AUROC).
    """
    frame = level_metrics(labels, scores, "frame")
    ids, v_labels, v_scores = video_scores(video_ids, labels, scores)
    video = level_metrics(v_labels, v_scores, "video")
    headline = {k: video[f"video_{k}"] for k in ("eer", "ap", "acc")}
    return {
        **frame,
        **video,
        **headline,
        "n_frames": float(len(labels)),
        "n_videos": float(len(ids)),
    }
