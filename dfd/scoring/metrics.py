"""Detection metrics at frame and video level, written out so that they can be checked.

Frame- and video-level numbers are computed separately and every key carries its level
(``frame_auc`` vs ``video_auc``): they are never mixed and no metric has a second name.
Scores are p(fake); label 1 = fake is the positive class, and p(real) = 1 - p(fake). Each
metric is checked against scikit-learn in tests/test_metrics.py; the definitions are in the
README's "Metrics" section.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ROC at every distinct score threshold: (fpr, tpr, thresholds), from (0, 0) to (1, 1).

    Point k > 0 predicts fake at p >= thresholds[k] (the k-th highest distinct score); point 0
    predicts nothing fake and has threshold +inf. The same points as scikit-learn's
    ``roc_curve(..., drop_intermediate=False)``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    s, y = np.asarray(scores, dtype=np.float64)[order], labels[order]
    # one ROC point per distinct threshold: the last index of each run of equal scores
    last_of_run = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tps = np.cumsum(y)[last_of_run]
    fps = (last_of_run + 1) - tps
    tpr = np.r_[0.0, tps / max(tps[-1], 1)]
    fpr = np.r_[0.0, fps / max(fps[-1], 1)]
    return fpr, tpr, np.r_[np.inf, s[last_of_run]]


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct score threshold, from (0, 0) to (1, 1)."""
    fpr, tpr, _ = roc_points(labels, scores)
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


def _eer_segment(fpr: np.ndarray, tpr: np.ndarray) -> tuple[int, float]:
    """Where FNR - FPR changes sign: the first ROC point k with FNR <= FPR and the fraction w
    of the way from point k - 1 to point k at which the gap is zero (w = 1: exactly at k)."""
    gap = (1.0 - tpr) - fpr  # strictly decreasing from 1 to -1 along the curve
    k = int(np.flatnonzero(gap <= 0)[0])
    if gap[k] == 0:
        return k, 1.0
    return k, float(gap[k - 1] / (gap[k - 1] - gap[k]))


def equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> float:
    """EER: the rate where the false-positive rate equals the false-negative rate.

    Linear interpolation between the two ROC points where FNR - FPR changes sign.
    """
    labels = np.asarray(labels)
    if not _check_both_classes(labels):
        return float("nan")
    fpr, tpr = roc_curve(labels, scores)
    k, w = _eer_segment(fpr, tpr)
    return float(fpr[k - 1] + w * (fpr[k] - fpr[k - 1]))


def eer_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold at the EER: GenD's ``interp1d(fpr, thresholds)(eer)``, made exact.

    The EER lies on the ROC segment from point k - 1 to point k (see `roc_points`), a
    fraction w of the way; the threshold is the same linear interpolation of the two points'
    thresholds, t[k-1] + w (t[k] - t[k-1]), so predicting fake at p >= it operates at point
    k - 1 (or at point k when the EER falls exactly on it, w = 1). On the first segment,
    whose upper end predicts nothing fake (threshold +inf), it is the next float above the
    highest score, so it is always finite. Interpolating along the segment, not along the
    FPR axis, also covers vertical segments, where GenD's interp1d is ambiguous
    (yermandy/GenD src/metrics.py `calculate_eer`). NaN unless both classes are present.
    """
    labels = np.asarray(labels)
    if not _check_both_classes(labels):
        return float("nan")
    fpr, tpr, thresholds = roc_points(labels, scores)
    k, w = _eer_segment(fpr, tpr)
    if w == 1.0:
        return float(thresholds[k])
    if k == 1:
        return float(np.nextafter(thresholds[1], np.inf))
    return float(thresholds[k - 1] + w * (thresholds[k] - thresholds[k - 1]))


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, level: float) -> float:
    """TPR at a false-positive rate of `level`, as GenD computes it: the ROC linearly
    interpolated at FPR = level (``np.interp(level, fpr, tpr)``, yermandy/GenD src/metrics.py
    `calculate_tpr_at_fpr`).

    At an FPR the ROC reaches exactly, this is the highest TPR there (the top of a vertical
    segment); between two ROC points it is the straight line between them, at least the
    highest TPR whose FPR does not exceed `level` (the step value, which does not
    interpolate). NaN unless both classes are present.
    """
    labels = np.asarray(labels)
    if not _check_both_classes(labels):
        return float("nan")
    fpr, tpr = roc_curve(labels, scores)
    j = int(np.searchsorted(fpr, level, side="right")) - 1  # the last point with fpr <= level
    if fpr[j] == level or j == fpr.size - 1:
        return float(tpr[j])
    w = (level - fpr[j]) / (fpr[j + 1] - fpr[j])
    return float(tpr[j] + w * (tpr[j + 1] - tpr[j]))


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


def mean_average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """The authors' "mAP": the mean of AP(fake class on p_fake) and AP(real class on p_real).

    Their code (yermandy/deepfake-detection, src/metrics.py `ovr_prc`) calls scikit-learn's
    ``average_precision_score(one_hot(labels), [p_real, p_fake], average="macro")``, which is
    this mean with p_real = 1 - p_fake. NaN unless both classes are present.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if not _check_both_classes(labels):
        return float("nan")
    scores = np.asarray(scores, dtype=np.float64)
    fake = average_precision(labels, scores)
    # ranking by -p_fake is ranking by p_real = 1 - p_fake, without rounding 1 - p
    real = average_precision(1 - labels, -scores)
    return 0.5 * (fake + real)


