"""Robustness evaluation: the perturbations, and `dfd.evaluate ... robustness=deepfakebench` on the demo."""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import mlflow
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict
from PIL import Image

from dfd.data.perturb import Downscale, GaussianBlur, GaussianNoise, PerturbedTransform
from dfd.evaluate import evaluate_checkpoint
from dfd.scoring.robustness import build_perturbations
from dfd.train import train
from tests.conftest import CONF_DIR, compose_train, fresh_mlflow_uri, small_run_overrides

DEFAULT_SET = OmegaConf.load(CONF_DIR / "robustness" / "deepfakebench.yaml")
PERTURBATIONS = build_perturbations(DEFAULT_SET)


def _face(seed: int = 0, size: int = 96) -> np.ndarray:
    """A textured RGB uint8 image: colour gradients plus detail at a few pixels' scale.

    Smoothed rather than per-pixel noise: an unfiltered shrink (DeeperForensics' bilinear
    downscale) of pure pixel noise samples noise, whose error does not grow with the factor.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([x, y, 1 - x * y], axis=-1) * 160 + 40
    detail = cv2.GaussianBlur(rng.normal(0, 40, (size, size, 3)).astype(np.float32), (0, 0), 1.5)
    return np.clip(base + detail, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", list(PERTURBATIONS))
def test_each_level_degrades_more_than_the_one_before(name):
    img = _face()
    before = img.copy()
    errors = []
    for perturbation in PERTURBATIONS[name]:
        out = perturbation(img, np.random.default_rng(0))
        assert out.dtype == np.uint8 and out.shape == img.shape
        errors.append(np.abs(out.astype(float) - img).mean())
    np.testing.assert_array_equal(img, before)  # the input is never modified
    assert errors[0] > 0
    assert errors == sorted(errors), f"{name}: error by severity {errors} is not increasing"


def test_blur_levels_are_deeperforensics_kernels_with_sigma_a_sixth():
    blurs = PERTURBATIONS["blur"]
    assert [b.kernel for b in blurs] == [7, 9, 13, 17, 21]
    img = _face()
    for b in blurs:
        expected = cv2.GaussianBlur(img, (b.kernel, b.kernel), b.kernel / 6)
        assert np.abs(b(img, None).astype(int) - expected).max() <= 1


def test_noise_has_deeperforensics_strength_in_luma():
    # DeeperForensics-1.0 adds sqrt(v) noise to studio-range YCbCr: 255*255/219 levels of luma per unit
    grey = np.full((256, 256, 3), 128, dtype=np.uint8)
    out = GaussianNoise(0.001)(grey, np.random.default_rng(1))
    luma = cv2.cvtColor(out, cv2.COLOR_RGB2YCrCb)[..., 0].astype(float)
    assert luma.std() == pytest.approx(np.sqrt(0.001) * 255 * 255 / 219, rel=0.05)


def test_downscale_is_a_bilinear_round_trip():
    img = _face(size=97)
    small = cv2.resize(img, (97 // 3, 97 // 3), interpolation=cv2.INTER_LINEAR)
    expected = cv2.resize(small, (97, 97), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(Downscale(3)(img, None), expected)


def test_perturbed_transform_is_seeded_per_frame():
    img = _face()

    def seen(x, rng):
        return np.asarray(x)

    tf = PerturbedTransform(seen, GaussianNoise(0.01))
    once = tf(img, random.Random(7))
    again = tf(img, random.Random(7))
    other_frame = tf(img, random.Random(8))
    np.testing.assert_array_equal(once, again)
    assert np.abs(once.astype(int) - other_frame).mean() > 1
    # a PIL image (RGB) gets the same perturbation as the decoder's RGB array
    np.testing.assert_array_equal(tf(Image.fromarray(img), random.Random(7)), once)


def test_perturbed_frames_reach_the_model_through_the_frame_dataset(tmp_path):
    from dfd.bench.crops import crops_index, write_crops
    from dfd.data.frames import FrameDataset, FrameTransform
    from dfd.data.spec import InputSpec

    spec = InputSpec(size=(64, 64), resample=3, mean=(0.5,) * 3, std=(0.25,) * 3)
    index = crops_index(write_crops(tmp_path, 2, 64))
    clean = FrameDataset(index, FrameTransform(spec))
    noisy = FrameDataset(index, PerturbedTransform(FrameTransform(spec), GaussianNoise(0.01)))
    for i in range(2):
        diff = (noisy[i]["pixel_values"] - clean[i]["pixel_values"]).abs().mean().item()
        assert diff * 0.25 * 255 > 5  # about 30 levels of noise, in pixel units
        assert noisy[i]["pixel_values"].equal(noisy[i]["pixel_values"])  # seeded per frame


def test_a_level_set_without_levels_fails_with_its_key():
    bad = OmegaConf.create(
        {"perturbations": {"blur": {"perturbation": DEFAULT_SET.perturbations.blur.perturbation}}}
    )
    with pytest.raises(
        ValueError, match=r"robustness.perturbations.blur lacks \['parameter', 'levels'\]"
    ):
        build_perturbations(bad)
    with pytest.raises(ValueError, match="sigma"):
        GaussianBlur(0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, demo_cache) -> Path:
    run = tmp_path_factory.mktemp("train")
    train(compose_train(small_run_overrides(run, demo_cache), run))
    return run / "checkpoint"


def test_evaluate_logs_every_severity_of_every_target_and_the_plot(tmp_path, checkpoint):
    uri = fresh_mlflow_uri(tmp_path)
    overrides = [
        f"checkpoint={checkpoint}",
        "robustness=deepfakebench",
        f"tracking.uri={uri}",
        "robustness.perturbations.jpeg.levels=[30]",
        "robustness.perturbations.blur.levels=[2.1666667]",
        "robustness.perturbations.downscale.levels=[4]",
        "robustness.perturbations.noise.levels=[0.005,0.05]",
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "eval")
    clean = evaluate_checkpoint(cfg)["test"]

    mlflow.set_tracking_uri(uri)
    (run,) = mlflow.search_runs(experiment_names=["dfd"], output_format="list")
    logged = run.data.metrics
    targets = list(clean)
    severities = {"jpeg": 1, "blur": 1, "downscale": 1, "noise": 2}
    changed = False
    for perturbation, n in severities.items():
        # severity 0 is the clean score, the same number the clean evaluation logged
        for target in targets:
            key = f"robust/{perturbation}/0/{target}/video_auc"
            assert logged[key] == pytest.approx(clean[target]["video_auc"])
            for severity in range(1, n + 1):
                value = logged[f"robust/{perturbation}/{severity}/{target}/video_auc"]
                assert 0 <= value <= 1
                changed |= value != pytest.approx(clean[target]["video_auc"])
    assert changed, "no perturbation changed any target's AUC: were they applied?"
    assert not any(k.startswith("robust/") and k.count("/") != 4 for k in logged)

    plot = tmp_path / "eval" / "plots" / "robustness.png"
    with Image.open(plot) as im:
        assert im.size[0] > 4 * 300  # four panels side by side
    artifacts = mlflow.MlflowClient(uri).list_artifacts(run.info.run_id, "plots")
    assert "plots/robustness.png" in [a.path for a in artifacts]


def test_robustness_none_is_the_default_and_adds_nothing(tmp_path, checkpoint):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name="evaluate", overrides=[f"checkpoint={checkpoint}", "tracking=none"]
        )
    assert not cfg.robustness.perturbations
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
    evaluate_checkpoint(cfg)
    assert not (tmp_path / "plots" / "robustness.png").exists()


def test_the_evaluate_command_names_its_mlflow_run_by_its_options(
    tmp_path, checkpoint, monkeypatch
):
    import sys

    from hydra.core.global_hydra import GlobalHydra

    import dfd.evaluate

    uri = fresh_mlflow_uri(tmp_path)
    argv = [
        "dfd.evaluate",
        f"checkpoint={checkpoint}",
        f"tracking.uri={uri}",
        "eval.aggregate=median",
        f"hydra.run.dir={tmp_path}/eval",
        f"paths.output_root={tmp_path}",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    try:
        dfd.evaluate.main()
    finally:
        GlobalHydra.instance().clear()
    mlflow.set_tracking_uri(uri)
    (run,) = mlflow.search_runs(experiment_names=["dfd"], output_format="list")
    where = "/".join(checkpoint.resolve().parts[-3:-1])
    assert run.info.run_name == f"evaluate · {where} · aggregate=median"
