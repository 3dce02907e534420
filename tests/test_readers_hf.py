"""Hugging Face `datasets` targets, offline: one small dataset written by the test as parquet, as an
imagefolder (+ metadata.csv) and with save_to_disk, read with the right labels, video ids and
source videos, and evaluated through `dfd.train` as three targets."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from PIL import Image

from dfd.data.readers import DataError, read_hf
from dfd.train import train
from tests.conftest import compose_train, small_run_overrides

# (video, label, source video of a fake): 3 real and 3 fake videos of 2 frames each
VIDEOS = [
    ("r0", "real", ""),
    ("r1", "real", ""),
    ("r2", "real", ""),
    ("f0", "fake", "r0"),
    ("f1", "fake", "r1"),
    ("f2", "fake", "r2"),
]
EXPECTED = {"r0": 0, "r1": 0, "r2": 0, "f0": 1, "f1": 1, "f2": 1}


def _png(fake: bool, seed: int) -> bytes:
    img = np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    if fake:  # a visible cue, so that the classes differ
        img[8:24, 8:24] = (255, 0, 0)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _records() -> list[dict]:
    return [
        {
            "video": v,
            "label": y,
            "source_video": s,
            "frame": k,
            "png": _png(y == "fake", 10 * i + k),
        }
        for i, (v, y, s) in enumerate(VIDEOS)
        for k in range(2)
    ]


def _dataset():
    from datasets import ClassLabel, Dataset, Features, Value
    from datasets import Image as HFImage

    rows = _records()
    features = Features(
        {
            "image": HFImage(),
            "label": ClassLabel(names=["real", "fake"]),
            "video": Value("string"),
            "source_video": Value("string"),
        }
    )
    return Dataset.from_dict(
        {
            "image": [{"bytes": r["png"], "path": None} for r in rows],
            "label": [0 if r["label"] == "real" else 1 for r in rows],
            "video": [r["video"] for r in rows],
            "source_video": [r["source_video"] for r in rows],
        },
        features=features,
    )


def write_parquet(folder: Path) -> Path:
    """<folder>/data/test-00000.parquet: images embedded as bytes, a ClassLabel label."""
    (folder / "data").mkdir(parents=True)
    _dataset().to_parquet(str(folder / "data" / "test-00000.parquet"))
    return folder


def write_imagefolder(folder: Path) -> Path:
    """<folder>/test/<label>/<video>_<k>.png plus metadata.csv with string labels and videos."""
    lines = ["file_name,label,video,source_video"]
    for r in _records():
        rel = f"{r['label']}/{r['video']}_{r['frame']}.png"
        (folder / "test" / r["label"]).mkdir(parents=True, exist_ok=True)
        (folder / "test" / rel).write_bytes(r["png"])
        lines.append(f"{rel},{r['label']},{r['video']},{r['source_video']}")
    (folder / "test" / "metadata.csv").write_text("\n".join(lines) + "\n")
    return folder


def write_saved(folder: Path) -> Path:
    """A DatasetDict {test: ...} written with save_to_disk."""
    from datasets import DatasetDict

    DatasetDict({"test": _dataset()}).save_to_disk(str(folder))
    return folder


WRITERS = {"parquet": write_parquet, "imagefolder": write_imagefolder, "saved": write_saved}


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    # as on the development machines: nothing may reach the hub
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize("form", WRITERS)
def test_every_form_reads_labels_videos_and_sources(form, tmp_path):
    folder = WRITERS[form](tmp_path / form)
    index = read_hf(
        str(folder),
        name=form,
        source_video_column="source_video",
        frames_dir=tmp_path / "frames",
        hf_cache_dir=tmp_path / "hf",
    )
    assert index.video_labels() == EXPECTED and len(index) == 12
    assert set(index.splits) == {"test"} and index.name == form
    sources = dict(zip(index.video_ids, index.source_videos, strict=True))
    assert sources == {"r0": "", "r1": "", "r2": "", "f0": "r0", "f1": "r1", "f2": "r2"}
    assert all(os.path.isfile(p) for p in index.paths)
    # the frames are the dataset's images, byte for byte, where FrameDataset can open them
    for path, vid in zip(index.paths, index.video_ids, strict=True):
        img = np.asarray(Image.open(path))
        assert (img[8:24, 8:24] == (255, 0, 0)).all() == (EXPECTED[vid] == 1)
    if form == "imagefolder":  # image files are indexed where they are, not copied
        assert all(p.startswith(str(folder)) for p in index.paths)
    else:
        assert all(p.startswith(str(tmp_path / "frames")) for p in index.paths)


def test_columns_label_map_and_bad_input(tmp_path):
    folder = write_imagefolder(tmp_path / "imf")
    kwargs = {"hf_cache_dir": tmp_path / "hf"}
    flipped = read_hf(str(folder), label_map={"real": 1, "fake": 0}, **kwargs)
    assert flipped.video_labels()["r0"] == 1 and flipped.video_labels()["f0"] == 0
    with pytest.raises(DataError, match=r"row \d+: label 'fake' is not in label_map.*bad_label"):
        read_hf(str(folder), label_map={"real": 0}, **kwargs)
    skipped = read_hf(str(folder), label_map={"real": 0}, on_error="skip", **kwargs)
    assert skipped.skipped == {"bad_label": 6} and set(skipped.video_ids) == {"r0", "r1", "r2"}
    with pytest.raises(DataError, match=r"no column 'clip' \(video_column\).*'video'"):
        read_hf(str(folder), video_column="clip", **kwargs)
    per_image = read_hf(str(folder), video_column=None, source_column="label", **kwargs)
    assert len(set(per_image.video_ids)) == 12 and per_image.video_ids[0].startswith("real/test/")
    with pytest.raises(DataError, match=r"unknown split \['train'\]; valid splits: \['test'\]"):
        read_hf(str(folder), split="train", **kwargs)
    with pytest.raises(DataError, match="does not exist.*save_to_disk"):
        read_hf(str(tmp_path / "nope"), **kwargs)
    with pytest.raises(DataError, match="inside the dataset.*frames_dir"):
        read_hf(str(write_parquet(tmp_path / "pq")), **kwargs)


def test_hf_targets_evaluate_through_train(tmp_path, demo_cache):
    forms = {form: WRITERS[form](tmp_path / form) for form in WRITERS}
    overrides = [f"~data.test.{t}" for t in ("mouth", "eyes", "swap", "jpeg")]
    for form, folder in forms.items():
        overrides += [
            f"+dataset@data.test.{form}=hf",
            f"data.test.{form}.name={form}",
            f"data.test.{form}.path={folder}",
        ]
    overrides += [
        "backbone=tiny_clip",
        *small_run_overrides(tmp_path, demo_cache),
        "trainer.max_steps=2",
        f"data.test.parquet.frames_dir={tmp_path / 'frames'}",
        f"data.test.saved.frames_dir={tmp_path / 'frames'}",
        f"data.test.imagefolder.hf_cache_dir={tmp_path / 'hf'}",
        f"data.test.parquet.hf_cache_dir={tmp_path / 'hf'}",
        "data.frames_per_video.eval=null",
    ]
    cfg = compose_train(overrides, tmp_path / "run")
    for form in forms:  # the very specs train() instantiates
        index = instantiate(cfg.data.test[form])
        assert index.video_labels() == EXPECTED, form
    results = train(cfg)
    assert set(results["test"]) == set(forms)
    for form in forms:
        metrics = results["test"][form]
        assert metrics["n_videos"] == 6 and math.isfinite(metrics["video_auc"]), (form, metrics)
