"""Bootstrap intervals over videos: label-stratified resampling and the AUC of every replicate.

One implementation serves the per-target interval of a run's video AUC (`auc_interval`, used
by `dfd.scoring.targets`) and the paired differences of a grid ablation
(`dfd.report.ablation`). Every replicate redraws the set's real videos among its real videos
and its fake videos among its fake videos, with replacement (a stratified bootstrap: each
replicate keeps the real and fake counts, so its AUC is always defined); the interval is the
percentile interval of the replicates (Efron & Tibshirani 1993, ch. 13).

Cost: the replicates' AUCs come from how often each video was drawn (its multiplicity), over
the scores sorted once, so a replicate costs O(n) and no sort; draws are made in chunks of at
most `MAX_DRAWS` indices, so memory stays bounded at any number of videos (benchmarks:
`python -m benchmarks.bootstrap`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# indices drawn at once: 4M int64 (32 MiB). Below it (every demo and paper-sized set at 1,000
# replicates) the draws are one call per class, the draws dfd.report.ablation always made
MAX_DRAWS = 1 << 22
CONFIDENCE = 0.95


def stratified_resamples(
    labels: np.ndarray, n_boot: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """`n_boot` bootstrap replicates of a set's positions, in chunks of ``(b, n)`` arrays.

    Each row holds the real positions redrawn among the reals, then the fake positions
    redrawn among the fakes (with replacement). Chunk sizes depend only on `n_boot` and the
    set's size, so the draws are a function of the generator's state, `n_boot` and `labels`.
    """
    labels = np.asarray(labels)
    real, fake = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    per_chunk = max(1, MAX_DRAWS // max(labels.size, 1))
    for start in range(0, n_boot, per_chunk):
        b = min(per_chunk, n_boot - start)
        yield np.concatenate(
            [
                rng.choice(real, size=(b, real.size), replace=True),
                rng.choice(fake, size=(b, fake.size), replace=True),
            ],
            axis=1,
        )


def _multiplicities(draws: np.ndarray, n: int) -> np.ndarray:
    """How often each of `n` positions occurs in every row of `draws` (b, m) -> (b, n)."""
    b = draws.shape[0]
    flat = (draws + n * np.arange(b)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n)


def weighted_auc_rows(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of `scores` (n,) when position i counts `weights[:, i]` times, for every row
    of `weights` (b, n); ties count one half (the Mann-Whitney U statistic).

    Scores are sorted once; within each group of equal scores, a fake beats the reals below
    the group and ties with the reals inside it. NaN when a row weighs only one class.
    """
    labels = np.asarray(labels).astype(bool)
    order = np.argsort(np.asarray(scores, dtype=np.float64), kind="mergesort")
    s = np.asarray(scores, dtype=np.float64)[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first position of each tie group
    w = np.asarray(weights)[:, order]  # (b, n)
    fake = labels[order]
    real_w = np.add.reduceat(np.where(fake, 0, w), starts, axis=1)  # (b, groups)
    fake_w = np.add.reduceat(np.where(fake, w, 0), starts, axis=1)
    below = np.cumsum(real_w, axis=1) - real_w  # real weight strictly below each group
    wins = (fake_w * (2 * below + real_w)).sum(axis=1) / 2.0
    pairs = fake_w.sum(axis=1) * real_w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1), np.nan)


def roc_auc_rows(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC of every row of `scores` (R, n) against `labels` (n,), ties counted half."""
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    ones = np.ones((1, scores.shape[1]), dtype=np.int64)
    return np.array([weighted_auc_rows(labels, s, ones)[0] for s in scores])


def bootstrap_aucs(
    labels: np.ndarray, scores: np.ndarray, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """AUCs of every row of `scores` (R, n) on `n_boot` label-stratified bootstrap replicates
    of the `n` positions, the same replicates for every row (paired): shape (R, n_boot)."""
    labels = np.asarray(labels)
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    out = np.empty((scores.shape[0], n_boot))
    done = 0
    for draws in stratified_resamples(labels, n_boot, rng):
        counts = _multiplicities(draws, labels.size)
        for r, row in enumerate(scores):
            out[r, done : done + len(draws)] = weighted_auc_rows(labels, row, counts)
        done += len(draws)
    return out


def percentile_interval(
    replicates: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The central `confidence` interval of bootstrap replicates (NaN replicates left out)."""
    replicates = np.asarray(replicates, dtype=np.float64)
    if replicates.size == 0 or np.all(np.isnan(replicates)):
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(replicates, [tail, 100 - tail])
    return float(low), float(high)


def auc_interval(
    labels: np.ndarray,
    scores: np.ndarray,
    n_boot: int,
    seed: int,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """The bootstrap interval of one set's AUC: `n_boot` label-stratified replicates drawn
    from ``default_rng(seed)``, so the interval depends only on the set, `n_boot` and
    `seed`. NaN when the set lacks a class or `n_boot` is 0."""
    labels = np.asarray(labels)
    if n_boot <= 0 or not (np.any(labels == 0) and np.any(labels == 1)):
        return float("nan"), float("nan")
    reps = bootstrap_aucs(labels, scores, n_boot, np.random.default_rng(seed))[0]
    return percentile_interval(reps, confidence)
