"""Exporting a detector to one ONNX or TorchScript file (`python -m dfd.export`).

The exported model needs neither dfd nor peft: LN-tuning's tuned LayerNorms and LoRA's low-rank
updates are merged into the backbone's weights (peft's ``merge_and_unload``), and the file
carries what a user needs to feed it: input size, interpolation, mean and std, and the label
convention (ONNX ``metadata_props``; a ``dfd.json`` extra file in TorchScript). Input:
``pixel_values`` (B, 3, H, W) float32, RGB in [0, 1] normalized with that mean and std.
Outputs: ``logits`` (B, 2) over [real, fake] and ``p_fake`` (B,) = softmax(logits)[:, 1].
The command succeeds only once the written file, run on random inputs, matches PyTorch.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image
from torch import nn

from dfd import __version__
from dfd.data.spec import InputSpec
from dfd.engine.restore import checkpoint_identity, load_detector
from dfd.models.detector import Detector
from dfd.runtime.errors import UserError, config_flag

FORMATS = ("onnx", "torchscript")
INPUT_NAME, OUTPUT_NAMES = "pixel_values", ("logits", "p_fake")
LABELS = {"0": "real", "1": "fake"}
METADATA_FILE = "dfd.json"  # TorchScript extra file


class ExportError(UserError):
    """The exported model does not reproduce PyTorch's outputs (or cannot be checked)."""


class ExportedDetector(nn.Module):
    """A detector with plain (merged) weights and a fixed output: (logits, p_fake)."""

    def __init__(self, detector: Detector) -> None:
        super().__init__()
        self.backbone = detector.backbone
        self.head = detector.head

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.head(self.backbone(pixel_values))  # (B, 2)
        return logits, logits.softmax(dim=-1)[:, 1]  # (B, 2), (B,)


def merge_adapters(detector: Detector) -> Detector:
    """Fold the backbone's peft adapter into its weights and drop every peft module.

    LN-tuning's merge swaps the tuned LayerNorm copies in for the frozen originals; LoRA's
    adds B @ A * scale to each targeted weight; Effort's SVD residual layers become plain
    linears with W = W_main + U S V. A model with no adapter (full fine-tuning, linear
    probe) is returned unchanged.
    """
    from peft import PeftModel

    from dfd.models.effort import merge_svd_residuals

    model = detector.backbone.model
    if isinstance(model, PeftModel):
        detector.backbone.model = model.merge_and_unload()
    merge_svd_residuals(detector.backbone)
    left = sorted(
        {type(m).__module__ for m in detector.modules() if type(m).__module__.startswith("peft")}
    )
    if left:
        raise RuntimeError(f"peft modules remain after merging: {left}")
    return detector


def _interpolation(resample: int) -> str:
    return Image.Resampling(resample).name.lower()  # 3 -> "bicubic"


def model_metadata(spec: InputSpec, identity: dict[str, Any]) -> dict[str, str]:
    """The string key/value pairs stored in the exported file (all values JSON)."""
    input_spec = {
        "name": INPUT_NAME,
        "layout": "NCHW",
        "channels": "RGB",
        "size": list(spec.size),  # (height, width) the model takes
        # how an image of any shape gets there, as the backbone's transformers processor does:
        # resize {shortest_edge: s} (long edge int(s * long / short)) or {height, width},
        # then the centre crop [height, width] at top = (h - crop_h) // 2, left = (w - crop_w) // 2
        **spec.to_json(),
        "interpolation": _interpolation(spec.resample),
        "pil_resample": spec.resample,
        "scale": "x / 255",
        "mean": list(spec.mean),
        "std": list(spec.std),
    }
    outputs = {
        "logits": "(B, 2) over the labels",
        "p_fake": "(B,) softmax(logits)[:, 1], the probability of label 1 (fake)",
    }
    return {
        "dfd.input_spec": json.dumps(input_spec),
        "dfd.labels": json.dumps(LABELS),
        "dfd.outputs": json.dumps(outputs),
        "dfd.checkpoint": json.dumps(identity),
        "dfd.version": __version__,
    }


