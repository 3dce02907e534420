"""dfd.predict: images, videos and folders scored with faces made as dfd.preprocess makes them."""

from __future__ import annotations

import csv
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from dfd.evaluate import evaluate_checkpoint
from dfd.predict.predictor import find_inputs, run_prediction
from dfd.preprocess.pipeline import FaceSettings
from dfd.preprocess.runner import run_preprocessing
from dfd.scoring.metrics import video_scores
from tests.conftest import CONF_DIR
from tests.demo_checkpoint import trained_checkpoint

skimage_data = pytest.importorskip("skimage.data")

# the astronaut's eye centres, nose tip and mouth corners (512x512), as in test_preprocess
ASTRONAUT_LANDMARKS = np.array([[203, 101.5], [246.5, 104], [225, 127], [201, 139], [246, 141]])


@pytest.fixture(scope="module")
def checkpoint(demo_cache) -> Path:
    return trained_checkpoint(demo_cache)


def compose_predict(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="predict", overrides=overrides)


def predict(checkpoint: Path, input: Path | str, output: Path, *extra: str):
    run = output.parent / "run"  # the run folder Hydra would make
    cfg = compose_predict(
        [
            f"checkpoint={checkpoint}",
            f"input={input}",
            f"output={output}",
            f"paths.output_dir={run}",
            *extra,
        ]
    )
    return run_prediction(cfg)


def write_png(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def write_face_video(path: Path, n: int) -> Path:
    """`n` frames of the astronaut's face on grey, shifted a few pixels each frame."""
    face = cv2.resize(cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR), (300, 300))
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (480, 360))
    for i in range(n):
        frame = np.full((360, 480, 3), 90, np.uint8)
        frame[30:330, 60 + 3 * i : 360 + 3 * i] = face
        writer.write(frame)
    writer.release()
    return path


def test_astronaut_photo_gives_one_row_with_a_face_box_and_p_fake(tmp_path, checkpoint):
    image = write_png(tmp_path / "astronaut.png", skimage_data.astronaut())
    rows = predict(checkpoint, image, tmp_path / "out.csv")

    assert len(rows) == 1
    row = rows[0]
    assert row.status == "ok" and row.kind == "image" and row.face == 0 and row.frame is None
    assert 0.0 <= row.p_fake <= 1.0
    # the box holds the face's landmarks and is face-sized, not the whole photo
    x, y = ASTRONAUT_LANDMARKS[:, 0], ASTRONAUT_LANDMARKS[:, 1]
    assert row.box_x1 < x.min() and x.max() < row.box_x2
    assert row.box_y1 < y.min() and y.max() < row.box_y2
    assert 40 < row.box_x2 - row.box_x1 < 250
    written = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert len(written) == 1 and float(written[0]["p_fake"]) == pytest.approx(row.p_fake)
    assert written[0]["checkpoint"] == str(checkpoint.resolve())
    assert len(written[0]["checkpoint_sha256"]) == 64


def test_photo_without_a_face_is_reported_not_dropped(tmp_path, checkpoint, capsys):
    noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    write_png(tmp_path / "in/noise.png", noise)
    write_png(tmp_path / "in/sub/astronaut.jpg", skimage_data.astronaut())
    rows = predict(checkpoint, tmp_path / "in", tmp_path / "out.json")

    by_name = {Path(r.input).name: r for r in rows}
    assert by_name["noise.png"].status == "no_face" and by_name["noise.png"].p_fake is None
    assert by_name["astronaut.jpg"].status == "ok"
    assert "noise.png: no face" in capsys.readouterr().out
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["checkpoint"]["path"] == str(checkpoint.resolve())
    assert [p["status"] for p in data["predictions"]] == [r.status for r in rows]


def test_video_gets_frame_rows_and_the_video_score_dfd_evaluate_gives(tmp_path, checkpoint):
    video = write_face_video(tmp_path / "raw/real/clip.mp4", 12)
    # the demo checkpoint's evaluation keeps 1 frame per video: evaluate 3 of 4 on both sides
    rows = predict(
        checkpoint, video, tmp_path / "out.csv", "faces.frames.num_frames=4", "frames_per_video=3"
    )
    assert [r.frame for r in rows] == [0, 3, 7, 11]  # np.linspace(0, 11, 4), floored
    assert [r.status for r in rows] == ["ok", "beyond_frames_per_video", "ok", "ok"]
    assert all(r.kind == "video" for r in rows) and len({r.video_score for r in rows}) == 1

    # the same video through dfd.preprocess, then dfd.evaluate on those crops
    cfg = compose_predict(["checkpoint=x", "input=x", "faces.frames.num_frames=4"])
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        pre = compose(
            config_name="preprocess_faces",
            overrides=[
                f"input_dir={tmp_path / 'raw'}",
                f"output_dir={tmp_path / 'faces'}",
                "dataset_name=mine",
                "num_workers=0",
                "faces.frames.num_frames=4",
            ],
        )
        assert pre.faces == cfg.faces  # one face config for both commands
        run_preprocessing(pre)
        evaluation = compose(
            config_name="evaluate",
            overrides=[
                f"checkpoint={checkpoint}",
                "tracking=none",
                f"paths.output_dir={tmp_path / 'eval'}",
            ],
        )
    folder_target = {
        "_target_": "dfd.data.readers.folder.read_folder",
        "root": str(tmp_path / "faces/mine"),
        "name": "mine",
        "cache_dir": None,
    }
    with open_dict(evaluation):
        evaluation.data = {"test": {"mine": folder_target}, "frames_per_video": {"eval": 3}}
    evaluate_checkpoint(evaluation)
    frames = pq.read_table(tmp_path / "eval/predictions/mine.parquet").to_pydict()
    assert [Path(f).name for f in frames["path"]] == ["000.png", "002.png", "003.png"]
    scored = [r.p_fake for r in rows if r.status == "ok"]
    assert scored == pytest.approx(frames["p_fake"], abs=1e-6)
    _, _, expected = video_scores(frames["video_id"], np.array(frames["label"]), frames["p_fake"])
    assert rows[0].video_score == pytest.approx(float(expected[0]), abs=1e-6)


