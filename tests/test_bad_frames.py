"""Unreadable frames: skipped and counted under data.on_error=skip, one clear error under raise."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import numpy as np
import pytest
from PIL import Image

from dfd.data.frames import UnreadableFrameError
from dfd.train import train
from tests.conftest import compose_train, small_run_overrides


def _write_lists(root: Path) -> list[Path]:
    """The authors' file-list layout: FF train/val and a CDFv2 test list, 4 frames per video."""
    rng = np.random.default_rng(0)
    lists = {"FF/train": 12, "FF/val": 4, "CDFv2/test": 4}
    frames = []
    for where, n_videos in lists.items():
        dataset, split = where.split("/")
        lines = []
        for source in ("real", "fake"):
            for v in range(n_videos):
                for f in range(4):
                    rel = f"datasets/{dataset}/{source}/{split}{v:02d}/{f:03d}.png"
                    img = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
                    if source == "fake":
                        img[8:24, 8:24] = (255, 0, 0)
                    (root / rel).parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(img).save(root / rel)
                    lines.append(rel)
                    if where == "FF/train":
                        frames.append(root / rel)
        (root / "config/datasets" / dataset / split).mkdir(parents=True, exist_ok=True)
        (root / "config/datasets" / dataset / split / "list.txt").write_text("\n".join(lines))
    return frames


def _corrupt(frames: list[Path]) -> list[Path]:
    zero, truncated, text = frames[5], frames[17], frames[30]
    zero.write_bytes(b"")
    truncated.write_bytes(truncated.read_bytes()[:60])
    text.write_text("this is not an image")
    return [zero, truncated, text]


def _cfg(tmp_path, on_error):
    root = tmp_path / "data"
    bad = _corrupt(_write_lists(root))
    overrides = [
        "data=filelist",
        f"paths.data_dir={root}",
        f"data.on_error={on_error}",
        "backbone.pretrained=false",
        *small_run_overrides(tmp_path, tmp_path / "cache"),
        "data.frames_per_video.train=null",
        "trainer.max_steps=null",
        "trainer.max_epochs=1",
    ]
    return compose_train(overrides, tmp_path / "run"), bad


def test_skip_trains_past_three_kinds_of_bad_frames_and_counts_them(tmp_path):
    cfg, _ = _cfg(tmp_path, "skip")
    results = train(cfg)
    assert results["best_epoch"] in (0, 1)
    mlflow.set_tracking_uri(cfg.tracking.uri)
    (run,) = mlflow.search_runs(experiment_names=["dfd"], output_format="list")
    assert run.info.status == "FINISHED"
    assert run.data.params["data/train/skipped/unreadable"] == "3"
    assert run.data.params["data/val/skipped/unreadable"] == "0"


def test_raise_names_the_first_bad_file_and_the_fix(tmp_path):
    cfg, bad = _cfg(tmp_path, "raise")
    with pytest.raises(UnreadableFrameError) as err:
        train(cfg)
    message = str(err.value)
    assert any(str(p) in message for p in bad)
    assert re.search(r"data\.on_error=skip", message)
    mlflow.set_tracking_uri(cfg.tracking.uri)
    (run,) = mlflow.search_runs(experiment_names=["dfd"], output_format="list")
    assert run.info.status == "FAILED"