def _confusion(
    labels: np.ndarray, scores: np.ndarray, threshold: float
) -> tuple[int, int, int, int]:
    """(TP, FP, TN, FN) with fake the positive class and p(fake) >= threshold predicting fake."""
    labels = np.asarray(labels, dtype=np.int64)
    pred = (np.asarray(scores) >= threshold).astype(np.int64)
    tp = int(np.sum((pred == 1) & (labels == 1)))
    fp = int(np.sum((pred == 1) & (labels == 0)))
    tn = int(np.sum((pred == 0) & (labels == 0)))
    fn = int(np.sum((pred == 0) & (labels == 1)))
    return tp, fp, tn, fn


def balanced_accuracy(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> float:
    """Mean of the per-class recalls, (TPR + TNR) / 2, at p(fake) >= threshold. NaN with one class."""
    if not _check_both_classes(np.asarray(labels)):
        return float("nan")
    tp, fp, tn, fn = _confusion(labels, scores, threshold)
    return 0.5 * (tp / (tp + fn) + tn / (tn + fp))


def macro_f1(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> float:
    """Mean of F1(fake) and F1(real), F1 = 2 TP / (2 TP + FP + FN) per class. NaN with one class.

    A class that is never predicted has F1 = 0 (scikit-learn's ``zero_division`` value).
    """
    if not _check_both_classes(np.asarray(labels)):
        return float("nan")
    tp, fp, tn, fn = _confusion(labels, scores, threshold)
    # the real class's TP/FP/FN are the fake class's TN/FN/FP; both denominators are > 0
    # because both classes are present
    return 0.5 * (2 * tp / (2 * tp + fp + fn) + 2 * tn / (2 * tn + fn + fp))


Aggregate = Literal["mean", "median"]
AGGREGATES: tuple[str, ...] = ("mean", "median")


def video_scores(
    video_ids: Sequence[str],
    labels: np.ndarray,
    scores: np.ndarray,
    aggregate: Aggregate = "mean",
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Group frames into videos: video score = mean (or median) of its frames' p(fake).

    The video label is its frames' label; a video whose frames disagree on it is an error.
    ``median`` is GenD's ``reduce_video_predictions="median"`` (the middle score, or the mean of
    the two middle scores for an even count). Returns (sorted video ids, video labels, video
    scores).
    """
    if aggregate not in AGGREGATES:
        raise ValueError(
            f"unknown video aggregate {aggregate!r}: set eval.aggregate to one of {list(AGGREGATES)}"
        )
    ids, inverse = np.unique(np.asarray(video_ids, dtype=object).astype(str), return_inverse=True)
    scores = np.asarray(scores, dtype=np.float64)
    counts = np.bincount(inverse, minlength=ids.size)
    if aggregate == "mean":
        v_scores = np.bincount(inverse, weights=scores, minlength=ids.size) / counts
    else:
        # frames sorted by (video, score): each video's scores are one sorted run
        ordered = scores[np.lexsort((scores, inverse))]
        start = np.r_[0, np.cumsum(counts)[:-1]]
        v_scores = 0.5 * (ordered[start + (counts - 1) // 2] + ordered[start + counts // 2])
    label_sums = np.bincount(
        inverse, weights=np.asarray(labels, dtype=np.float64), minlength=ids.size
    )
    mixed = (label_sums != 0) & (label_sums != counts)
    if mixed.any():
        raise ValueError(
            f"video {ids[np.flatnonzero(mixed)[0]]!r} has frames labelled both real and fake"
        )
    return ids.tolist(), (label_sums > 0).astype(np.int64), v_scores


# the low false-positive rates GenD reports TPR at (its src/model/base.py `log_metrics`)
TPR_AT_FPR = {"tpr_at_1pct_fpr": 0.01, "tpr_at_5pct_fpr": 0.05}
LEVELS = ("frame", "video")


def level_metrics(
    labels: np.ndarray, scores: np.ndarray, prefix: str, val_threshold: float | None = None
) -> dict[str, float]:
    """Every metric at one level (frame or video), keys prefixed with that level.

    auc, eer, ap (fake class, DeepfakeBench's AP), acc, map (the authors' mAP), bacc
    (balanced accuracy) and f1 (macro-F1), the thresholded ones predicting fake at
    p(fake) >= 0.5; tpr_at_1pct_fpr and tpr_at_5pct_fpr (`tpr_at_fpr`) and eer_threshold
    (`eer_threshold`). With `val_threshold` (the selection set's EER threshold at this
    level), acc_at_val_eer: the accuracy predicting fake at p(fake) >= that threshold.
    """
    out = {
        f"{prefix}_auc": roc_auc(labels, scores),
        f"{prefix}_eer": equal_error_rate(labels, scores),
        f"{prefix}_ap": average_precision(labels, scores),
        f"{prefix}_acc": accuracy(labels, scores),
        f"{prefix}_map": mean_average_precision(labels, scores),
        f"{prefix}_bacc": balanced_accuracy(labels, scores),
        f"{prefix}_f1": macro_f1(labels, scores),
        **{f"{prefix}_{k}": tpr_at_fpr(labels, scores, v) for k, v in TPR_AT_FPR.items()},
        f"{prefix}_eer_threshold": eer_threshold(labels, scores),
    }
    if val_threshold is not None:
        out[f"{prefix}_acc_at_val_eer"] = (
            accuracy(labels, scores, val_threshold) if np.isfinite(val_threshold) else float("nan")
        )
    return out


def detection_metrics(
    video_ids: Sequence[str],
    labels: np.ndarray,
    scores: np.ndarray,
    aggregate: Aggregate = "mean",
    val_thresholds: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Frame-level and video-level metrics of one dataset.

    Keys: ``frame_<m>`` and ``video_<m>`` for every m of `level_metrics`, plus the counts
    ``n_frames`` and ``n_videos``. Video scores aggregate the frames' p(fake) with
    `aggregate` (mean, the paper's, or median). `val_thresholds` (``{"frame": t, "video":
    t}``, the selection set's EER thresholds) adds each level's ``acc_at_val_eer``.
    """
    thresholds = val_thresholds or {}
    frame = level_metrics(labels, scores, "frame", thresholds.get("frame"))
    ids, v_labels, v_scores = video_scores(video_ids, labels, scores, aggregate)
    video = level_metrics(v_labels, v_scores, "video", thresholds.get("video"))
    return {
        **frame,
        **video,
        "n_frames": float(len(labels)),
        "n_videos": float(len(ids)),
    }


def pooled_videos(
    sets: Mapping[str, tuple[Sequence[str], np.ndarray, np.ndarray]], aggregate: Aggregate = "mean"
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores of every video of several sets, each set's videos formed within it.

    `sets` maps a set's name to its ``(video_ids, labels, scores)`` frames. A video id is
    unique within its dataset only, so the pooled videos are (set, video) pairs: two targets'
    ``real/000`` stay two videos.
    """
    grouped = [
        video_scores(ids, labels, scores, aggregate)[1:] for ids, labels, scores in sets.values()
    ]
    return (
        np.concatenate([g[0] for g in grouped]) if grouped else np.zeros(0, np.int64),
        np.concatenate([g[1] for g in grouped]) if grouped else np.zeros(0),
    )


def pooled_metrics(
    sets: Mapping[str, tuple[Sequence[str], np.ndarray, np.ndarray]],
    aggregate: Aggregate = "mean",
    val_thresholds: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Metrics of several sets' frames and videos taken together: the mixed-domain figure.

    Frames are concatenated; videos are pooled as (set, video) pairs (`pooled_videos`). Keys
    as `detection_metrics`.
    """
    thresholds = val_thresholds or {}
    labels = np.concatenate([np.asarray(s[1]) for s in sets.values()])
    scores = np.concatenate([np.asarray(s[2], dtype=np.float64) for s in sets.values()])
    v_labels, v_scores = pooled_videos(sets, aggregate)
    return {
        **level_metrics(labels, scores, "frame", thresholds.get("frame")),
        **level_metrics(v_labels, v_scores, "video", thresholds.get("video")),
        "n_frames": float(labels.size),
        "n_videos": float(v_labels.size),
    }


def val_eer_thresholds(val_metrics: Mapping[str, float]) -> dict[str, float]:
    """The selection set's EER threshold at each level, from its metrics (`detection_metrics`
    keys ``frame_eer_threshold``, ``video_eer_threshold``); levels it lacks are left out."""
    return {
        level: float(val_metrics[f"{level}_eer_threshold"])
        for level in LEVELS
        if f"{level}_eer_threshold" in val_metrics
    }
