"""dfd.export format=hf: a folder AutoModel loads with torch and transformers only, that scores
crops as dfd.predict does, with a model card generated from the run's files; dfd.predict reads
such a folder, and refuses one whose modeling file is not dfd's own."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image
from torch import nn

from dfd.engine.hf_folder import HFFolderError, check_hf_folder
from dfd.engine.restore import load_scoring_model
from dfd.export.hf import (
    build_hf_model,
    check_exportable,
    check_processor,
    encoder_processor,
    export_hf,
    pil_backend,
    write_processor,
)
from dfd.export.model_card import NO_INTERVAL, interval_text
from dfd.models.build import build_detector
from dfd.runtime.cli import user_message
from dfd.runtime.errors import UserError
from tests.conftest import CONF_DIR, compose_train
from tests.demo_checkpoint import trained_checkpoint
from tests.test_backbone import BACKBONES, TINY, _override
from tests.test_predict import predict, write_png

REPO = Path(__file__).resolve().parents[1]


def export(checkpoint: Path, output: Path, *extra: str) -> dict:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name="export",
            overrides=[
                f"checkpoint={checkpoint}",
                "format=hf",
                f"output={output}",
                f"paths.output_dir={output.parent / 'run'}",
                *extra,
            ],
        )
    return export_hf(cfg)


@pytest.fixture(scope="module")
def checkpoint(demo_cache) -> Path:
    return trained_checkpoint(demo_cache)


@pytest.fixture(scope="module")
def hf_folder(checkpoint, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("hf") / "detector-hf"
    result = export(checkpoint, output)
    assert result["max_abs_diff"] <= 1e-6 and result["processor_max_abs_diff"] <= 1e-6
    return output


def smooth_crop(seed: int, side: int) -> np.ndarray:
    """A smooth RGB "face crop" (real crops are smooth; noise exaggerates resize differences)."""
    rng = np.random.default_rng(seed)
    return np.asarray(
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).resize(
            (side, side), Image.BICUBIC
        )
    )


def front_matter(card: str) -> dict:
    found = re.match(r"---\n(.*?)\n---\n", card, re.DOTALL)
    assert found, "the card has no YAML front matter"
    return yaml.safe_load(found.group(1))


def hf_p_fake(folder: Path, crops: list[Path]) -> np.ndarray:
    """p(fake) the way the card tells a user without dfd: AutoImageProcessor + AutoModel."""
    processor = transformers.AutoImageProcessor.from_pretrained(str(folder), **pil_backend())
    model = transformers.AutoModel.from_pretrained(str(folder), trust_remote_code=True).eval()
    images = [Image.open(p).convert("RGB") for p in crops]
    with torch.no_grad():
        return model(**processor(images=images, return_tensors="pt")).p_fake.numpy()


def test_folder_holds_the_modeling_file_auto_map_processor_and_card(hf_folder):
    names = {p.name for p in hf_folder.iterdir()}
    assert names == {
        "config.json",
        "model.safetensors",
        "modeling_dfd.py",
        "preprocessor_config.json",
        "README.md",
    }
    config = json.loads((hf_folder / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_dfd.DfdDetector"
    assert config["encoder"]["model_type"] == "clip_vision_model"
    assert "_name_or_path" not in config["encoder"]  # no path of the exporting machine
    # the modeling file needs torch and transformers only
    source = (hf_folder / "modeling_dfd.py").read_text()
    imports = set(re.findall(r"^(?:from|import) (\w+)", source, re.MULTILINE))
    assert imports <= {"__future__", "dataclasses", "torch", "transformers"}, imports
    # LN-tuning merged: plain LayerNorm weights, no peft copies
    from safetensors import safe_open

    with safe_open(str(hf_folder / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert "encoder.encoder.layers.0.layer_norm1.weight" in keys or any(
        k.endswith("layers.0.layer_norm1.weight") for k in keys
    )
    assert not [k for k in keys if "ln_tuning" in k or "base_layer" in k]


def test_card_has_a_model_index_entry_per_target_with_the_runs_video_auc(hf_folder, checkpoint):
    card = (hf_folder / "README.md").read_text()
    meta = front_matter(card)
    metrics = json.loads((checkpoint.parent / "metrics.json").read_text())
    results = meta["model-index"][0]["results"]
    assert len(results) == len(metrics["test"]) == 4
    by_type = {r["dataset"]["type"]: r for r in results}
    for target, m in metrics["test"].items():
        entry = by_type[f"dfd-demo-{target}"]
        assert entry["dataset"]["split"] == "test"
        (metric,) = entry["metrics"]
        assert metric["type"] == "roc_auc" and metric["name"] == "Video AUC"
        assert metric["value"] == round(m["video_auc"], 4)
        assert metric["args"]["level"] == "video" and metric["args"]["aggregate"] == "mean"
        assert metric["args"]["selected_on"].startswith("dfd demo benchmark: source, split `val`")
    assert meta["library_name"] == "transformers" and meta["license"] == "other"
    assert "ln" in meta["tags"] and "tiny_clip" in meta["tags"]
    # the protocol card and the results table, read from the run's files
    assert "| Checkpoint selection | dfd demo benchmark: source, split `val`" in card
    assert f"epoch {json.loads((checkpoint / 'meta.json').read_text())['epoch']}" in card
    # every target's video AUC with the bootstrap interval the run recorded
    tested = json.loads((checkpoint.parent / "metrics.json").read_text())["test"]
    assert len(tested) == 4 and NO_INTERVAL not in card
    for metrics in tested.values():
        assert f"| {interval_text(metrics)} |" in card
    assert "hf upload" in card and "python -m dfd.predict checkpoint=detector-hf" in card


def test_intervals_are_shown_when_metrics_json_has_them():
    assert interval_text({"video_auc_ci_low": 0.81234, "video_auc_ci_high": 0.9}) == (
        "[0.8123, 0.9000]"
    )
    assert interval_text({"video_auc": 0.8}) == NO_INTERVAL


def test_checkpoint_without_test_results_gets_a_card_that_says_so(checkpoint, tmp_path):
    lone = tmp_path / "run" / "checkpoint"
    shutil.copytree(checkpoint, lone)  # no metrics.json beside it
    export(lone, tmp_path / "out", "check=false")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "No test results recorded" in card
    assert "model-index" not in front_matter(card)


def test_metrics_of_another_epoch_are_refused(checkpoint, tmp_path):
    other = tmp_path / "metrics.json"
    other.write_text(json.dumps({"best_epoch": 99, "test": {"mouth": {"video_auc": 0.5}}}))
    with pytest.raises(ValueError, match="holds the results of epoch 99"):
        export(checkpoint, tmp_path / "out", "check=false", f"card.metrics={other}")


def test_loaded_folder_reproduces_dfd_predict_on_the_same_crops(hf_folder, checkpoint, tmp_path):
    crops = [write_png(tmp_path / "crops" / f"{i}.png", smooth_crop(i, side)) for i, side in
             enumerate((256, 64, 150))]  # fmt: skip
    predicted = predict(checkpoint, tmp_path / "crops", tmp_path / "p.json", "crop=false")
    dfd_p = np.array([r.p_fake for r in sorted(predicted, key=lambda r: r.input)])
    theirs = hf_p_fake(hf_folder, crops)
    assert np.abs(theirs - dfd_p).max() <= 1e-6, (theirs, dfd_p)
    # dfd.predict reads the folder too, and gives the same scores
    from_folder = predict(hf_folder, tmp_path / "crops", tmp_path / "q.json", "crop=false")
    hf_dfd = np.array([r.p_fake for r in sorted(from_folder, key=lambda r: r.input)])
    assert np.abs(hf_dfd - dfd_p).max() <= 1e-6
    written = json.loads((tmp_path / "q.json").read_text())["checkpoint"]
    assert written["path"] == str(hf_folder.resolve())
    assert written["exported_from"] == str(checkpoint.resolve())
    print(f"AutoModel vs dfd.predict, max |dp| = {np.abs(theirs - dfd_p).max():.2e}")


def snippet(text: str, marker: str) -> str:
    found = re.search(rf"<!-- {marker}[^>]*-->\s*```python\n(.*?)```", text, re.DOTALL)
    assert found, f"no example marked {marker}"
    return found.group(1)


def run_snippet(code: str, cwd: Path) -> str:
    for module in ("dfd", "numpy", "cv2", "peft"):
        assert f"import {module}" not in code and f"from {module}" not in code
    out, before = io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, "example", "exec"), {})
    finally:
        os.chdir(before)
    return out.getvalue()


@pytest.mark.parametrize("where", ["README.md", "card"])
def test_the_example_scores_a_crop_as_dfd_predict(where, hf_folder, checkpoint, tmp_path):
    shutil.copytree(hf_folder, tmp_path / "detector-hf")
    write_png(tmp_path / "face.png", smooth_crop(7, 256))
    text = (REPO / "README.md" if where == "README.md" else hf_folder / "README.md").read_text()
    printed = run_snippet(snippet(text, "hf-crop-example"), tmp_path)
    snippet_p = float(printed.split("=")[1])
    (row,) = predict(checkpoint, tmp_path / "face.png", tmp_path / "p.csv", "crop=false")
    assert abs(snippet_p - row.p_fake) <= 1e-6, (snippet_p, row.p_fake)


def test_lora_and_the_arcface_head_export_exactly(demo_cache, tmp_path):
    lora = trained_checkpoint(demo_cache, "peft=lora", "head=arcface", "loss=arcface")
    result = export(lora, tmp_path / "hf")
    assert result["max_abs_diff"] <= 1e-5
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["head"]["kind"] == "cosine"
    assert "lora" in front_matter((tmp_path / "hf" / "README.md").read_text())["tags"]


# ------------------------------------------------------------------ what is refused


def test_a_folder_whose_modeling_file_is_not_dfds_is_refused_before_anything_runs(
    hf_folder, tmp_path
):
    foreign = tmp_path / "foreign"
    shutil.copytree(hf_folder, foreign)
    with (foreign / "modeling_dfd.py").open("a") as fh:
        fh.write("\nimport os; os.system('touch pwned')\n")
    with pytest.raises(HFFolderError, match="not dfd's own modeling file") as err:
        load_scoring_model(foreign)
    assert not (Path.cwd() / "pwned").exists()
    message = user_message(err.value, "predict", [])
    assert message and "\n" not in message and "refused, nothing in it was run" in message


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda c, p: c.update(auto_map={"AutoModel": "evil.Model"}), "is not a dfd detector"),
        (lambda c, p: c["encoder"].update(model_type="bert"), "not one of dfd's backbone"),
        (lambda c, p: p.update(auto_map={"AutoImageProcessor": "x.Y"}), "image_processor_type"),
        (lambda c, p: p.update(image_processor_type="os.system"), "image_processor_type"),
    ],
    ids=["auto_map", "encoder", "processor_auto_map", "processor_class"],
)
def test_a_folder_that_names_other_code_is_refused(hf_folder, tmp_path, edit, match):
    folder = tmp_path / "edited"
    shutil.copytree(hf_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    processor = json.loads((folder / "preprocessor_config.json").read_text())
    edit(config, processor)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    with pytest.raises(HFFolderError, match=match):
        check_hf_folder(folder)


def test_an_encoder_autmodel_cannot_rebuild_is_refused_with_one_line():
    with pytest.raises(UserError, match="cannot be exported with format=hf") as err:
        check_exportable(nn.Linear(2, 2), "pe_timm")
    assert "\n" not in str(err.value) and "format=onnx" in str(err.value)


def test_an_output_folder_with_other_files_is_left_alone(checkpoint, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="other files"):
        export(checkpoint, tmp_path / "busy", "check=false")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


# ------------------------------------------------- every transformers backbone of conf/backbone


@pytest.mark.parametrize("name", BACKBONES)
def test_every_backbone_option_exports_and_reloads_with_automodel(name, tmp_path):
    arch = OmegaConf.load(CONF_DIR / "backbone" / f"{name}.yaml").get("architecture") or {}
    tiny = TINY.get(arch.get("model_type"))
    if tiny is None:
        pytest.skip(f"conf/backbone/{name}.yaml has no tiny dims in tests/test_backbone.py")
    tiny = {
        k: v for k, v in tiny.items() if k in arch
    }  # as test_backbone: the family's dims it has
    overrides = [f"backbone={name}", "backbone.pretrained=false", "peft=full", "head=linear_norm"]
    overrides += [f"backbone.architecture.{k}={_override(v)}" for k, v in tiny.items()]
    cfg = compose_train(overrides)
    torch.manual_seed(0)
    detector, _ = build_detector(cfg)
    detector.eval()
    if not isinstance(detector.backbone.model, transformers.PreTrainedModel):
        # an encoder AutoModel cannot rebuild (a timm model) is refused, in one line
        with pytest.raises(UserError, match="cannot be exported with format=hf"):
            check_exportable(detector.backbone.model, name)
        return
    model_type = check_exportable(detector.backbone.model, name)
    build_hf_model(detector, {}).save_pretrained(str(tmp_path))
    shutil.copyfile(REPO / "dfd" / "models" / "hf_detector.py", tmp_path / "modeling_dfd.py")
    loaded = transformers.AutoModel.from_pretrained(str(tmp_path), trust_remote_code=True).eval()
    x = torch.randn(2, 3, tiny["image_size"], tiny["image_size"])
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=x).logits, detector.logits(x))
    # the encoder's own image processor, set to the spec, prepares crops exactly as dfd
    spec = detector.backbone.input_spec
    write_processor(encoder_processor(cfg.backbone, model_type), spec, tmp_path)
    assert check_processor(tmp_path, spec, 1e-6) <= 1e-6
