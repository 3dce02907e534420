"""The offline demo: deterministic generation, honest labels and splits, local manipulations,
the reader's errors, and the tiny backbone's pretraining script."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dfd.data.demo import DATASETS, TARGETS, DemoSpec, demo_index, ensure_demo
from dfd.data.demo.manipulate import BlendParams, blend, eye_band_mask, soft_mask
from dfd.data.demo.render import jitter_pose, render_face, sample_identity
from dfd.data.index import FAKE, REAL
from dfd.data.readers import DataError

# Small enough to build twice in about a second, big enough for a val split.
SMALL = DemoSpec(
    frames_per_video=2, source_identities=10, target_identities=4, heldout_identities=2
)
ASSET = Path(__file__).resolve().parents[1] / "dfd" / "assets" / "tiny_clip_demo"


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    ensure_demo(root, SMALL)
    return root


def _read(path: str | Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


def test_build_is_deterministic_and_cached(tmp_path: Path, demo_root: Path) -> None:
    first = ensure_demo(demo_root, SMALL)
    second = ensure_demo(tmp_path, SMALL)
    assert first.name == second.name
    assert (first / "manifest.csv").read_bytes() == (second / "manifest.csv").read_bytes()
    with open(first / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows[:: max(1, len(rows) // 25)]:
        assert np.array_equal(_read(first / row["path"]), _read(second / row["path"])), row["path"]
    # a second call reuses the folder and no temporary build folder is left behind
    assert ensure_demo(tmp_path, SMALL) == second
    assert [p.name for p in tmp_path.iterdir()] == [second.name]


def test_a_different_spec_gets_its_own_folder() -> None:
    assert DemoSpec(seed=1).key() != DemoSpec().key()
    assert SMALL.key() != DemoSpec().key()


def test_labels_splits_and_video_ids(demo_root: Path) -> None:
    for dataset in DATASETS:
        splits = ["train", "val"] if dataset == "source" else ["test"]
        index = demo_index(demo_root, dataset, splits, spec=SMALL)
        assert index.name == dataset
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in index.paths)
        labels = index.video_labels()  # raises if a video mixes labels
        counts = Counter(labels.values())
        assert counts[REAL] == counts[FAKE] > 0, dataset
        assert all(
            v.split("/")[0] == s for v, s in zip(index.video_ids, index.sources, strict=True)
        )
        assert Counter(index.video_ids) == Counter(dict.fromkeys(labels, SMALL.frames_per_video))
        fake_sources = {s for s, y in zip(index.sources, index.labels, strict=True) if y == FAKE}
        assert "real" not in fake_sources
    train = demo_index(demo_root, "source", "train", spec=SMALL)
    val = demo_index(demo_root, "source", "val", spec=SMALL)
    assert not set(train.video_ids) & set(val.video_ids)
    # a real video and its fake share an identity: they must sit in the same split
    identity = lambda vid: vid.split("/")[1][:3]  # noqa: E731
    assert not {identity(v) for v in train.video_ids} & {identity(v) for v in val.video_ids}
    assert len(set(val.video_ids)) == 2 * SMALL.source_identities // SMALL.val_every


def test_held_out_target_videos_are_new_identities_and_change_no_test_video(
    tmp_path: Path, demo_root: Path
) -> None:
    without = replace(SMALL, heldout_identities=0)
    bare = ensure_demo(tmp_path, without)
    full = ensure_demo(demo_root, SMALL)
    for dataset in TARGETS:
        test = demo_index(demo_root, dataset, "test", spec=SMALL)
        alone = demo_index(tmp_path, dataset, "test", spec=without)
        # the same test videos, frame for frame and pixel for pixel
        rel = [str(Path(p).relative_to(full)) for p in test.paths]
        assert rel == [str(Path(p).relative_to(bare)) for p in alone.paths]
        assert test.video_ids == alone.video_ids and test.source_videos == alone.source_videos
        for r in rel:
            assert np.array_equal(_read(full / r), _read(bare / r)), r
        heldout = demo_index(demo_root, dataset, "val", spec=SMALL)
        assert len(set(heldout.video_ids)) == 2 * SMALL.heldout_identities
        assert not set(heldout.video_ids) & set(test.video_ids)
        assert Counter(heldout.video_labels().values()) == {REAL: 2, FAKE: 2}
    with pytest.raises(DataError, match=r"'mouth': no frames found"):
        demo_index(tmp_path, "mouth", "val", spec=without)


def test_default_spec_matches_the_documented_sizes() -> None:
    spec = DemoSpec()
    assert 2 * spec.source_identities == 300 and 2 * spec.target_identities == 100
    assert spec.frames_per_video == 4 and spec.val_every == 5
    assert len(TARGETS) == 4


def test_blend_changes_only_the_masked_region() -> None:
    rng = np.random.default_rng(0)
    identity = sample_identity(rng)
    pose = jitter_pose(identity.pose, rng)
    frame = render_face(identity, pose, rng)
    params = BlendParams(
        gain=np.array([1.3, 0.7, 1.0]), offset=np.array([0.1, -0.1, 0.0]), rotation=0.05, scale=1.04
    )
    for mask in (soft_mask(pose, "inner", sigma=2.0), eye_band_mask(pose, identity.eye_dy)):
        fake = blend(frame, frame, mask, params, pose)
        diff = np.abs(fake - frame).max(axis=-1)
        assert np.all(diff[mask == 0] == 0)
        assert diff[mask > 0.99].mean() > 0.05


def test_written_fakes_differ_from_their_real_frame_near_the_face_only(demo_root: Path) -> None:
    folder = ensure_demo(demo_root, SMALL)
    for dataset, source, video in [
        ("source", "inner", "000"),
        ("mouth", "mouth", "000"),
        ("eyes", "eyes", "000"),
        ("swap", "swap", "000_001"),
    ]:
        real = _read(folder / dataset / "real" / "000" / "000.png")
        fake = _read(folder / dataset / source / video / "000.png")
        changed = np.abs(fake - real).max(axis=-1) > 0
        assert (np.abs(fake - real).max(axis=-1) > 10).sum() >= 20, dataset
        # the face sits in the middle; a 6-pixel frame around it is background
        border = np.ones_like(changed)
        border[6:-6, 6:-6] = False
        assert not changed[border].any(), dataset
        assert changed.mean() < 0.5, dataset


def test_demo_index_rejects_unknown_names(demo_root: Path) -> None:
    # the same errors as every reader of the family
    with pytest.raises(DataError, match=r"'nope'.*source.*mouth"):
        demo_index(demo_root, "nope", "test", spec=SMALL)
    with pytest.raises(DataError, match=r"'source'.*unknown split.*'test'.*train.*val"):
        demo_index(demo_root, "source", "test", spec=SMALL)
    with pytest.raises(DataError, match=r"'mouth'.*unknown split.*'train'.*test"):
        demo_index(demo_root, "mouth", ["train"], spec=SMALL)
    with pytest.raises(DataError, match="on_error"):
        demo_index(demo_root, "mouth", "test", on_error="ignore", spec=SMALL)


def test_demo_index_reports_missing_frames(tmp_path: Path) -> None:
    folder = ensure_demo(tmp_path, SMALL)
    # a test video's frame (a target's folder also holds its held-out `val` videos)
    victim = next((folder / "eyes" / "real" / "000").glob("*.png"))
    victim.unlink()
    with pytest.raises(DataError, match=r"manifest.csv line \d+.*missing.*regenerate"):
        demo_index(tmp_path, "eyes", "test", spec=SMALL)
    index = demo_index(tmp_path, "eyes", "test", on_error="skip", spec=SMALL)
    assert index.skipped == {"missing_file": 1}
    assert str(victim) not in index.paths


def test_demo_fakes_carry_their_source_video(demo_root: Path) -> None:
    for dataset in DATASETS:
        splits = ["train", "val"] if dataset == "source" else ["test"]
        index = demo_index(demo_root, dataset, splits, spec=SMALL)
        videos = set(index.video_ids)
        for vid, label, src in zip(index.video_ids, index.labels, index.source_videos, strict=True):
            if label == REAL:
                assert src == ""
            else:
                # the identity's real video: inner/003 and swap/003_004 both come from real/003
                assert src == f"real/{vid.split('/')[1][:3]}" and src in videos, (dataset, vid)


def test_pretrain_script_writes_a_loadable_clip(tmp_path: Path) -> None:
    from transformers import CLIPImageProcessor, CLIPVisionModel

    from dfd.data.demo.pretext import to_pixel_values
    from dfd.data.demo.pretrain import main

    out = tmp_path / "tiny_clip"
    result = main(["--out", str(out), "--images", "64", "--heldout", "8", "--epochs", "1"])
    assert np.isfinite(result.train_loss)
    assert (out / "README.md").read_text().count("--images 64") == 1
    model = CLIPVisionModel.from_pretrained(out)
    processor = CLIPImageProcessor.from_pretrained(out)
    image = np.asarray(Image.open(demo_index_path(tmp_path)))
    pixels = processor(images=[image], return_tensors="pt")["pixel_values"]
    # the saved processor is the pipeline the backbone was pretrained with
    assert np.allclose(pixels.numpy(), to_pixel_values(image[None]).numpy(), atol=1e-4)
    feature = model(pixel_values=pixels).pooler_output
    assert feature.shape == (1, 64)


def demo_index_path(tmp_path: Path) -> Path:
    """One rendered frame to push through the saved image processor."""
    return Path(demo_index(tmp_path / "demo", "source", "val", spec=SMALL).paths[0])


def test_shipped_backbone_loads() -> None:
    from transformers import CLIPVisionModel

    model = CLIPVisionModel.from_pretrained(ASSET)
    assert model.config.hidden_size == 64 and model.config.num_hidden_layers == 4
    assert (ASSET / "preprocessor_config.json").is_file() and (ASSET / "README.md").is_file()
