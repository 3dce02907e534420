"""Protocol rules of the data layer: frame sampling, video aggregation and split disjointness.

Each case is built so that the plausible wrong rule gives another, asserted answer: frame
counts where rounding, truncating and "the first k" pick different frames; video scores
whose mean, median, max, min and first frame rank the videos differently; FF++ split files
whose pairs are not in id order, so a reader that split by anything but the files would
put videos elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate

from dfd.data.index import FAKE, REAL, FrameIndex
from dfd.data.readers import read_ff
from dfd.scoring.metrics import detection_metrics, roc_auc, video_scores
from tests.conftest import compose_train

# --------------------------------------------------------------------- frame sampling


def video_index(lengths: dict[str, int], order: np.ndarray | None = None) -> FrameIndex:
    """One row per frame ``<video>/<NNN>.png``; `order` permutes the rows (default: frame order)."""
    rows = [
        {
            "path": f"/frames/{video}/{i:03d}.png",
            "label": REAL if video.startswith("real") else FAKE,
            "video_id": video,
            "source": video.split("/")[0],
            "split": "test",
        }
        for video, n in lengths.items()
        for i in range(n)
    ]
    if order is not None:
        rows = [rows[i] for i in order]
    return FrameIndex.from_rows("sampling", rows)


def kept_positions(index: FrameIndex, video: str) -> list[int]:
    """Frame numbers of `video` in the index, in row order."""
    return [
        int(Path(p).stem) for p, v in zip(index.paths, index.video_ids, strict=True) if v == video
    ]


@pytest.mark.parametrize(
    ("n", "k", "expected"),
    [
        (10, 4, [0, 3, 6, 9]),
        (6, 4, [0, 2, 3, 5]),  # truncating gives 0, 1, 3, 5; the first k 0, 1, 2, 3
        (5, 4, [0, 1, 3, 4]),  # truncating gives 0, 1, 2, 4
        (9, 2, [0, 8]),  # the first and the last frame
        (7, 1, [0]),
        (4, 4, [0, 1, 2, 3]),  # as many frames as the limit: all
        (3, 5, [0, 1, 2]),  # shorter than the limit: all, none repeated
        (1, 32, [0]),
    ],
)
def test_frames_per_video_keeps_rounded_linspace_positions(n, k, expected):
    index = video_index({"fake/a": n})
    assert kept_positions(index.frames_per_video(k), "fake/a") == expected


def test_frames_per_video_is_linspace_rounded_for_a_long_video():
    # the protocol's 32 frames of a 300-frame video: rounded, not truncated (19 positions differ)
    expected = np.linspace(0, 299, 32).round().astype(int).tolist()
    assert expected[:4] == [0, 10, 19, 29] and expected[-1] == 299
    index = video_index({"real/long": 300})
    assert kept_positions(index.frames_per_video(32), "real/long") == expected


def test_frames_per_video_counts_positions_in_frame_order_per_video():
    lengths = {"real/a": 10, "fake/a": 6, "fake/b": 3, "real/b": 1}
    ordered = video_index(lengths)
    shuffled = video_index(lengths, np.random.default_rng(0).permutation(len(ordered)))
    expected = {"real/a": [0, 3, 6, 9], "fake/a": [0, 2, 3, 5], "fake/b": [0, 1, 2], "real/b": [0]}
    for index in (ordered, shuffled):
        kept = index.frames_per_video(4)
        for video, positions in expected.items():
            # positions count along the video's frames, whatever order the reader listed them in
            assert sorted(kept_positions(kept, video)) == positions, video
        # every other column stays with its frame
        for path, label, video, source in zip(
            kept.paths, kept.labels, kept.video_ids, kept.sources, strict=True
        ):
            assert path.startswith(f"/frames/{video}/") and source == video.split("/")[0]
            assert label == (REAL if video.startswith("real") else FAKE)
    # a reader's frame-ordered index stays in frame order
    kept = ordered.frames_per_video(4)
    assert all(kept_positions(kept, v) == p for v, p in expected.items())


def test_no_frames_per_video_limit_keeps_every_frame():
    index = video_index({"real/a": 7, "fake/a": 2})
    assert index.frames_per_video(None).paths == index.paths


# --------------------------------------------------------------------- video aggregation

# four videos whose mean, median, max, min and first-frame scores rank them differently;
# frames of one video are not contiguous rows
FRAMES = [  # (video, label, p(fake))
    ("real/A", REAL, 0.1),
    ("fake/B", FAKE, 0.3),
    ("fake/C", FAKE, 0.6),
    ("real/D", REAL, 0.25),
    ("real/A", REAL, 0.1),
    ("fake/C", FAKE, 0.0),
    ("fake/B", FAKE, 0.3),
    ("real/D", REAL, 0.25),
    ("real/A", REAL, 0.9),
    ("fake/B", FAKE, 0.3),
    ("fake/C", FAKE, 0.0),
    ("real/D", REAL, 0.25),
]


def test_video_score_is_the_mean_of_its_frames_and_one_label_per_video():
    vids = [f[0] for f in FRAMES]
    labels = np.array([f[1] for f in FRAMES])
    scores = np.array([f[2] for f in FRAMES])
    ids, v_labels, v_scores = video_scores(vids, labels, scores)
    assert ids == ["fake/B", "fake/C", "real/A", "real/D"]
    assert v_labels.tolist() == [FAKE, FAKE, REAL, REAL]
    assert v_scores == pytest.approx([0.3, 0.2, 1.1 / 3, 0.25])

    m = detection_metrics(vids, labels, scores)
    # by the mean, only B > D of the four fake/real pairs: AUC 1/4; the median or the min
    # would give 1/2, the max 1/2, the first frame 1
    assert m["video_auc"] == pytest.approx(0.25)
    alternatives = {
        "median": [0.3, 0.0, 0.1, 0.25],
        "max": [0.3, 0.6, 0.9, 0.25],
        "min": [0.3, 0.0, 0.1, 0.25],
        "first": [0.3, 0.6, 0.1, 0.25],
    }
    for name, wrong in alternatives.items():
        assert roc_auc(v_labels, np.array(wrong)) != pytest.approx(0.25), name
    assert m["n_videos"] == 4 and m["n_frames"] == len(FRAMES)
    assert m["frame_auc"] == pytest.approx(roc_auc(labels, scores))
    assert m["frame_auc"] != pytest.approx(m["video_auc"])  # the levels are never mixed


def test_a_video_has_one_label():
    with pytest.raises(ValueError, match="fake/B"):
        video_scores(["fake/B", "fake/B"], np.array([FAKE, REAL]), np.array([0.5, 0.5]))


# --------------------------------------------------------------------- splits

# official-format split files whose pairs are not in id order (ids 000-011)
FF_PAIRS = {
    "train": [["007", "002"], ["000", "010"], ["005", "011"]],
    "val": [["003", "009"]],
    "test": [["008", "001"], ["004", "006"]],
}
FF_MANIPULATIONS = ("DF", "F2F", "FS", "NT")


def write_ff(tmp: Path) -> tuple[Path, Path]:
    """FF++ split JSONs and a frame root with every real and fake video of the pairs (2 frames each)."""
    splits = tmp / "splits"
    splits.mkdir(parents=True)
    for name, pairs in FF_PAIRS.items():
        (splits / f"{name}.json").write_text(json.dumps(pairs))
    root = tmp / "ff_c23"
    for pairs in FF_PAIRS.values():
        for a, b in pairs:
            folders = [f"real/{a}", f"real/{b}"]
            folders += [f"{m}/{x}_{y}" for m in FF_MANIPULATIONS for x, y in [(a, b), (b, a)]]
            for folder in folders:
                (root / folder).mkdir(parents=True)
                for i in range(2):
                    (root / folder / f"{i:03d}.png").write_bytes(
                        b""
                    )  # the reader does not open frames
    return root, splits


def ff_expected(split: str) -> set[str]:
    """Video ids of `split` as the official files define it."""
    out = set()
    for a, b in FF_PAIRS[split]:
        out |= {f"real/{a}", f"real/{b}"}
        out |= {f"{m}/{x}_{y}" for m in FF_MANIPULATIONS for x, y in [(a, b), (b, a)]}
    return out


def identities(video_ids) -> set[str]:
    """The FF++ ids a video shows: a real video its own, a fake a_b both a and b."""
    return {i for v in video_ids for i in v.split("/")[1].split("_")}


def test_ff_splits_follow_the_official_files_and_are_disjoint_by_video_and_identity(tmp_path):
    root, splits = write_ff(tmp_path)
    cfg = compose_train(
        [
            "data=ff_cross",
            f"data.train.root={root}",
            f"data.train.splits_dir={splits}",
            f"paths.cache_dir={tmp_path / 'cache'}",
        ],
        tmp_path,
    )
    # the protocol's train and val specs, and the test split through the same reader
    read = {"train": instantiate(cfg.data.train), "val": instantiate(cfg.data.val)}
    read["test"] = read_ff(root, splits, split="test", manipulations=FF_MANIPULATIONS)
    for split, index in read.items():
        assert set(index.video_ids) == ff_expected(split), split
        assert set(index.splits) == {split}
        assert index.video_labels() == {
            v: REAL if v.startswith("real/") else FAKE for v in ff_expected(split)
        }
    for a, b in [("train", "val"), ("train", "test"), ("val", "test")]:
        assert not set(read[a].video_ids) & set(read[b].video_ids), (a, b)
        assert not identities(read[a].video_ids) & identities(read[b].video_ids), (a, b)


def test_demo_source_train_and_val_are_disjoint_by_video_and_identity(tmp_path, demo_cache):
    cfg = compose_train([f"paths.cache_dir={demo_cache}"], tmp_path)
    train, val = instantiate(cfg.data.train), instantiate(cfg.data.val)
    assert len(train) and len(val)
    assert not set(train.video_ids) & set(val.video_ids)
    identity = lambda video: video.split("/")[1][:3]  # noqa: E731  real/007 and inner/007: identity 007
    train_ids, val_ids = (
        {identity(v) for v in train.video_ids},
        {identity(v) for v in val.video_ids},
    )
    assert not train_ids & val_ids
    # each identity's real and fake video sit in the same split
    for index in (train, val):
        by_identity: dict[str, set[int]] = {}
        for video, label in index.video_labels().items():
            by_identity.setdefault(identity(video), set()).add(label)
        assert all(labels == {REAL, FAKE} for labels in by_identity.values())


def test_frame_order_compares_frame_numbers_as_numbers():
    # unpadded names (0.png ... 11.png) and videos past 999 frames keep their frame order
    from dfd.data.index import FrameIndex

    for names in ([f"{i}.png" for i in range(12)], [f"{i:03d}.png" for i in range(995, 1007)]):
        rows = [
            {
                "path": f"/d/real/v/{n}",
                "label": 0,
                "video_id": "real/v",
                "source": "real",
                "split": "test",
            }
            for n in reversed(names)
        ]
        kept = FrameIndex.from_rows("x", rows).frames_per_video(4)
        assert sorted(kept.paths, key=lambda p: int(p.rsplit("/", 1)[1][:-4])) == [
            f"/d/real/v/{names[i]}" for i in (0, 4, 7, 11)
        ]
