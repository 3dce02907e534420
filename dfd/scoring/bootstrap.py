"""Bootstrap intervals over videos: label-stratified resampling and the AUC of every replicate.

One implementation serves the per-target interval of a run's video AUC (`auc_interval`, used
by `dfd.scoring.targets`) and the paired differences of a grid ablation
(`dfd.report.ablation`). Every replicate redraws the set's real videos among its real videos
and its fake videos among its fake videos, with replacement (a stratified bootstrap: each
replicate keeps the real and fake counts, so its AUC is always defined); the interval is the
percentile interval of the replicates (Efron & Tibshirani 1993, ch. 13).

Cost: a replicate's AUC needs only how many of its drawn reals and fakes fall in each group of
equal scores (one `bincount`), so a replicate costs O(videos) and no sort; draws are made in
chunks of at most `MAX_DRAWS` indices, so memory stays bounded at any number of videos
(`python benchmarks/bootstrap.py` times 100,000 videos).
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
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`n_boot` bootstrap replicates of a set, in chunks of ``(reals, fakes)``: ``(b, n_real)``
    draws of which real video (0 = the set's first real, in position order) and ``(b,
    n_fake)`` draws of which fake, with replacement, one row per replicate.

    These are exactly the draws of ``rng.choice(real_positions, (b, n_real))`` then
    ``rng.choice(fake_positions, (b, n_fake))`` (numpy's `Generator.choice` draws
    `Generator.integers` and indexes), without materializing the positions. Chunk sizes
    depend only on `n_boot` and the set's size, so the draws are a function of the
    generator's state, `n_boot` and `labels`.
    """
    labels = np.asarray(labels)
    n_real, n_fake = int(np.sum(labels == 0)), int(np.sum(labels == 1))
    per_chunk = max(1, MAX_DRAWS // max(labels.size, 1))
    for start in range(0, n_boot, per_chunk):
        b = min(per_chunk, n_boot - start)
        yield rng.integers(0, n_real, size=(b, n_real)), rng.integers(0, n_fake, size=(b, n_fake))


def _tie_groups(scores: np.ndarray) -> tuple[np.ndarray, int]:
    """Each position's group of equal scores, groups numbered by ascending score."""
    values, group = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True)
    return group.ravel(), values.size


def _group_weights(group: np.ndarray, n_groups: int, draws: np.ndarray) -> np.ndarray:
    """How many of each row's draws fall in each tie group, `group` giving the group of each
    drawable video: (b, m) draws -> (b, groups) counts."""
    b = draws.shape[0]
    keys = group[draws]
    keys += (n_groups * np.arange(b))[:, None]
    return np.bincount(keys.ravel(), minlength=b * n_groups).reshape(b, n_groups)


def _auc_of_weights(real_w: np.ndarray, fake_w: np.ndarray) -> np.ndarray:
    """AUC of every row from its real and fake weights per tie group (b, groups): a fake beats
    the reals of lower groups and ties with those of its own (the Mann-Whitney U statistic).
    NaN for a row without both classes."""
    below = np.cumsum(real_w, axis=1) - real_w  # real weight strictly below each group
    wins = (fake_w * (2 * below + real_w)).sum(axis=1) / 2.0
    pairs = fake_w.sum(axis=1) * real_w.sum(axis=1)
    return np.where(pairs > 0, wins / np.maximum(pairs, 1), np.nan)


def roc_auc_rows(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC of every row of `scores` (R, n) against `labels` (n,), ties counted half."""
    labels = np.asarray(labels)
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    real, fake = labels == 0, labels == 1
    everyone = (np.arange(real.sum())[None, :], np.arange(fake.sum())[None, :])
    out = []
    for row in scores:
        group, n_groups = _tie_groups(row)
        real_w = _group_weights(group[real], n_groups, everyone[0])
        fake_w = _group_weights(group[fake], n_groups, everyone[1])
        out.append(_auc_of_weights(real_w, fake_w)[0])
    return np.array(out)


def bootstrap_aucs(
    labels: np.ndarray, scores: np.ndarray, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """AUCs of every row of `scores` (R, n) on `n_boot` label-stratified bootstrap replicates
    of the `n` positions, the same replicates for every row (paired): shape (R, n_boot).

    A replicate's AUC needs only how many drawn reals and fakes fall in each group of equal
    scores, counted per row with one `bincount` per class: no sort and no (replicates x
    videos) score matrix.
    """
    labels = np.asarray(labels)
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    real, fake = labels == 0, labels == 1
    groups = []
    for row in scores:
        group, n_groups = _tie_groups(row)
        groups.append((group[real], group[fake], n_groups))
    out = np.empty((scores.shape[0], n_boot))
    done = 0
    for reals, fakes in stratified_resamples(labels, n_boot, rng):
        b = reals.shape[0]
        for r, (real_group, fake_group, n_groups) in enumerate(groups):
            real_w = _group_weights(real_group, n_groups, reals)
            fake_w = _group_weights(fake_group, n_groups, fakes)
            out[r, done : done + b] = _auc_of_weights(real_w, fake_w)
        done += b
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
