"""Paired real/fake batches: on the demo and on FF++-layout fixtures every fake frame sits in its
batch beside its own source video's frame at the same position; plain shuffling; the errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from dfd.data.demo import DemoSpec, demo_index
from dfd.data.index import FAKE, REAL, FrameIndex
from dfd.data.readers import DataError, read_cdf_v2, read_deepfakebench, read_ff, read_filelist
from dfd.data.sampling import PairedBatchSampler, ShuffleBatchSampler, batch_sampler
from tests.conftest import compose_train
from tests.test_readers import frames, make_cdf, make_ff

SMALL = DemoSpec(frames_per_video=3, source_identities=10, target_identities=4)


def _frame_name(path: str) -> str:
    return Path(path).name


def assert_paired(index: FrameIndex, sampler: PairedBatchSampler, epoch: int = 0) -> list[int]:
    """Every batch is [fake, real, ...] with each real frame from the fake's own source video."""
    sampler.set_epoch(epoch)
    seen: list[int] = []
    for batch in sampler:
        assert len(batch) == sampler.batch_size or not sampler.drop_last
        for fake, real in zip(batch[::2], batch[1::2], strict=True):
            assert index.labels[fake] == FAKE and index.labels[real] == REAL
            assert index.video_ids[real] == index.source_videos[fake] != ""
            seen.append(fake)
    return seen


@pytest.fixture(scope="module")
def demo_train(tmp_path_factory) -> FrameIndex:
    return demo_index(tmp_path_factory.mktemp("demo"), "source", "train", spec=SMALL)


def test_demo_batches_pair_every_fake_with_its_source_frame(demo_train):
    index = demo_train
    sampler = PairedBatchSampler(index, batch_size=6, seed=0, drop_last=False)
    seen = assert_paired(index, sampler)
    fakes = np.flatnonzero(index.labels == FAKE)
    assert sorted(seen) == fakes.tolist()  # every fake frame exactly once an epoch
    # the demo renders fake frame k over real frame k: same file name within each pair
    for fake, real in sampler.pairs:
        assert _frame_name(index.paths[fake]) == _frame_name(index.paths[real])
    assert len(sampler) == -(-len(fakes) // 3)


def test_batches_depend_only_on_seed_and_epoch(demo_train):
    a = PairedBatchSampler(demo_train, 4, seed=1)
    b = PairedBatchSampler(demo_train, 4, seed=1)
    b.set_epoch(2)
    b.set_epoch(0)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)
    assert list(PairedBatchSampler(demo_train, 4, seed=2)) != list(b)
    assert all(len(batch) == 4 for batch in a)  # drop_last: only full batches


def test_ff_fakes_pair_with_the_target_real_video(tmp_path):
    root, splits = make_ff(tmp_path, manipulations=("DF", "F2F"))
    index = read_ff(root, splits, split="train", manipulations=["DF", "F2F"])
    sources = dict(zip(index.video_ids, index.source_videos, strict=True))
    # <target>_<source>: the fake 000_003 is drawn over the frames of real 000, 003_000 over 003
    assert sources["DF/000_003"] == "real/000" and sources["F2F/003_000"] == "real/003"
    assert sources["real/000"] == ""
    sampler = PairedBatchSampler(index, batch_size=4, seed=0, drop_last=False)
    assert sorted(assert_paired(index, sampler)) == np.flatnonzero(index.labels == FAKE).tolist()
    for fake, real in sampler.pairs:
        assert _frame_name(index.paths[fake]) == _frame_name(index.paths[real])


def test_a_frame_missing_from_the_real_video_pairs_at_the_same_relative_position(tmp_path):
    root, splits = make_ff(tmp_path, manipulations=("DF",))
    for f in (root / "real" / "000").iterdir():
        f.unlink()
    frames(root / "real" / "000", 4)
    (root / "real" / "000" / "001.png").unlink()  # real 000 keeps 000, 002, 003
    frames(root / "DF" / "000_003", 4)
    index = read_ff(root, splits, split="train", manipulations=["DF"])
    sampler = PairedBatchSampler(index, batch_size=2, seed=0)
    partner = {
        _frame_name(index.paths[f]): _frame_name(index.paths[r])
        for f, r in sampler.pairs
        if index.video_ids[f] == "DF/000_003"
    }
    # 000, 002, 003 match by name; 001 (rank 1 of 4) takes rank 1 of the real's 3 frames
    assert partner == {
        "000.png": "000.png",
        "001.png": "002.png",
        "002.png": "002.png",
        "003.png": "003.png",
    }


