"""dfd.convert on tiny checkpoints in GenD's, Effort's and FSFM's exact layouts: dfd's logits equal
the reference forward written from each peer's code (tests/peer_reference.py) within 1e-5; the
folder carries its provenance; a checkpoint of another family fails with one line; a converted
folder is evaluated and predicted with like any other."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

from dfd.convert.formats import convert_input, detect_format
from dfd.convert.lightning import ConversionError
from dfd.engine.restore import load_detector
from tests.conftest import CONF_DIR
from tests.peer_reference import EffortReference, FSFMReference, GenDReference

TINY_CLIP = [
    "backbone.architecture.hidden_size=32",
    "backbone.architecture.intermediate_size=64",
    "backbone.architecture.num_hidden_layers=2",
    "backbone.architecture.num_attention_heads=2",
    "backbone.architecture.image_size=28",
]
TINY = {
    "clip": [
        *TINY_CLIP,
        "backbone.image_processor.size={shortest_edge:28}",
        "backbone.image_processor.crop_size={height:28,width:28}",
    ],
    "dinov3": [
        "backbone.architecture.hidden_size=32",
        "backbone.architecture.intermediate_size=64",
        "backbone.architecture.num_hidden_layers=2",
        "backbone.architecture.num_attention_heads=2",
        "backbone.architecture.image_size=32",
        "backbone.image_processor.size={height:32,width:32}",
    ],
    "pe": [  # GenD runs PE at 224: the converter sets the input, the tiny test only the widths
        "backbone.architecture.hidden_size=32",
        "backbone.architecture.num_hidden_layers=2",
        "backbone.architecture.num_attention_heads=2",
        "backbone.architecture.patch_size=16",
        "backbone.architecture.attn_pool_num_heads=2",
    ],
    "effort": [*TINY_CLIP, "backbone.image_processor.size={height:28,width:28}"],
    "fsfm": ["backbone.architecture.num_attention_heads=2"],
}
GEND = [("clip", "LinearNorm"), ("pe", "LinearNorm"), ("dinov3", "linear")]


def converted_logits(folder: Path, x: torch.Tensor) -> torch.Tensor:
    model, _ = load_detector(folder)
    with torch.no_grad():
        return model.logits(x)


def _inputs(folder: Path, n: int = 3) -> torch.Tensor:
    model, _ = load_detector(folder)
    h, w = model.backbone.input_spec.size
    return torch.randn(n, 3, h, w, generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize(("encoder", "head"), GEND, ids=[e for e, _ in GEND])
def test_gend_hub_folder_converts_with_logits_equal_to_gends(tmp_path, encoder, head):
    reference = GenDReference(encoder, head)
    folder = reference.save(tmp_path / f"GenD_{encoder}")
    assert detect_format(folder) == "gend"
    out = convert_input(folder, tmp_path / "converted", TINY[encoder])
    x = _inputs(out)
    error = (converted_logits(out, x) - reference.logits(x)).abs().max().item()
    assert error < 1e-5, error
    meta = json.loads((out / "meta.json").read_text())
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert meta["sha256"] == digest and meta["peer"] == "GenD" and meta["preprocessing"]
    model, cfg = load_detector(out)
    assert cfg.peft._target_.endswith("PeftAdapter") and cfg.head._target_.endswith(
        "LinearNormHead" if head == "LinearNorm" else "LinearHead"
    )
    # GenD's inputs: 224 px for PE (its native grid is resampled once), the processor's elsewhere
    if encoder == "pe":
        assert model.backbone.input_spec.size == (224, 224)
        assert model.backbone.input_spec.mean == pytest.approx((0.5, 0.5, 0.5))


@pytest.mark.parametrize("ddp_prefix", [False, True], ids=["plain", "module_prefix"])
def test_effort_checkpoint_converts_with_logits_equal_to_efforts(tmp_path, ddp_prefix):
    reference = EffortReference()
    path = reference.save(tmp_path / "effort.pth", ddp_prefix=ddp_prefix)
    assert detect_format(path) == "effort"
    out = convert_input(path, tmp_path / "converted", TINY["effort"])
    x = _inputs(out)
    error = (converted_logits(out, x) - reference.logits(x)).abs().max().item()
    assert error < 1e-5, error
    model, _ = load_detector(out)
    spec = model.backbone.input_spec
    assert spec.size == (28, 28)  # Effort resizes to the input size, no centre crop
    meta = json.loads((out / "meta.json").read_text())
    assert meta["svd_layers_folded"] == 2 * 4 and meta["dropped_source_keys"]  # U_r, S_r, V_r


def test_fsfm_checkpoint_converts_with_its_labels_swapped(tmp_path):
    reference = FSFMReference()
    path = reference.save(tmp_path / "checkpoint-min_val_loss.pth")
    assert detect_format(path) == "fsfm"
    out = convert_input(path, tmp_path / "converted", TINY["fsfm"])
    x = _inputs(out)
    fsfm = reference.logits(x)  # [fake, real]
    error = (converted_logits(out, x) - fsfm[:, [1, 0]]).abs().max().item()
    assert error < 1e-5, error
    model, _ = load_detector(out)
    p_fake = model.fake_probability(x)
    torch.testing.assert_close(p_fake, fsfm.softmax(-1)[:, 0], atol=1e-6, rtol=0)
    spec = model.backbone.input_spec
    assert spec.size == (32, 32)


def _run_convert(monkeypatch, tmp_path: Path, source: Path, fmt: str) -> None:
    import dfd.convert

    argv = [
        "dfd.convert",
        f"input={source}",
        f"output={tmp_path / 'out'}",
        f"format={fmt}",
        f"paths.output_root={tmp_path}",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    try:
        dfd.convert.main()
    finally:
        GlobalHydra.instance().clear()


@pytest.mark.parametrize(
    ("make", "fmt", "expected"),
    [
        ("effort", "gend", "is not a GenD Hub folder"),
        ("fsfm", "effort", "is not an Effort checkpoint"),
        ("gend", "fsfm", "is not an FSFM fine-tuned checkpoint"),
        ("effort", "fsfm", "is not an FSFM fine-tuned checkpoint"),
    ],
)
def test_a_checkpoint_of_another_family_fails_with_one_line(
    tmp_path, monkeypatch, capsys, make, fmt, expected
):
    source = {
        "effort": lambda: EffortReference().save(tmp_path / "effort.pth"),
        "fsfm": lambda: FSFMReference().save(tmp_path / "fsfm.pth"),
        "gend": lambda: GenDReference("clip", "LinearNorm").save(tmp_path / "gend"),
    }[make]()
    with pytest.raises(SystemExit) as stop:
        _run_convert(monkeypatch, tmp_path, source, fmt)
    assert stop.value.code == 1  # a user error, as every command (dfd.runtime.cli.entry_point)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert not (tmp_path / "out").exists()


def test_forensics_adapter_checkpoint_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "ForensicsAdapter.pth"
    torch.save(
        {"adapter.query_embed": torch.zeros(1, 4, 8), "clip_model.visual.proj": torch.zeros(2)},
        path,
    )
    with pytest.raises(ConversionError, match="ForensicsAdapter.*not convertible"):
        detect_format(path)


def test_converted_folder_is_evaluated_and_predicted_like_any_other(tmp_path, demo_cache):
    from skimage import data as skimage_data

    from dfd.evaluate import evaluate_checkpoint
    from dfd.predict.predictor import run_prediction
    from tests.test_predict import write_png

    path = EffortReference().save(tmp_path / "effort.pth")
    out = convert_input(
        path, tmp_path / "converted", [*TINY["effort"], f"paths.cache_dir={demo_cache}"]
    )
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        evaluation = compose(
            config_name="evaluate", overrides=[f"checkpoint={out}", "tracking=none"]
        )
        image = write_png(tmp_path / "astronaut.png", skimage_data.astronaut())
        prediction = compose(
            config_name="predict",
            overrides=[
                f"checkpoint={out}",
                f"input={image}",
                f"output={tmp_path / 'pred.csv'}",
                f"paths.output_dir={tmp_path / 'pred'}",
            ],
        )
    with open_dict(evaluation):
        evaluation.paths.output_dir = str(tmp_path / "eval")
    results = evaluate_checkpoint(evaluation)
    assert results["test"] and 0.0 <= results["mean"]["video_auc"] <= 1.0
    rows = run_prediction(prediction)
    assert len(rows) == 1 and 0.0 <= rows[0].p_fake <= 1.0
