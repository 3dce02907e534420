"""The bootstrap over videos (`dfd.scoring.bootstrap`): every replicate's AUC against
scikit-learn on the videos it drew, the draws the ablation always made, seeded intervals."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from dfd.scoring import bootstrap
from dfd.scoring.bootstrap import auc_interval, bootstrap_aucs, stratified_resamples


def _set(seed, n=60, ties=True):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    scores = rng.random(n) + 0.3 * labels
    return labels, (np.round(scores, 1) if ties else scores)


def _sklearn_replicates(labels, scores, n_boot, seed):
    """Each replicate drawn as `rng.choice` over the real then the fake positions (the
    ablation's draws before the bootstrap was shared), scored by scikit-learn."""
    rng = np.random.default_rng(seed)
    real, fake = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    reals = rng.choice(real, size=(n_boot, real.size))
    fakes = rng.choice(fake, size=(n_boot, fake.size))
    draws = np.concatenate([reals, fakes], axis=1)
    return np.array([[roc_auc_score(labels[d], s[d]) for d in draws] for s in scores])


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("ties", [False, True])
def test_every_replicate_is_the_auc_of_the_videos_it_drew(seed, ties):
    labels, scores = _set(seed, ties=ties)
    rows = np.stack([scores, np.random.default_rng(seed + 9).random(labels.size)])
    got = bootstrap_aucs(labels, rows, 50, np.random.default_rng(seed))
    np.testing.assert_allclose(got, _sklearn_replicates(labels, rows, 50, seed), atol=1e-12)


def test_chunked_draws_still_score_each_replicate_exactly(monkeypatch):
    labels, scores = _set(0)
    monkeypatch.setattr(bootstrap, "MAX_DRAWS", 130)  # 2 replicates per chunk of 60 videos
    got = bootstrap_aucs(labels, scores, 7, np.random.default_rng(3))[0]
    real, fake = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    chunks = list(stratified_resamples(labels, 7, np.random.default_rng(3)))
    assert [len(r) for r, _ in chunks] == [2, 2, 2, 1]
    expected = [
        roc_auc_score(labels[d], scores[d])
        for r, f in chunks
        for d in np.concatenate([real[r], fake[f]], axis=1)
    ]
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_the_interval_is_seeded_holds_the_estimate_and_needs_both_classes():
    labels, scores = _set(1, n=200, ties=False)
    low, high = auc_interval(labels, scores, 200, seed=0)
    assert low < roc_auc_score(labels, scores) < high
    reps = _sklearn_replicates(labels, scores[None], 200, 0)[0]
    assert (low, high) == pytest.approx(tuple(np.percentile(reps, [2.5, 97.5])), abs=1e-12)
    assert auc_interval(labels, scores, 200, seed=0) == (low, high)
    assert auc_interval(labels, scores, 200, seed=1) != (low, high)
    assert all(np.isnan(auc_interval(labels, scores, 0, seed=0)))
    assert all(np.isnan(auc_interval(np.zeros(5, int), np.random.rand(5), 100, seed=0)))