def _example_inputs(spec: InputSpec, batch: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    h, w = spec.size
    # normalized pixels of uniform noise in [0, 1]: the range real inputs have
    x = torch.rand(batch, 3, h, w, generator=generator)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    return (x - mean) / std


def export_onnx(
    model: ExportedDetector, example: torch.Tensor, path: Path, opset: int, meta: dict[str, str]
) -> None:
    """Write `model` as ONNX (dynamic batch) with `meta` in its metadata_props."""
    import onnx

    with warnings.catch_warnings():
        # the TorchScript-based exporter needs no onnxscript; torch calls it deprecated
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={INPUT_NAME: {0: "batch"}, "logits": {0: "batch"}, "p_fake": {0: "batch"}},
            opset_version=opset,
        )
    proto = onnx.load(str(path))
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def export_torchscript(
    model: ExportedDetector, example: torch.Tensor, path: Path, meta: dict[str, str]
) -> None:
    """Write `model` traced to TorchScript, with `meta` as the extra file ``dfd.json``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        traced = torch.jit.trace(model, (example,), strict=False)
    torch.jit.save(traced, str(path), _extra_files={METADATA_FILE: json.dumps(meta)})


def run_exported(path: Path, fmt: str, pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(logits, p_fake) of the exported file on `pixel_values`: onnxruntime or torch.jit.load."""
    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ExportError(
                "checking the ONNX file needs onnxruntime (`pip install onnxruntime`); "
                "or pass check=false"
            ) from err
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        logits, p_fake = session.run(list(OUTPUT_NAMES), {INPUT_NAME: pixel_values})
        return np.asarray(logits), np.asarray(p_fake)
    loaded = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        logits, p_fake = loaded(torch.from_numpy(pixel_values))
    return logits.numpy(), p_fake.numpy()


def export_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    """Export ``cfg.checkpoint`` to ``cfg.output`` in ``cfg.format``; return the check's numbers.

    The PyTorch reference is the detector as dfd.evaluate builds it (adapters unmerged); the
    exported file must give the same logits and p_fake within ``cfg.tolerance``.
    """
    fmt = str(cfg.format)
    if fmt not in FORMATS:
        raise UserError(f"format={fmt} is not one of {', '.join(FORMATS)}, hf")
    check = config_flag(cfg, "check")
    folder = Path(cfg.checkpoint).expanduser()
    output = Path(cfg.output).expanduser()
    reference, train_cfg = load_detector(folder, cfg.paths.output_dir)
    spec = reference.backbone.input_spec
    example = _example_inputs(spec, int(cfg.check_batch))
    with torch.no_grad():
        ref_logits = reference.logits(example).float()
        ref_p = ref_logits.softmax(dim=-1)[:, 1]

    merged, _ = load_detector(
        folder, cfg.paths.output_dir
    )  # a second copy: merging changes the modules in place
    model = ExportedDetector(merge_adapters(merged)).eval()
    meta = model_metadata(spec, checkpoint_identity(folder, train_cfg))
    output.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "onnx":
        export_onnx(model, example[:1], output, int(cfg.opset), meta)
    else:
        export_torchscript(model, example[:1], output, meta)

    result: dict[str, Any] = {"output": str(output), "format": fmt}
    if check:
        logits, p_fake = run_exported(output, fmt, example.numpy())
        diff = max(
            float(np.abs(logits - ref_logits.numpy()).max()),
            float(np.abs(p_fake - ref_p.numpy()).max()),
        )
        result["max_abs_diff"] = diff
        if not diff <= float(cfg.tolerance):
            raise ExportError(
                f"the exported {fmt} model differs from PyTorch by {diff:.2e} (> tolerance="
                f"{cfg.tolerance}) on {len(example)} random inputs; {output} is not usable"
            )
    print(
        f"exported {folder} -> {output} ({fmt}, input {spec.size[0]}x{spec.size[1]} "
        f"{_interpolation(spec.resample)})"
        + (f"; max |exported - PyTorch| = {result['max_abs_diff']:.2e}" if check else "")
    )
    return result
