"""Face preprocessing (`python -m dfd.preprocess`): geometry, sampling, a real face end to end,
bad input, resuming, and the errors of the detectors whose weights the user provides.

The real face is scikit-image's astronaut composited into short videos written here; every
output goes under pytest's tmp_path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from dfd.preprocess.alignment import align_face, arcface_template, transform_points
from dfd.preprocess.errors import PreprocessError
from dfd.preprocess.faces import build_face_detector
from dfd.preprocess.inputs import discover_videos
from dfd.preprocess.runner import run_preprocessing
from dfd.preprocess.sampling import sample_frame_indices

skimage_data = pytest.importorskip("skimage.data")

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
FRAME_W, FRAME_H = 480, 360


def compose_preprocess(overrides: list[str]):
    """The composed conf/preprocess_faces.yaml, as `python -m dfd.preprocess` sees it."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="preprocess_faces", overrides=overrides)


def run(input_dir: Path, out: Path, *extra: str) -> dict:
    cfg = compose_preprocess(
        [f"input_dir={input_dir}", f"output_dir={out}", "dataset_name=ds", "num_workers=0", *extra]
    )
    return run_preprocessing(cfg)


def expected_template_256() -> np.ndarray:
    """DeepfakeBench's targets for 256 px and margin 1.3, computed step by step as its code does."""
    t = np.array(
        [
            [30.2946, 51.6963],
            [65.5318, 51.5014],
            [48.0252, 71.7366],
            [33.5493, 92.3655],
            [62.7299, 92.2041],
        ]
    )
    t[:, 0] += 8.0
    t = t * 256 / 112
    margin = 256 * 0.3 / 2  # 38.4 px on each side
    return (t + margin) * 256 / (256 + 2 * margin)


def write_video(path: Path, frames: list[np.ndarray], fourcc: str = "mp4v") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (FRAME_W, FRAME_H))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def face_frames(n: int) -> list[np.ndarray]:
    """`n` BGR frames with the astronaut's face (~55 px) drifting to the right on grey."""
    face = cv2.resize(cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR), (300, 300))
    frames = []
    for i in range(n):
        frame = np.full((FRAME_H, FRAME_W, 3), 90, np.uint8)
        frame[30:330, 60 + 3 * i : 360 + 3 * i] = face
        frames.append(frame)
    return frames


def noise_frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(60, 124, (FRAME_H, FRAME_W, 3), dtype=np.uint8) for _ in range(n)]


# -- geometry and sampling ------------------------------------------------------------------


def test_template_matches_deepfakebench_geometry():
    expected = expected_template_256()
    np.testing.assert_allclose(arcface_template(256, 1.3), expected, atol=1e-9)
    # left eye by hand: ((30.2946 + 8) * 256/112 + 38.4) / 1.3
    assert arcface_template()[0, 0] == pytest.approx(96.8696, abs=1e-3)