def test_deepfakebench_json_and_file_lists_link_ff_naming(tmp_path):
    tree: dict = {}
    for key, folder, videos in [
        ("FF-real", "youtube", ["000", "003"]),
        ("FF-DF", "Deepfakes", ["000_003", "003_000"]),
    ]:
        node = tree.setdefault(key, {}).setdefault("train", {}).setdefault("c23", {})
        for v in videos:
            paths = frames(tmp_path / "rgb" / folder / v)
            node[v] = {
                "label": key,
                "frames": [str(p.relative_to(tmp_path / "rgb")) for p in paths],
            }
    (tmp_path / "ff.json").write_text(json.dumps({"FaceForensics++": tree}))
    index = read_deepfakebench(tmp_path / "ff.json", tmp_path / "rgb", split="train")
    sources = dict(zip(index.video_ids, index.source_videos, strict=True))
    assert sources == {
        "FF-real/000": "",
        "FF-real/003": "",
        "FF-DF/000_003": "FF-real/000",
        "FF-DF/003_000": "FF-real/003",
    }
    assert_paired(index, PairedBatchSampler(index, 2, seed=0))

    lines = []
    for source, v in [("real", "000"), ("real", "003"), ("NT", "000_003"), ("NT", "003_000")]:
        lines += [
            str(p.relative_to(tmp_path)) for p in frames(tmp_path / "datasets/FF" / source / v)
        ]
    (tmp_path / "train.txt").write_text("\n".join(lines))
    listed = read_filelist({"train": "train.txt"}, tmp_path, split="train")
    sources = dict(zip(listed.video_ids, listed.source_videos, strict=True))
    assert sources["NT/000_003"] == "real/000" and sources["NT/003_000"] == "real/003"
    assert_paired(listed, PairedBatchSampler(listed, 2, seed=0))


def test_datasets_without_a_link_or_with_absent_sources_fail_clearly(tmp_path):
    root, test_list = make_cdf(tmp_path)
    cdf = read_cdf_v2(root, test_list)
    with pytest.raises(
        DataError, match=r"'cdf_v2'.*no source video recorded.*data/sampler=shuffle"
    ):
        PairedBatchSampler(cdf, 2, seed=0)

    root, splits = make_ff(tmp_path / "ff", manipulations=("DF",))
    fakes_only = read_ff(root, splits, split="train", manipulations=["DF"], include_real=False)
    with pytest.raises(DataError, match="source video not in this index"):
        PairedBatchSampler(fakes_only, 2, seed=0)
    for f in (root / "real" / "001").iterdir():
        f.unlink()
    partial = read_ff(root, splits, split="train", manipulations=["DF"], on_error="skip")
    with pytest.raises(DataError, match=r"2 of 8 fake frames.*DF/001_002.*unpaired=drop"):
        PairedBatchSampler(partial, 2, seed=0)
    dropped = PairedBatchSampler(partial, 2, seed=0, unpaired="drop")
    assert "DF/001_002" not in {partial.video_ids[f] for f, _ in dropped.pairs}
    assert_paired(partial, dropped)
    with pytest.raises(DataError, match="even trainer.batch_size.*trainer.batch_size=4"):
        PairedBatchSampler(partial, 3, seed=0)


def test_shuffle_sampler_draws_every_frame_once_an_epoch(demo_train):
    sampler = ShuffleBatchSampler(demo_train, 7, seed=0, drop_last=False)
    rows = [i for batch in sampler for i in batch]
    assert sorted(rows) == list(range(len(demo_train))) and rows != sorted(rows)
    full = ShuffleBatchSampler(demo_train, 7, seed=0)
    assert len(full) == len(demo_train) // 7 and all(len(b) == 7 for b in full)


def test_config_options_build_their_sampler(demo_train):
    shuffle = compose_train([]).data.sampler
    paired = compose_train(["data/sampler=paired", "data.sampler.unpaired=drop"]).data.sampler
    assert isinstance(batch_sampler(shuffle, demo_train, 4, 0), ShuffleBatchSampler)
    built = batch_sampler(paired, demo_train, 4, 0)
    assert isinstance(built, PairedBatchSampler)
    assert_paired(demo_train, built)
    experiment = compose_train(["experiment=ablation_paired"])
    assert experiment.data.sampler._target_.endswith("PairedBatchSampler")


def test_make_loader_draws_its_training_batches_from_the_configured_sampler(demo_train):
    # the batches of epoch e depend on (seed, e) only: a fresh loader at epoch 3 (a resumed
    # run) sees exactly what a loader that ran epochs 0-2 sees
    from dfd.data.frames import FrameTransform
    from dfd.data.loading import make_loader, set_loader_epoch
    from dfd.data.spec import InputSpec

    spec = InputSpec(size=(8, 8), resample=3, mean=(0.5,) * 3, std=(0.5,) * 3)
    paired = OmegaConf.create(
        {"_target_": "dfd.data.sampling.PairedBatchSampler", "_partial_": True}
    )

    def rows(loader, epoch):
        set_loader_epoch(loader, epoch)
        return [list(b) for b in loader.epoch_sampler]

    for sampler in (None, paired):
        used = make_loader(demo_train, FrameTransform(spec), 8, 0, True, 5, sampler=sampler)
        for epoch in range(3):
            rows(used, epoch)
        fresh = make_loader(demo_train, FrameTransform(spec), 8, 0, True, 5, sampler=sampler)
        assert rows(used, 3) == rows(fresh, 3) != rows(fresh, 4)
    assert isinstance(used.epoch_sampler, PairedBatchSampler)
    assert_paired(demo_train, used.epoch_sampler)
    (batch,) = [next(iter(used))]
    assert batch["index"].tolist() == list(next(iter(used.epoch_sampler)))
