"""dfd.export: merged adapters, metadata in the file, outputs equal to PyTorch's (onnxruntime)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from dfd.data.frames import FrameTransform
from dfd.engine.restore import load_detector
from dfd.export.traced import ExportedDetector, _example_inputs, export_checkpoint, merge_adapters
from dfd.models.build import build_detector
from tests.conftest import CONF_DIR, compose_train
from tests.demo_checkpoint import trained_checkpoint

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(demo_cache) -> Path:
    return trained_checkpoint(demo_cache)


@pytest.fixture(scope="module")
def onnx_export(checkpoint, tmp_path_factory) -> tuple[Path, dict]:
    """The demo checkpoint exported once to ONNX: (file, what dfd.export returned)."""
    output = tmp_path_factory.mktemp("onnx") / "detector.onnx"
    return output, export(checkpoint, output)


def export(checkpoint: Path, output: Path, *extra: str) -> dict:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name="export",
            overrides=[
                f"checkpoint={checkpoint}",
                f"output={output}",
                f"paths.output_dir={output.parent / 'run'}",
                *extra,
            ],
        )
    return export_checkpoint(cfg)


def test_onnx_export_matches_pytorch_and_carries_the_input_spec(checkpoint, onnx_export):
    path, result = onnx_export
    assert result["max_abs_diff"] <= 1e-4

    # independently: another batch size (the batch axis is dynamic), other inputs
    model, _ = load_detector(checkpoint)
    spec = model.backbone.input_spec
    x = _example_inputs(spec, batch=7, seed=1)
    with torch.no_grad():
        logits = model.logits(x)
    session = ort.InferenceSession(str(path))
    got_logits, got_p = session.run(["logits", "p_fake"], {"pixel_values": x.numpy()})
    np.testing.assert_allclose(got_logits, logits.numpy(), atol=1e-4)
    np.testing.assert_allclose(got_p, logits.softmax(-1)[:, 1].numpy(), atol=1e-4)

    meta = session.get_modelmeta().custom_metadata_map
    input_spec = json.loads(meta["dfd.input_spec"])
    assert input_spec["size"] == list(spec.size) and input_spec["interpolation"] == "bicubic"
    assert input_spec["mean"] == list(spec.mean) and input_spec["std"] == list(spec.std)
    # the processor's geometry (tiny_clip: CLIP's shortest edge, then the centre crop)
    assert input_spec["resize"] == {"shortest_edge": 64} and input_spec["crop"] == [64, 64]
    assert json.loads(meta["dfd.labels"]) == {"0": "real", "1": "fake"}
    assert json.loads(meta["dfd.checkpoint"])["path"] == str(checkpoint.resolve())
    # no peft at inference: LN-tuning's duplicate LayerNorms are gone from the graph
    names = {i.name for i in onnx.load(str(path)).graph.initializer}
    assert not any("ln_tuning" in n or "base_layer" in n for n in names)
    assert "backbone.model.encoder.layers.0.layer_norm1.weight" in names  # the tuned one, merged


def test_torchscript_export_matches_pytorch_with_metadata(tmp_path, checkpoint):
    result = export(checkpoint, tmp_path / "detector.pt", "format=torchscript")
    assert result["max_abs_diff"] <= 1e-4
    files = {"dfd.json": ""}
    torch.jit.load(str(tmp_path / "detector.pt"), _extra_files=files)
    assert json.loads(json.loads(files["dfd.json"])["dfd.labels"]) == {"0": "real", "1": "fake"}


@pytest.mark.parametrize("peft", ["ln", "lora", "effort"])
def test_merging_gives_the_unmerged_outputs_and_leaves_no_peft_module(peft):
    cfg = compose_train([f"peft={peft}", "backbone.pretrained=false"])
    torch.manual_seed(0)
    detector, _ = build_detector(cfg)
    with torch.no_grad():  # trained-looking adapters: LoRA's B starts at zero, LN at identity
        for name, p in detector.named_parameters():
            if p.requires_grad and "head" not in name:
                p.add_(0.05 * torch.randn_like(p))
    detector.eval()
    x = _example_inputs(detector.backbone.input_spec, batch=3)
    with torch.no_grad():
        expected = detector.logits(x)
        merged = ExportedDetector(merge_adapters(detector)).eval()
        logits, _ = merged(x)
    assert not [m for m in merged.modules() if type(m).__module__.startswith("peft")]
    assert not [m for m in merged.modules() if type(m).__module__ == "dfd.models.effort"]
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    found = re.search(r"<!-- export-example[^>]*-->\s*```python\n(.*?)```", text, re.DOTALL)
    assert found, "README.md lost its export example"
    return found.group(1)


@pytest.mark.parametrize("shape", [(256, 256), (300, 211)], ids=["square", "non_square"])
def test_readme_example_scores_a_crop_with_onnxruntime_numpy_and_opencv(
    tmp_path, checkpoint, onnx_export, shape
):
    shutil.copy(onnx_export[0], tmp_path / "detector.onnx")
    rng = np.random.default_rng(0)
    # a smooth "crop" (real crops are smooth; noise would exaggerate resize differences); a
    # non-square one goes through the processor's shortest-edge rule and centre crop
    crop = cv2.resize(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8), shape[::-1])
    cv2.imwrite(str(tmp_path / "face.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))

    code = readme_example()
    for module in ("torch", "dfd", "PIL"):
        assert f"import {module}" not in code and f"from {module}" not in code
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    snippet_p = float(out.getvalue().split("=")[1])

    model, _ = load_detector(checkpoint)
    x = FrameTransform(model.backbone.input_spec)(Image.fromarray(crop), rng=None)
    with torch.no_grad():
        dfd_p = float(model.fake_probability(x[None])[0])
    assert abs(snippet_p - dfd_p) < 0.01, (snippet_p, dfd_p)
    print(f"README example p_fake {snippet_p:.4f}, dfd {dfd_p:.4f}")


def test_command_line_export_and_a_bad_format_is_one_line(tmp_path, checkpoint):
    bad = subprocess.run(
        [
            *(sys.executable, "-m", "dfd.export", f"checkpoint={checkpoint}"),
            *("format=tflite", f"hydra.run.dir={tmp_path}/run"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "format=tflite is not one of onnx, torchscript" in bad.stderr
