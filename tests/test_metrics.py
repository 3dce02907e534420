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
    eer_threshold,
    equal_error_rate,
    macro_f1,
    mean_average_precision,
    pooled_metrics,
    roc_auc,
    tpr_at_fpr,
    val_eer_thresholds,
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
    names |= {"tpr_at_1pct_fpr", "tpr_at_5pct_fpr", "eer_threshold"}
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


def _random_scores(seed, ties):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 600))
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    scores = rng.random(n) + 0.4 * labels
    if ties:
        scores = np.round(scores, 1)  # many equal scores, vertical and diagonal ROC segments
    return labels, scores


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("level", [0.01, 0.05, 0.2])
def test_tpr_at_fpr_is_gends_interpolated_roc(seed, ties, level):
    labels, scores = _random_scores(seed, ties)
    got = tpr_at_fpr(labels, scores, level)
    # GenD (src/metrics.py calculate_tpr_at_fpr): np.interp on scikit-learn's ROC; dropping the
    # collinear points (its default) changes nothing
    for drop in (True, False):
        fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=drop)
        assert got == pytest.approx(np.interp(level, fpr, tpr), abs=1e-12)
    # never below the step value: the highest TPR whose FPR does not exceed the level
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    step = tpr[fpr <= level].max()
    assert got >= step - 1e-12
    # and never above the next ROC point's TPR
    assert got <= tpr[fpr > level].min() + 1e-12 if (fpr > level).any() else got == 1.0


def test_tpr_at_an_fpr_the_roc_reaches_is_the_top_of_its_vertical_segment():
    # 100 reals, 10 fakes: 5 fakes on top, then one real (FPR 0.01), then 4 tied fakes, the
    # other reals, and one fake below them all. The ROC goes up at FPR 0 to TPR 0.5, right to
    # FPR 0.01, up at FPR 0.01 to 0.9, right to FPR 1 and up to 1
    labels = np.array([1] * 5 + [0] + [1] * 4 + [0] * 99 + [1])
    scores = np.array([0.99] * 5 + [0.95] + [0.9] * 4 + list(np.linspace(0.1, 0.8, 99)) + [0.01])
    assert tpr_at_fpr(labels, scores, 0.01) == pytest.approx(0.9)
    fpr, tpr, _ = roc_curve(labels, scores)
    assert np.interp(0.01, fpr, tpr) == pytest.approx(0.9)
    assert tpr_at_fpr(labels, scores, 0.005) == pytest.approx(0.5)
    # a diagonal segment (a real and a fake tied) is interpolated: half way up it
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.5, 0.5, 0.1])
    assert tpr_at_fpr(labels, scores, 0.25) == pytest.approx(0.75)


def _operating_point(labels, scores, threshold):
    pred = scores >= threshold
    fpr = np.sum(pred & (labels == 0)) / np.sum(labels == 0)
    tpr = np.sum(pred & (labels == 1)) / np.sum(labels == 1)
    return fpr, tpr


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("ties", [False, True])
def test_eer_threshold_interpolates_scikit_learns_thresholds_at_the_eer(seed, ties):
    labels, scores = _random_scores(seed, ties)
    t = eer_threshold(labels, scores)
    fpr, tpr, thr = roc_curve(labels, scores, drop_intermediate=False)
    eer = _sklearn_eer(labels, scores)
    # the segment that holds the EER: its lower end has FNR > FPR, its upper end FNR <= FPR
    k = int(np.flatnonzero((1 - tpr) - fpr <= 0)[0])
    assert fpr[k - 1] <= eer <= fpr[k]
    assert np.isfinite(t)
    if (1 - tpr[k]) == fpr[k]:
        assert t == thr[k]  # the EER is a ROC point: its threshold
    elif k >= 2:
        assert thr[k] < t <= thr[k - 1]
        if fpr[k] > fpr[k - 1]:
            # GenD's interp1d(fpr, thresholds)(eer), on the segment it is defined on
            assert t == pytest.approx(np.interp(eer, fpr[k - 1 : k + 1], thr[k - 1 : k + 1]))
    # predicting fake at p >= t operates at one of the segment's two ROC points
    point = _operating_point(labels, scores, t)
    assert point in {(fpr[k - 1], tpr[k - 1]), (fpr[k], tpr[k])}