def test_alignment_maps_synthetic_landmarks_exactly_onto_the_template():
    target = arcface_template(256, 1.3)
    angle, scale, shift = np.deg2rad(17.0), 1.7, np.array([140.0, 90.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = target @ rotation.T + shift  # the template moved by a known similarity
    image = np.zeros((600, 600, 3), np.uint8)
    for x, y in landmarks:
        cv2.circle(image, (round(x), round(y)), 3, (255, 255, 255), -1)

    crop, matrix = align_face(image, landmarks, size=256, scale=1.3)

    assert crop.shape == (256, 256, 3)
    np.testing.assert_allclose(transform_points(landmarks, matrix), target, atol=1e-6)
    # the warped pixels move too: each dot's blob lands on its template point
    for x, y in target:
        patch = crop[round(y) - 2 : round(y) + 3, round(x) - 2 : round(x) + 3]
        assert patch.max() > 200, (x, y)
    # same estimator as DeepfakeBench's skimage.transform.SimilarityTransform, on noisy points
    transform = pytest.importorskip("skimage.transform")
    noisy = landmarks + np.random.default_rng(1).normal(0, 2, landmarks.shape)
    if hasattr(transform.SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        fitted = transform.SimilarityTransform.from_estimate(noisy, target)
    else:
        fitted = transform.SimilarityTransform()
        fitted.estimate(noisy, target)
    _, ours = align_face(image, noisy)
    np.testing.assert_allclose(ours, fitted.params[:2], atol=1e-8)


def test_linspace_and_stride_frame_selection():
    picked = sample_frame_indices(300, "fixed_num_frames", num_frames=32)
    assert len(picked) == 32 and picked[0] == 0 and picked[-1] == 299
    np.testing.assert_array_equal(picked, np.linspace(0, 299, 32, dtype=int))
    assert picked[1] == 9  # 299/31 = 9.65, floored as DeepfakeBench's dtype=int does
    np.testing.assert_array_equal(sample_frame_indices(10, num_frames=32), np.arange(10))
    np.testing.assert_array_equal(sample_frame_indices(25, "fixed_stride", stride=10), [0, 10, 20])
    assert len(sample_frame_indices(0)) == 0
    with pytest.raises(ValueError, match="frames.mode"):
        sample_frame_indices(10, "first_n")


def test_sources_come_from_the_parent_folder_and_clashes_fail(tmp_path):
    for rel in (
        "manipulated/DF/000_003.mp4",
        "manipulated/F2F/000_003.mp4",
        "original/real/000.avi",
    ):
        (tmp_path / "in" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / rel).write_bytes(b"x")
    (tmp_path / "in/original/notes.txt").write_text("ignored")
    jobs = discover_videos(tmp_path / "in", [".mp4", ".avi"], [".png"])
    assert [j.video_id for j in jobs] == ["DF/000_003", "F2F/000_003", "real/000"]
    # source_part=1: the first folder under input_dir, renamed so the label rule sees "real"
    jobs = discover_videos(tmp_path / "in", [".avi"], [".png"], 1, {"original": "real"})
    assert [j.video_id for j in jobs] == ["real/000"]
    jobs = discover_videos(tmp_path / "in", [".mp4"], [".png"], include=["*/F2F/*"])
    assert [j.video_id for j in jobs] == ["F2F/000_003"]
    with pytest.raises(ValueError, match="same <source>/<video>"):
        discover_videos(tmp_path / "in", [".mp4"], [".png"], source_part=1)


def test_video_name_below_source_keeps_videos_of_sibling_folders_apart(tmp_path):
    # FakeAVCeleb: <category>/<race>/<gender>/<id>/<file>.mp4, file names repeat across ids
    for rel in (
        "FakeAVCeleb/RealVideo-RealAudio/African/men/id00076/00109.mp4",
        "FakeAVCeleb/RealVideo-RealAudio/Asian/women/id00080/00109.mp4",
        "FakeAVCeleb/FakeVideo-RealAudio/African/men/id00076/frames/000.png",
    ):
        (tmp_path / "in" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / rel).write_bytes(b"x")
    with pytest.raises(ValueError, match="same <source>/<video>"):
        discover_videos(tmp_path / "in", [".mp4"], [".png"], source_part=2)
    jobs = discover_videos(
        tmp_path / "in", [".mp4"], [".png"], source_part=2, video_name="below_source"
    )
    assert [j.video_id for j in jobs] == [
        "FakeVideo-RealAudio/African__men__id00076__frames",  # an image folder: its own name last
        "RealVideo-RealAudio/African__men__id00076__00109",
        "RealVideo-RealAudio/Asian__women__id00080__00109",
    ]
    # the default source (the parent folder) has nothing below it: the name is the stem
    jobs = discover_videos(tmp_path / "in", [".mp4"], [".png"], video_name="below_source")
    assert {j.video_id for j in jobs} == {"id00076/00109", "id00080/00109", "id00076/frames"}
    with pytest.raises(ValueError, match="video_name='path'"):
        discover_videos(tmp_path / "in", [".mp4"], [".png"], video_name="path")


# -- a real face ----------------------------------------------------------------------------


@pytest.mark.parametrize("detector", ["blazeface", "haar"])
def test_detectors_find_the_astronaut_landmarks(detector):
    cfg = compose_preprocess(
        [f"faces/detector={detector}", "input_dir=x", "output_dir=y", "dataset_name=z"]
    )
    faces = build_face_detector(cfg.faces.detector).detect(skimage_data.astronaut())
    assert faces, detector
    face = max(faces, key=lambda f: f.area)
    # eye centres, nose tip and mouth corners of the astronaut (512x512), as dlib's 68 points give
    reference = np.array([[203, 101.5], [246.5, 104], [225, 127], [201, 139], [246, 141]])
    assert np.abs(face.landmarks - reference).max() < 6, face.landmarks


def test_face_video_gives_aligned_crops_with_eyes_on_the_template(tmp_path):
    write_video(tmp_path / "in/real/000.mp4", face_frames(12))
    manifest = run(tmp_path / "in", tmp_path / "out", "faces.frames.num_frames=4")

    crops = sorted((tmp_path / "out/ds/real/000").glob("*.png"))
    assert [c.name for c in crops] == ["000.png", "001.png", "002.png", "003.png"]
    assert all(cv2.imread(str(c)).shape == (256, 256, 3) for c in crops)
    entry = manifest["videos"]["real/000"]
    assert entry["status"] == "done" and entry["frame_indices"] == [0, 3, 7, 11]
    assert entry["frames_written"] == 4
    template = expected_template_256()
    for crop in crops:
        # eyes found again in the aligned crop (DeepfakeBench's re-detection)
        eyes = np.load(tmp_path / "out/landmarks/ds/real/000" / crop.with_suffix(".npy").name)[:2]
        # a real face is not the mean template: a few pixels of fit residual remain
        assert np.abs(eyes - template[:2]).max() < 8, eyes


def test_truncated_video_with_a_wrong_frame_count_still_works(tmp_path):
    path = write_video(tmp_path / "full/real/000.avi", face_frames(30), fourcc="MJPG")
    data = path.read_bytes()
    truncated = tmp_path / "in/real/000.avi"
    truncated.parent.mkdir(parents=True)
    truncated.write_bytes(data[: len(data) // 2])  # header still says 30 frames
    entry = run(tmp_path / "in", tmp_path / "out", "faces.frames.num_frames=3")["videos"][
        "real/000"
    ]
    assert entry["status"] == "done", entry
    assert entry["frames_total"] < 30 and "container reports 30 frames" in entry["note"]
    assert entry["frame_indices"][-1] == entry["frames_total"] - 1


def test_image_folder_is_one_video(tmp_path):
    for i, frame in enumerate(face_frames(3)):
        (tmp_path / "in/Celeb-real/id0_0001").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / f"in/Celeb-real/id0_0001/{i}.jpg"), frame)
    (tmp_path / "in/Celeb-real/id0_0001/3.jpg").write_bytes(b"")  # one broken image: skipped
    manifest = run(tmp_path / "in", tmp_path / "out")
    entry = manifest["videos"]["Celeb-real/id0_0001"]
    assert entry["status"] == "done" and entry["frames_written"] == 3
    assert entry["skipped"] == {"unreadable_image": 1}
    assert manifest["summary"]["skipped"] == {"unreadable_image": 1}


# -- acceptance: three videos, a manifest, a resumable rerun, through the real CLI ----------


def test_acceptance_three_videos_cli_then_rerun_skips_the_finished_one(tmp_path):
    write_video(tmp_path / "in/real/000.mp4", face_frames(10))
    write_video(tmp_path / "in/DF/000_003.mp4", noise_frames(10))
    (tmp_path / "in/DF/001_870.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    out = tmp_path / "out"
    cli = [
        *(sys.executable, "-m", "dfd.preprocess"),
        *(f"input_dir={tmp_path / 'in'}", f"output_dir={out}", "dataset_name=acc"),
        *("num_workers=1", "faces.frames.num_frames=4"),
    ]

    first = subprocess.run(cli, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    manifest = json.loads((out / "acc/manifest.json").read_text())
    videos = manifest["videos"]
    assert videos["real/000"]["status"] == "done" and videos["real/000"]["frames_written"] == 4
    assert videos["DF/000_003"]["reason"] == "no_face"
    assert videos["DF/001_870"]["reason"] == "unreadable_video"
    assert "001_870.mp4" in videos["DF/001_870"]["message"]
    assert manifest["summary"]["skipped"] == {"no_face": 1, "unreadable_video": 1}
    assert "skipped items by reason" in first.stdout + first.stderr
    assert sorted(p.name for p in (out / "acc").iterdir()) == ["manifest.json", "real"]
    assert not (out / ".partial/acc").exists()  # work folders are gone
    assert not (tmp_path / "outputs").exists()  # nothing written relative to the cwd

    # a half-finished video (crash before its rename) is redone, a finished one is skipped
    stamp = (out / "acc/real/000/000.png").stat().st_mtime_ns
    (out / ".partial/acc/DF/000_003/frames").mkdir(parents=True)
    (out / ".partial/acc/DF/000_003/frames/000.png").write_bytes(b"half")
    manifest = run(tmp_path / "in", out, "dataset_name=acc", "faces.frames.num_frames=4")
    assert manifest["last_run"]["previously_done"] == 1
    assert manifest["last_run"]["failed"] == 2
    assert (out / "acc/real/000/000.png").stat().st_mtime_ns == stamp
    assert manifest["videos"]["real/000"]["frames_written"] == 4  # kept from the first run
    assert not (out / ".partial/acc/DF/000_003").exists()

    with pytest.raises(ValueError, match="other settings"):
        run(tmp_path / "in", out, "dataset_name=acc", "faces.frames.num_frames=8")


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.mp4", b"", "empty_file"),
        ("corrupt.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8, "unreadable_video"),
    ],
)
def test_bad_video_raises_naming_the_file(tmp_path, name, content, reason):
    (tmp_path / "in/real").mkdir(parents=True)
    (tmp_path / "in/real" / name).write_bytes(content)
    with pytest.raises(PreprocessError, match=reason) as err:
        run(tmp_path / "in", tmp_path / "out", "on_error=raise")
    assert str(tmp_path / "in/real" / name) in str(err.value)
    # the manifest still records it
    manifest = json.loads((tmp_path / "out/ds/manifest.json").read_text())
    assert manifest["summary"]["skipped"] == {reason: 1}


def test_bad_image_raises_naming_the_file(tmp_path):
    folder = tmp_path / "in/real/000"
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "0.png"), face_frames(1)[0])
    (folder / "1.png").write_bytes(b"not a png")
    with pytest.raises(PreprocessError, match="unreadable_image") as err:
        run(tmp_path / "in", tmp_path / "out", "on_error=raise")
    assert str(folder / "1.png") in str(err.value)


# -- detectors whose weights and runtime the user installs ----------------------------------


@pytest.mark.parametrize(
    ("detector", "module", "download", "package"),
    [
        ("dlib", "dlib", "shape_predictor_81_face_landmarks.dat", "pip install dlib-bin"),
        ("retinaface", "onnxruntime", "Pytorch_Retinaface", "pip install onnxruntime"),
    ],
)
def test_missing_weights_or_runtime_errors_say_what_to_do(
    tmp_path, monkeypatch, detector, module, download, package
):
    base = [f"faces/detector={detector}", "input_dir=x", "output_dir=y", "dataset_name=z"]

    cfg = compose_preprocess(base)  # weights_path unset
    with pytest.raises(FileNotFoundError, match="faces.detector.weights_path") as err:
        build_face_detector(cfg.faces.detector)
    assert download in str(err.value)

    missing = tmp_path / "nowhere.bin"
    cfg = compose_preprocess([*base, f"faces.detector.weights_path={missing}"])
    with pytest.raises(FileNotFoundError, match=str(missing)) as err:
        build_face_detector(cfg.faces.detector)
    assert download in str(err.value)

    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"0")
    monkeypatch.setitem(sys.modules, module, None)  # as if the runtime were not installed
    cfg = compose_preprocess([*base, f"faces.detector.weights_path={weights}"])
    with pytest.raises(ModuleNotFoundError, match=package):
        build_face_detector(cfg.faces.detector)


def test_missing_input_dir_fails_before_any_work(tmp_path):
    with pytest.raises(FileNotFoundError, match="input_dir="):
        run(tmp_path / "absent", tmp_path / "out")
    (tmp_path / "in").mkdir()
    with pytest.raises(ValueError, match="inside input_dir"):
        run(tmp_path / "in", tmp_path / "in/out")


def test_nothing_produced_fails_saying_how_many_failed_and_why(tmp_path):
    write_video(tmp_path / "in/DF/000_003.mp4", noise_frames(6))
    (tmp_path / "in/DF/001_870.mp4").write_bytes(b"")
    with pytest.raises(PreprocessError, match="nothing was produced") as err:
        run(tmp_path / "in", tmp_path / "out", "faces.frames.num_frames=2")
    assert "all 2 videos failed (1 empty_file, 1 no_face)" in str(err.value)
    assert str(tmp_path / "out/ds/manifest.json") in str(err.value)
    # the manifest is written all the same
    assert json.loads((tmp_path / "out/ds/manifest.json").read_text())["summary"]["failed"] == 2