def test_frames_per_video_keeps_evenly_spaced_frames_as_evaluation(tmp_path, checkpoint):
    video = write_face_video(tmp_path / "clip.avi", 12)
    rows = predict(checkpoint, video, tmp_path / "o.csv", "faces.frames.num_frames=4")
    # null: the checkpoint's data.frames_per_video.eval, 1 for the test checkpoint
    assert [r.status for r in rows].count("ok") == 1
    rows = predict(
        checkpoint, video, tmp_path / "o.csv", "faces.frames.num_frames=4", "frames_per_video=2"
    )
    skip = "beyond_frames_per_video"
    assert [r.status for r in rows] == ["ok", skip, skip, "ok"]
    scored = [r.p_fake for r in rows if r.status == "ok"]
    assert rows[0].video_score == pytest.approx(float(np.mean(scored)))


def test_all_faces_scores_every_face_largest_first(tmp_path, checkpoint):
    face = skimage_data.astronaut()
    canvas = np.full((400, 700, 3), 90, np.uint8)
    canvas[:380, :380] = cv2.resize(face, (380, 380))
    canvas[100:350, 420:670] = cv2.resize(face, (250, 250))
    image = write_png(tmp_path / "two.png", canvas)

    largest = predict(checkpoint, image, tmp_path / "a.csv")
    every = predict(checkpoint, image, tmp_path / "b.csv", "all_faces=true")
    assert len(largest) == 1 and [r.face for r in every] == [0, 1]
    assert every[0].box_x2 < 400 < every[1].box_x1  # the big face is the left one
    assert every[0].p_fake == pytest.approx(largest[0].p_fake, abs=1e-6)


def test_crop_false_scores_an_aligned_crop_as_it_is(tmp_path, checkpoint):
    from dfd.preprocess.pipeline import FacePipeline

    cfg = compose_predict(["checkpoint=x", "input=x"])
    pipeline = FacePipeline.from_config(cfg.faces)
    aligned = pipeline.align(skimage_data.astronaut()).faces[0].crop
    crop = write_png(tmp_path / "crop.png", aligned)  # PNG: the same pixels come back
    photo = write_png(tmp_path / "photo.png", skimage_data.astronaut())

    as_crop = predict(checkpoint, crop, tmp_path / "a.csv", "crop=false")[0]
    detected = predict(checkpoint, photo, tmp_path / "b.csv")[0]
    assert (as_crop.box_x1, as_crop.box_y1, as_crop.box_x2, as_crop.box_y2) == (0, 0, 256, 256)
    assert as_crop.p_fake == pytest.approx(detected.p_fake, abs=1e-6)


def test_inputs_by_file_folder_and_glob(tmp_path):
    settings = FaceSettings()
    for name in ("a/1.png", "a/2.JPG", "a/b/3.mp4", "a/notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    folder = find_inputs(str(tmp_path / "a"), settings)
    assert [(p.name, k) for p, k in folder] == [
        ("1.png", "image"),
        ("2.JPG", "image"),
        ("3.mp4", "video"),
    ]
    pattern = find_inputs(str(tmp_path / "a/*.png"), settings)
    assert [p.name for p, _ in pattern] == ["1.png"]
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        find_inputs(str(tmp_path / "missing.png"), settings)
    with pytest.raises(Exception, match="neither an image nor a video"):
        find_inputs(str(tmp_path / "a/notes.txt"), settings)


def test_command_line_writes_json_and_a_missing_checkpoint_is_one_line(tmp_path, checkpoint):
    image = write_png(tmp_path / "astronaut.png", skimage_data.astronaut())
    base = [sys.executable, "-m", "dfd.predict", f"input={image}", f"hydra.run.dir={tmp_path}/run"]
    bad = subprocess.run(
        [*base, f"checkpoint={tmp_path / 'nope'}", f"output={tmp_path / 'p.json'}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    assert f"checkpoint folder {tmp_path / 'nope'} does not exist" in bad.stderr


def test_the_demo_model_says_so_on_the_console_and_in_the_output(tmp_path, checkpoint, caplog):
    image = write_png(tmp_path / "astronaut.png", skimage_data.astronaut())
    with caplog.at_level(logging.WARNING, logger="dfd.predict.predictor"):
        predict(checkpoint, image, tmp_path / "out.csv")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "dfd's demo model" in warnings[0]
    assert "synthetic 64x64" in warnings[0] and "\n" not in warnings[0]
    written = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert written[0]["demo_model"] == "True"
    predict(checkpoint, image, tmp_path / "out.json")
    identity = json.loads((tmp_path / "out.json").read_text())["checkpoint"]
    assert identity["demo_model"] is True and "synthetic 64x64" in identity["warning"]

    # the same weights recorded as another encoder trained on other data: no warning
    other = tmp_path / "other_checkpoint"
    shutil.copytree(checkpoint, other)
    cfg = OmegaConf.load(other / "config.yaml")
    cfg.backbone.name, cfg.data.name = "my_encoder", "ff_cross"
    OmegaConf.save(cfg, other / "config.yaml")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dfd.predict.predictor"):
        predict(other, image, tmp_path / "other.json")
    assert not [r for r in caplog.records if "demo model" in r.getMessage()]
    identity = json.loads((tmp_path / "other.json").read_text())["checkpoint"]
    assert identity["demo_model"] is False and identity["warning"] is None
