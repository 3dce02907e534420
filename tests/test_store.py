"""The pre-decoded frame store: same items as the files, rebuilt when a frame changes, safe to share."""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import threading
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf, open_dict
from PIL import Image

from dfd.data import perturb
from dfd.data.augment import HorizontalFlip, JpegCompression, RandomAffine
from dfd.data.frames import FrameDataset, FrameTransform, UnreadableFrameError
from dfd.data.index import FAKE, REAL, FrameIndex
from dfd.data.loading import make_loader
from dfd.data.perturb import PerturbedTransform
from dfd.data.spec import InputSpec
from dfd.data.store import (
    META_FILE,
    FrameStore,
    FrameStoreError,
    StoreOptions,
    check_store,
    open_store,
    store_for,
)
from dfd.evaluate import _store_options
from dfd.train import train
from tests.test_bad_frames import _cfg

SPEC = InputSpec(size=(28, 28), resample=3, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
# DINOv2's geometry in small: shortest edge to 32, then the centre 28x28
CROP_SPEC = InputSpec((28, 28), 3, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3), resize_to=32)


def _frames(folder: Path, n: int = 6, side: int | tuple[int, int] = 40) -> FrameIndex:
    """`n` RGB PNGs of `side` pixels (or (height, width)), one of them empty (unreadable)."""
    shape = (side, side) if isinstance(side, int) else side
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    Path(paths[2]).write_bytes(b"")
    return FrameIndex(
        name="tiny",
        paths=paths,
        labels=np.array([REAL, FAKE] * (n // 2), dtype=np.int64),
        video_ids=[f"v{i}" for i in range(n)],
        sources=["real", "fake"] * (n // 2),
        splits=["test"] * n,
    )


def _items(dataset: FrameDataset) -> list[dict]:
    return [dataset[i] for i in range(len(dataset))]


@pytest.mark.parametrize(
    ("augmented", "spec", "side", "form"),
    [
        (False, SPEC, 40, "resized-short28-bicubic-pillow"),
        # a non-square frame under a resize-then-crop rule: the store keeps the resize, the
        # crop is taken at load, so a stored frame is never resized twice
        (False, CROP_SPEC, (40, 57), "resized-short32-bicubic-pillow"),
        (True, SPEC, 40, "decoded"),
    ],
    ids=["eval", "eval_crop", "train"],
)
def test_items_from_the_store_equal_those_from_the_files(tmp_path, augmented, spec, side, form):
    index = _frames(tmp_path / "frames", side=side)
    augmentations = {
        "flip": HorizontalFlip(0.5),
        "affine": RandomAffine(10, (0.1, 0.1), (0.9, 1.1)),
        "jpeg": JpegCompression((40, 100)),
    }
    transform = FrameTransform(spec, augmentations if augmented else None)
    store = open_store(index, transform, tmp_path / "stores")
    assert store.meta["form"] == form
    assert store.meta["unreadable"] == 1
    for epoch in (0, 3):  # augmentations draw per (seed, epoch, frame) either way
        files = FrameDataset(index, transform, seed=7, on_error="skip")
        stored = FrameDataset(index, transform, seed=7, on_error="skip", frames=store.read)
        files.set_epoch(epoch)
        stored.set_epoch(epoch)
        for a, b in zip(_items(files), _items(stored), strict=True):
            assert a.keys() == b.keys()
            assert torch.equal(a["pixel_values"], b["pixel_values"])
            assert a["label"] == b["label"] and a["index"] == b["index"]
    # an unreadable frame fails the same way, naming the file and the fix
    with pytest.raises(UnreadableFrameError) as from_files:
        FrameDataset(index, transform)[2]
    with pytest.raises(UnreadableFrameError) as from_store:
        FrameDataset(index, transform, frames=store.read)[2]
    assert str(from_store.value) == str(from_files.value)
    assert index.paths[2] in str(from_store.value)


def test_a_store_is_reused_until_a_frame_changes(tmp_path):
    index = _frames(tmp_path / "frames")
    transform = FrameTransform(SPEC)
    first = open_store(index, transform, tmp_path / "stores")
    again = open_store(index, transform, tmp_path / "stores")
    assert again.folder == first.folder
    assert again.meta == first.meta  # opened, not rebuilt

    # re-preprocessing rewrites a frame: new content, new store, new pixels
    img = np.full((40, 40, 3), 200, dtype=np.uint8)
    Image.fromarray(img).save(index.paths[0])
    st = os.stat(index.paths[0])
    os.utime(index.paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    changed = open_store(index, transform, tmp_path / "stores")
    assert changed.folder != first.folder
    assert (changed.read(0) == 200).all()
    assert not (first.read(0) == 200).all()


def test_a_build_killed_part_way_leaves_nothing_that_is_used_or_kept(tmp_path):
    index = _frames(tmp_path / "frames")
    transform = FrameTransform(SPEC)
    store = open_store(index, transform, tmp_path / "stores")
    expected = store.read(1).copy()
    shutil.rmtree(store.folder)  # as if never completed: only the half-written folder is left
    dead_pid = 2**22 + 12345  # above Linux's pid_max: no such process
    half = store.folder.with_name(
        f".{store.folder.name}.building-{socket.gethostname()}-{dead_pid}"
    )
    half.mkdir()
    (half / "frames-00000.arrow").write_bytes(b"partial")
    store.folder.mkdir()  # and a target folder without its metadata file
    (store.folder / "frames-00000.arrow").write_bytes(b"partial")
    rebuilt = open_store(index, transform, tmp_path / "stores")
    assert rebuilt.folder == store.folder and not half.exists()
    assert np.array_equal(rebuilt.read(1), expected)


def test_a_store_cut_short_or_for_another_index_is_refused(tmp_path):
    index = _frames(tmp_path / "frames")
    transform = FrameTransform(SPEC)
    store = open_store(index, transform, tmp_path / "stores")
    with pytest.raises(FrameStoreError, match="this set needs 5 .* frames"):
        make_loader(index.select(np.arange(6) < 5), transform, 2, 0, False, 0, frames=store)
    with pytest.raises(FrameStoreError, match="decoded frames"):
        check_store(store, index, FrameTransform(SPEC, {"flip": HorizontalFlip(0.5)}))
    shard = store.shards[0]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(FrameStoreError, match="delete the folder"):
        FrameStore(store.folder).read(0)


def test_reordering_the_index_makes_another_store(tmp_path):
    index = _frames(tmp_path / "frames")
    transform = FrameTransform(SPEC)
    first = open_store(index, transform, tmp_path / "stores")
    order = np.arange(len(index))[::-1]
    reversed_index = FrameIndex(
        name=index.name,
        paths=[index.paths[i] for i in order],
        labels=index.labels[order],
        video_ids=[index.video_ids[i] for i in order],
        sources=[index.sources[i] for i in order],
        splits=[index.splits[i] for i in order],
    )
    second = open_store(reversed_index, transform, tmp_path / "stores")
    assert second.folder != first.folder
    assert np.array_equal(second.read(0), first.read(len(index) - 1))


def test_concurrent_builders_make_one_store(tmp_path):
    index = _frames(tmp_path / "frames", n=8)
    transform = FrameTransform(SPEC)
    stores, errors = [], []

    def build():
        try:
            stores.append(open_store(index, transform, tmp_path / "stores"))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({s.folder for s in stores}) == 1
    built = [p for p in (tmp_path / "stores").iterdir() if not p.name.startswith(".")]
    assert built == [stores[0].folder]  # no half-built folder left behind


def test_a_store_pickles_for_worker_processes_and_loads_through_a_loader(tmp_path):
    index = _frames(tmp_path / "frames")
    transform = FrameTransform(SPEC)
    store = open_store(index, transform, tmp_path / "stores")
    store.read(0)  # opened here; the copy reopens its own mapping
    copy = pickle.loads(pickle.dumps(store))
    assert np.array_equal(copy.read(5), store.read(5))
    batches = list(
        make_loader(index, transform, 4, 0, train=False, seed=0, on_error="skip", frames=store)
    )
    assert [b["index"].tolist() for b in batches] == [[0, 1, 3], [4, 5]]
    assert [b["unreadable"].tolist() for b in batches] == [[2], []]
    # a worker process (fork) reads the same pixels as decoding the files
    from_files = make_loader(index, transform, 4, 1, train=False, seed=0, on_error="skip")
    from_store = make_loader(
        index, transform, 4, 1, train=False, seed=0, on_error="skip", frames=store
    )
    for a, b in zip(from_files, from_store, strict=True):
        assert torch.equal(a["pixel_values"], b["pixel_values"])
        assert torch.equal(a["unreadable"], b["unreadable"])


def test_a_store_that_would_not_fit_is_refused_up_front(tmp_path, monkeypatch):
    index = _frames(tmp_path / "frames")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(2**40, 2**40, 2**20))
    with pytest.raises(FrameStoreError, match=r"data\.store\.folder") as err:
        open_store(index, FrameTransform(SPEC), tmp_path / "stores")
    assert str(tmp_path / "stores") in str(err.value)
    assert not any(p.name.endswith(META_FILE) for p in (tmp_path / "stores").rglob("*"))


def test_store_options_name_the_roles(tmp_path):
    assert StoreOptions.from_config(None) is None
    assert StoreOptions.from_config({"roles": [], "folder": str(tmp_path)}) is None
    options = StoreOptions.from_config({"roles": ["val", "test"], "folder": str(tmp_path)})
    index = _frames(tmp_path / "frames")
    assert store_for("train", index, FrameTransform(SPEC), options) is None
    assert store_for("test", index, FrameTransform(SPEC), options) is not None
    with pytest.raises(FrameStoreError, match=r"unknown \['tets'\]"):
        StoreOptions.from_config({"roles": ["tets"], "folder": str(tmp_path)})


def test_a_damaged_store_folder_says_how_to_fix_it(tmp_path):
    index = _frames(tmp_path / "frames")
    store = open_store(index, FrameTransform(SPEC), tmp_path / "stores")
    (store.folder / META_FILE).write_text("{not json")
    with pytest.raises(FrameStoreError, match=r"delete .* rebuilt"):
        type(store)(store.folder)


def test_training_from_stores_gives_the_run_without_them(tmp_path):
    """data/store=all (train, val, test) changes where pixels come from, not the results."""
    plain_cfg, _ = _cfg(tmp_path / "plain", "skip")
    stored_cfg, _ = _cfg(tmp_path / "stored", "skip")
    with open_dict(stored_cfg):
        stored_cfg.data.store = {"roles": ["train", "val", "test"], "folder": str(tmp_path / "s")}
    plain = train(plain_cfg)
    stored = train(stored_cfg)
    assert stored == plain
    metas = [FrameStore(p).meta for p in sorted((tmp_path / "s").iterdir()) if p.is_dir()]
    assert sorted((m["dataset"], m["rows"], m["unreadable"]) for m in metas) == [
        ("cdf_v2", 8, 0),
        ("ff", 8, 0),
        ("ff", 96, 3),
    ]


def test_perturbed_targets_share_one_store_of_decoded_frames(tmp_path):
    """Robustness: every perturbation and severity reads the same decoded frames."""
    index = _frames(tmp_path / "frames")
    clean = FrameTransform(SPEC)
    perturbed = [PerturbedTransform(clean, perturb.GaussianNoise(s)) for s in (0.02, 0.08)]
    stores = [open_store(index, tf, tmp_path / "stores") for tf in perturbed]
    assert stores[0].folder == stores[1].folder and stores[0].meta["form"] == "decoded"
    for tf in perturbed:
        files = FrameDataset(index, tf, on_error="skip")
        stored = FrameDataset(index, tf, on_error="skip", frames=stores[0].read)
        for a, b in zip(_items(files), _items(stored), strict=True):
            assert torch.equal(a["pixel_values"], b["pixel_values"])


def test_evaluate_takes_its_own_store_roles_over_the_data_configs(tmp_path):
    def options(own_roles, data_roles):
        data = OmegaConf.create({"store": {"roles": data_roles, "folder": str(tmp_path / "a")}})
        own = OmegaConf.create({"store": {"roles": own_roles, "folder": str(tmp_path / "b")}})
        return _store_options(own, data)

    inherited = options(None, ["val", "test"])  # the data config's roles, evaluate's folder
    assert inherited.roles == ("test",) and inherited.folder == tmp_path / "b"
    assert options(None, ["train", "val"]) is None
    assert options(["test"], []).roles == ("test",)
    assert options([], ["test"]) is None
    with pytest.raises(FrameStoreError, match=r"store\.roles=\[test\]"):
        options(["val"], [])


def test_a_shard_edited_in_place_is_refused_naming_it(tmp_path, monkeypatch):
    from dfd.data import store as store_module

    index = _frames(tmp_path / "frames")
    transform = FrameTransform(SPEC)
    store = open_store(index, transform, tmp_path / "stores")
    shard = store.shards[0]
    data = bytearray(shard.read_bytes())
    st = shard.stat()
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # pixels of a stored frame
    shard.write_bytes(bytes(data))
    os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same time: only bytes
    monkeypatch.setattr(store_module, "_VERIFIED", set())  # a new process
    with pytest.raises(FrameStoreError) as err:
        open_store(index, transform, tmp_path / "stores")
    message = str(err.value)
    assert f"shard {shard.name} changed after it was built" in message
    assert f"delete {store.folder}" in message and "\n" not in message


def test_a_shard_swapped_from_another_dataset_is_refused_naming_it(tmp_path):
    index = _frames(tmp_path / "frames")
    other = _frames(tmp_path / "other", side=40)  # same frame count and size, another dataset
    other = FrameIndex(
        name="other",
        paths=other.paths,
        labels=other.labels,
        video_ids=other.video_ids,
        sources=other.sources,
        splits=other.splits,
    )
    transform = FrameTransform(SPEC)
    mine = open_store(index, transform, tmp_path / "stores")
    theirs = open_store(other, transform, tmp_path / "stores")
    assert mine.folder != theirs.folder and len(mine) == len(theirs)
    shutil.copy(theirs.shards[0], mine.shards[0])
    with pytest.raises(FrameStoreError) as err:
        open_store(index, transform, tmp_path / "stores")
    message = str(err.value)
    assert f"shard {mine.shards[0].name} holds frames of dataset 'other'" in message
    assert "not this store's 'tiny'" in message and f"delete {mine.folder}" in message
