"""`python -m dfd.bench`: every section runs and is recorded; nothing here is timed.

The sizes are tiny (4 crops per repeat, 2 steps, 2 repeats, a 64x64 matmul): the tests check
that the benchmark measures what it says, not how fast anything is.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from mlflow import MlflowClient
from omegaconf import DictConfig, open_dict

from dfd.bench.crops import crops_index, write_crops
from dfd.bench.model_step import bench_model, build_setup
from dfd.bench.pipeline import baseline_dataset, current_transform
from dfd.bench.runner import check_sections, run_bench
from dfd.bench.timing import interleaved
from dfd.data.frames import FrameDataset
from tests.conftest import CONF_DIR, fresh_mlflow_uri

TINY = [
    "pipeline.images=4",
    "repeats=2",
    "steps=2",
    "warmup=1",
    "batch_size=4",
    "workers=1",
    "crops.count=8",
    "crops.size=96",
    "ceiling.size.cpu=64",
    "ceiling.iters.cpu=1",
    "cpu=true",
]


def compose_bench(overrides: list[str], output_dir: Path) -> DictConfig:
    """The composed `conf/bench.yaml`, as `python -m dfd.bench` would see it, writing under output_dir."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="bench", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


def _positive(rate) -> bool:
    return all(math.isfinite(v) and v > 0 for v in rate.values)


def test_bench_measures_every_section_and_logs_them(tmp_path, capsys):
    uri = fresh_mlflow_uri(tmp_path)
    cfg = compose_bench([*TINY, "tracking=mlflow", f"tracking.uri={uri}"], tmp_path / "run")
    res = run_bench(cfg)

    for transform in ("train", "eval"):
        figures = res.pipeline[transform]
        assert all(_positive(figures[k]) for k in ("old", "new", "ratio", "store", "store_ratio"))
        assert len(figures["ratio"].values) == cfg.repeats
    assert _positive(res.model["train"]) and _positive(res.model["eval"])
    assert _positive(res.end_to_end["train"]) and _positive(res.end_to_end["eval"])
    assert _positive(res.ceiling.tflops)
    # a train step of LN-tuning adds the activation gradients: about twice the forward's FLOPs
    assert 1.5 < res.flops_per_image("train") / res.flops_per_image("eval") < 3.5

    printed = capsys.readouterr().out
    for heading in ("(a) data pipeline", "(b) model step", "(c) end to end", "(d) FLOPs"):
        assert heading in printed
    assert "float32 matmul 64x64 on cpu" in printed

    record = json.loads((tmp_path / "run" / "bench.json").read_text())
    assert record["setup"]["backbone"] == "tiny_clip"
    assert record["pipeline"]["train"]["ratio"]["median"] == res.pipeline["train"]["ratio"].median
    assert not (tmp_path / "run" / "crops").exists(), "written crops are removed unless kept"
    assert not (tmp_path / "run" / "frame_stores").exists(), "the benchmark's stores are removed"

    client = MlflowClient(uri)
    (run,) = client.search_runs(
        [client.get_experiment_by_name(cfg.tracking.experiment).experiment_id]
    )
    logged = run.data.metrics
    for key in (
        "bench/pipeline/train/ratio",
        "bench/pipeline/eval/new_images_per_s",
        "bench/pipeline/eval/store_ratio",
        "bench/model/train_images_per_s",
        "bench/end_to_end/train_images_per_s",
        "bench/end_to_end/eval_images_per_s",
        "bench/flops/end_to_end_eval_ceiling_fraction",
        "bench/flops/train_ceiling_fraction",
        "bench/ceiling/tflops",
    ):
        assert logged[key] == pytest.approx(res.metrics()[key])
    assert run.data.params["machine/torch"] == torch.__version__
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["bench.json"]


def test_flop_count_matches_the_vit_formula(tmp_path):
    # eval forward of a ViT, per image: linear layers 2*T*(4h^2 + 2hI) per block, attention
    # 4*T^2*h per block (QK^T and AV), the patch embedding and the 2-class head
    cfg = compose_bench([*TINY, "sections=[model,flops]"], tmp_path)
    a = cfg.backbone.architecture
    h, inter, layers = a.hidden_size, a.intermediate_size, a.num_hidden_layers
    patches = (a.image_size // a.patch_size) ** 2
    tokens = patches + 1
    expected = (
        layers * (2 * tokens * (4 * h * h + 2 * h * inter) + 4 * tokens * tokens * h)
        + 2 * patches * 3 * a.patch_size**2 * h
        + 2 * h * 2
    )
    setup = build_setup(cfg)
    _, flops = bench_model(setup, batch_size=4, eval_batch_size=2, steps=1, repeats=1, warmup=0)
    assert flops["eval"] == 2 * expected


def test_baseline_eval_path_equals_the_current_one_within_one_level(tmp_path):
    # issue 11's acceptance: old and new eval outputs agree within 1/255; while frames.py is
    # unchanged this also proves dfd.bench.baseline is a faithful copy
    cfg = compose_bench(TINY, tmp_path)
    spec = build_setup(cfg).input_spec
    index = crops_index(write_crops(tmp_path / "crops", 3, 256))
    old = baseline_dataset(index, spec, train=False)
    new = FrameDataset(index, current_transform(spec, None))
    std = torch.tensor(spec.std).view(3, 1, 1)
    for i in range(len(index)):
        diff = (old[i]["pixel_values"] - new[i]["pixel_values"]) * std  # in [0, 1] pixel units
        assert diff.abs().max().item() <= 1 / 255 + 1e-6


def test_written_crops_decode_as_rgb_of_the_asked_size(tmp_path):
    paths = write_crops(tmp_path, 2, 128, seed=1)
    from PIL import Image

    with Image.open(paths[0]) as im:
        assert im.mode == "RGB" and im.size == (128, 128)
        pixels = np.asarray(im)
    assert pixels.std() > 10, "crops carry a face and noise, not a flat colour"


def test_interleaved_rotates_the_order_of_variants():
    calls: list[str] = []
    variants = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    rates = interleaved(variants, dict.fromkeys("abc", 1.0), 3, torch.device("cpu"))
    assert calls == list("abcbcacab")
    assert all(len(r.values) == 3 for r in rates.values())


def test_bad_sections_and_crops_fail_with_the_key(tmp_path):
    with pytest.raises(ValueError, match="unknown \\['speed'\\]"):
        check_sections(["model", "speed"])
    with pytest.raises(ValueError, match="add model"):
        check_sections(["flops"])
    (tmp_path / "empty").mkdir()
    cfg = compose_bench([*TINY, f"crops.folder={tmp_path / 'empty'}"], tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="crops.folder=.*holds no .png files"):
        run_bench(cfg)
