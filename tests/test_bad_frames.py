"""Unreadable frames: skipped and counted under data.on_error=skip, one clear error under raise."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
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


class _Detector(torch.nn.Module):
    """p(fake) = a squashed mean pixel, NaN for bright frames."""

    def fake_probability(self, x: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(x.mean(dim=(1, 2, 3)))
        return torch.where(x.mean(dim=(1, 2, 3)) > 1.0, torch.nan, p)


class _Scores(torch.nn.Module):
    """A task holding that detector."""

    def __init__(self) -> None:
        super().__init__()
        self.detector = _Detector()


def test_a_nan_score_is_never_an_unreadable_frame(tmp_path):
    from accelerate import Accelerator
    from torch.utils.data import DataLoader

    from dfd.data.frames import FrameDataset, FrameTransform, collate_frames
    from dfd.data.index import FrameIndex
    from dfd.data.spec import InputSpec
    from dfd.scoring.inference import NonFiniteScoresError, evaluate

    paths = []
    for i, level in enumerate([10, 200, 20, 30, 40, 50]):  # frame 1 bright: scored NaN
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(np.full((8, 8, 3), level, np.uint8)).save(paths[-1])
    (tmp_path / "5.png").write_bytes(b"")  # frame 5 unreadable
    index = FrameIndex(
        name="mouth",
        paths=paths,
        labels=np.array([0, 0, 1, 1, 0, 0]),
        video_ids=["a", "a", "b", "b", "c", "c"],
        sources=["x"] * 6,
        splits=["test"] * 6,
    )
    spec = InputSpec(size=(8, 8), resample=3, mean=(0.5,) * 3, std=(0.25,) * 3)
    dataset = FrameDataset(index, FrameTransform(spec), on_error="skip")
    loader = DataLoader(dataset, batch_size=4, collate_fn=collate_frames)
    with pytest.raises(NonFiniteScoresError, match=r"^test mouth: 1 of 5 frames .*1\.png"):
        evaluate(_Scores(), loader, Accelerator(cpu=True), "test mouth")
    with pytest.warns(UserWarning, match="left out of the metrics"):
        metrics, scores, unreadable = evaluate(
            _Scores(), loader, Accelerator(cpu=True), "test mouth", allow_nonfinite=True
        )
    assert unreadable.tolist() == [5]  # the NaN-scored frame is not counted as unreadable
    assert np.isnan(scores[1]) and np.isnan(scores[5])
    assert metrics["n_frames"] == 4


def test_a_face_scored_nan_never_gets_a_row_saying_ok():
    # dfd.predict's scorer: a non-finite p(fake) stops it instead of writing `p_fake nan, ok`
    from types import SimpleNamespace

    from dfd.data.spec import InputSpec
    from dfd.scoring.faces import FaceScorer
    from dfd.scoring.inference import NonFiniteScoresError

    detector = _Detector()
    detector.backbone = SimpleNamespace(
        input_spec=InputSpec(size=(8, 8), resample=3, mean=(0.5,) * 3, std=(0.25,) * 3)
    )
    scorer = FaceScorer(detector, torch.device("cpu"), batch_size=2)
    rows = [SimpleNamespace(p_fake=None) for _ in range(2)]
    scorer.add(rows[0], np.full((8, 8, 3), 10, np.uint8))
    with pytest.raises(NonFiniteScoresError, match="1 of 2 faces got a non-finite p"):
        scorer.add(rows[1], np.full((8, 8, 3), 250, np.uint8))
    assert rows[0].p_fake is None and rows[1].p_fake is None