def test_eer_threshold_on_the_first_segment_is_just_above_the_highest_score():
    # the top score holds one fake and two reals: FNR <= FPR already at the first ROC point
    labels = np.array([1, 0, 0, 1, 0])
    scores = np.array([0.9, 0.9, 0.9, 0.2, 0.1])
    t = eer_threshold(labels, scores)
    assert t == np.nextafter(0.9, 1.0)
    assert _operating_point(labels, scores, t) == (0.0, 0.0)
    assert np.isnan(eer_threshold(np.zeros(4, int), np.random.rand(4)))


@pytest.mark.parametrize("seed", range(4))
def test_accuracy_at_the_val_eer_threshold_is_the_accuracy_at_that_threshold(seed):
    val_labels, val_scores = _random_scores(seed, ties=True)
    t_frame = eer_threshold(val_labels, val_scores)
    rng = np.random.default_rng(100 + seed)
    vids = np.repeat([f"v{i:02d}" for i in range(40)], 3)
    labels = np.repeat(np.arange(40) % 2, 3)
    scores = rng.random(labels.size) * 0.8 + 0.3 * labels
    thresholds = {"frame": t_frame, "video": 0.55}
    m = detection_metrics(vids.tolist(), labels, scores, val_thresholds=thresholds)
    assert m["frame_acc_at_val_eer"] == pytest.approx(accuracy_score(labels, scores >= t_frame))
    ids, v_labels, v_scores = video_scores(vids.tolist(), labels, scores)
    assert m["video_acc_at_val_eer"] == pytest.approx(accuracy_score(v_labels, v_scores >= 0.55))
    # the source's own threshold, read back from its metrics
    val = detection_metrics([f"s{i}" for i in range(val_labels.size)], val_labels, val_scores)
    assert val_eer_thresholds(val) == {
        "frame": val["frame_eer_threshold"],
        "video": val["video_eer_threshold"],
    }
    assert val["frame_eer_threshold"] == t_frame
    assert "frame_acc_at_val_eer" not in val  # a set has it only given a selection threshold


def test_pooled_metrics_keep_each_targets_videos_apart():
    rng = np.random.default_rng(0)
    sets, ref_labels, ref_scores = {}, [], []
    for name, shift in (("mouth", 0.1), ("swap", 0.6)):
        # the same video ids in both targets: they are different videos
        vids = np.repeat([f"{'real' if v % 2 == 0 else 'fake'}/{v:03d}" for v in range(20)], 3)
        labels = np.repeat(np.arange(20) % 2, 3)
        scores = rng.random(labels.size) + shift * labels
        sets[name] = (vids.tolist(), labels, scores)
        ids, v_labels, v_scores = video_scores(vids.tolist(), labels, scores)
        ref_labels.append(v_labels)
        ref_scores.append(v_scores)
    pooled = pooled_metrics(sets, val_thresholds={"video": 0.6})
    assert pooled["n_videos"] == 40 and pooled["n_frames"] == 120
    assert pooled["video_auc"] == pytest.approx(
        roc_auc_score(np.concatenate(ref_labels), np.concatenate(ref_scores)), abs=1e-12
    )
    frame_labels = np.concatenate([s[1] for s in sets.values()])
    frame_scores = np.concatenate([s[2] for s in sets.values()])
    assert pooled["frame_auc"] == pytest.approx(roc_auc_score(frame_labels, frame_scores))
    assert pooled["video_acc_at_val_eer"] == pytest.approx(
        accuracy_score(np.concatenate(ref_labels), np.concatenate(ref_scores) >= 0.6)
    )
    assert "frame_acc_at_val_eer" not in pooled
