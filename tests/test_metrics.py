"""Metric functions against scikit-learn and hand-computed video grouping."""

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    roc_auc_score,
    roc_curve,
)

from dfd.scoring.metrics import (
    accuracy,
    average_precision,
    balanced_accuracy,
    detection_metrics,
    equal_error_rate,
    macro_f1,
    mean_average_precision,
    roc_auc,
    video_scores,
)


def _sklearn_eer(labels, scores):
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1 - tpr
    # crossing of FNR and FPR, interpolated between the bracketing ROC points
    k = np.flatnonzero(fnr - fpr <= 0)[0]
    if k == 0 or fnr[k] == fpr[k]:
        return fpr[k]
    g0, g1 = fnr[k - 1] - fpr[k - 1], fnr[k] - fpr[k]
    return fpr[k - 1] + g0 / (g0 - g1) * (fpr[k] - fpr[k - 1])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True])
def test_frame_metrics_equal_sklearn(seed, ties):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    scores = rng.random(n) + 0.3 * labels
    if ties:
        scores = np.round(scores, 1)  # many equal scores
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert average_precision(labels, scores) == pytest.approx(
        average_precision_score(labels, scores), abs=1e-12
    )
    assert accuracy(labels, scores) == pytest.approx(accuracy_score(labels, scores >= 0.5))
    assert equal_error_rate(labels, scores) == pytest.approx(
        _sklearn_eer(labels, scores), abs=1e-12
    )
    _assert_class_metrics_equal_sklearn(labels, scores)


def _assert_class_metrics_equal_sklearn(labels, scores):
    # the authors' call (src/metrics.py ovr_prc): macro AP over one-hot labels and [p_real, p_fake]
    probs = np.stack([1.0 - scores, scores], axis=1)
    authors_map = average_precision_score(np.eye(2)[labels], probs, average="macro")
    assert mean_average_precision(labels, scores) == pytest.approx(authors_map, abs=1e-12)
    pred = (scores >= 0.5).astype(int)
    assert balanced_accuracy(labels, scores) == pytest.approx(
        balanced_accuracy_score(labels, pred), abs=1e-12
    )
    assert macro_f1(labels, scores) == pytest.approx(
        f1_score(labels, pred, average="macro", zero_division=0), abs=1e-12
    )


@pytest.mark.parametrize("predicted", [0.1, 0.9])
def test_class_metrics_when_one_class_is_never_predicted(predicted):
    labels = np.array([0, 1, 1, 0, 1, 1, 0])
    scores = np.full(labels.size, predicted)
    _assert_class_metrics_equal_sklearn(labels, scores)
    assert balanced_accuracy(labels, scores) == 0.5


def test_eer_of_perfect_and_inverted_scores():
    labels = np.array([0, 0, 1, 1])
    assert equal_error_rate(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 0.0
    assert equal_error_rate(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 1.0


def test_single_class_gives_nan_not_a_number():
    labels = np.zeros(5, dtype=int)
    assert np.isnan(roc_auc(labels, np.random.rand(5)))
    assert np.isnan(equal_error_rate(labels, np.random.rand(5)))
    for metric in (mean_average_precision, balanced_accuracy, macro_f1):
        assert np.isnan(metric(labels, np.random.rand(5)))


@pytest.mark.parametrize("seed", range(4))
def test_video_grouping_matches_a_plain_loop(seed):
    rng = np.random.default_rng(seed)
    n_videos = 30
    video_label = rng.integers(0, 2, n_videos)
    video_label[:2] = [0, 1]
    frames = rng.integers(1, 9, n_videos)
    # shuffled frame order, so grouping cannot rely on contiguous rows
    vids = np.repeat([f"src{v % 3}/{v:03d}" for v in range(n_videos)], frames)
    labels = np.repeat(video_label, frames)
    scores = rng.random(labels.size)
    perm = rng.permutation(labels.size)
    vids, labels, scores = vids[perm], labels[perm], scores[perm]

    ids, v_labels, v_scores = video_scores(vids.tolist(), labels, scores)
    expected = {v: (labels[vids == v][0], scores[vids == v].mean()) for v in set(vids.tolist())}
    assert sorted(ids) == sorted(expected)
    for v, y, s in zip(ids, v_labels, v_scores, strict=True):
        assert y == expected[v][0]
        assert s == pytest.approx(expected[v][1])

    m = detection_metrics(vids.tolist(), labels, scores)
    ref_labels = np.array([expected[v][0] for v in ids])
    ref_scores = np.array([expected[v][1] for v in ids])
    assert m["video_auc"] == pytest.approx(roc_auc_score(ref_labels, ref_scores))
    assert m["video_ap"] == pytest.approx(average_precision_score(ref_labels, ref_scores))
    assert m["frame_auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert m["video_bacc"] == pytest.approx(
        balanced_accuracy_score(ref_labels, ref_scores >= 0.5), abs=1e-12
    )
    assert m["frame_f1"] == pytest.approx(f1_score(labels, scores >= 0.5, average="macro"))
    assert m["n_videos"] == n_videos and m["n_frames"] == labels.size
    # every metric carries its level; no metric has a second, unlevelled name
    names = {"auc", "eer", "ap", "acc", "map", "bacc", "f1"}
    assert set(m) == {f"{lv}_{k}" for lv in ("frame", "video") for k in names} | {
        "n_frames",
        "n_videos",
    }

    med = detection_metrics(vids.tolist(), labels, scores, aggregate="median")
    med_scores = np.array([np.median(scores[vids == v]) for v in ids])
    _, _, v_median = video_scores(vids.tolist(), labels, scores, aggregate="median")
    np.testing.assert_allclose(v_median, med_scores, rtol=0, atol=1e-15)
    assert med["video_auc"] == pytest.approx(roc_auc_score(ref_labels, med_scores))
    assert med["video_map"] == pytest.approx(
        average_precision_score(
            np.eye(2)[ref_labels], np.stack([1 - med_scores, med_scores], 1), average="macro"
        )
    )
    assert med["frame_auc"] == m["frame_auc"]  # the aggregate changes only the video level


def test_unknown_video_aggregate_names_the_option():
    with pytest.raises(ValueError, match="eval.aggregate"):
        video_scores(["a", "b"], np.array([0, 1]), np.array([0.2, 0.4]), aggregate="max")


def test_video_with_mixed_labels_is_an_error():
    with pytest.raises(ValueError, match="real/001"):
        video_scores(["real/001", "real/001"], np.array([0, 1]), np.array([0.2, 0.4]))
