"""A checkpoint as a Hugging Face model folder (`python -m dfd.export format=hf`).

The folder loads with ``transformers.AutoModel.from_pretrained(folder, trust_remote_code=True)``
and needs torch and transformers only: ``modeling_dfd.py`` (dfd's `dfd.models.hf_detector`,
copied verbatim and named in ``config.json``'s ``auto_map``), ``model.safetensors`` (the
encoder with LN-tuning's and LoRA's weights merged in, as the ONNX export merges them, and
the head), ``preprocessor_config.json`` (the encoder's own image processor, set to resize
to dfd's input size, so ``AutoImageProcessor`` prepares a crop exactly as dfd does) and a
``README.md`` model card generated from the run's files (`dfd.export.model_card`).

Before the command reports success it loads the folder as a user would (``AutoModel`` and
``AutoImageProcessor``) and checks the model against the checkpoint's detector and the
processor against dfd's input transform.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from torch import nn

from dfd import __version__
from dfd.data.frames import FrameTransform
from dfd.data.spec import InputSpec
from dfd.engine.hf_folder import (
    AUTO_MAP,
    CONFIG,
    MODEL_TYPE,
    MODELING_FILE,
    PROCESSOR,
    encoder_class,
    modeling_source,
)
from dfd.engine.restore import checkpoint_identity, load_detector
from dfd.export.model_card import protocol_of, read_results, render_card
from dfd.export.traced import ExportError, _example_inputs, merge_adapters
from dfd.models.heads import ArcFaceHead, LinearHead, LinearNormHead
from dfd.models.hf_detector import DfdDetector, DfdDetectorConfig
from dfd.runtime.errors import UserError, config_flag
from dfd.runtime.hub import hub_reachable

# the encoder config's fields that name the exporting machine, not the model
_LOCAL_FIELDS = ("_name_or_path", "transformers_version", "id2label", "label2id")


def pil_backend() -> dict[str, Any]:
    """``AutoImageProcessor`` keyword for the PIL backend: Pillow's resize is dfd's."""
    major = int(transformers.__version__.split(".")[0])
    return {"backend": "pil"} if major >= 5 else {"use_fast": False}


def check_exportable(encoder: nn.Module, backbone: str) -> str:
    """The encoder's ``model_type`` if the modeling file can rebuild it through ``AutoModel``;
    a `UserError` saying so otherwise (e.g. a timm encoder)."""
    config = getattr(encoder, "config", None)
    model_type = getattr(config, "model_type", None)
    own = f"{type(encoder).__module__.split('.')[0]}.{type(encoder).__name__}"
    maps_to = encoder_class(str(model_type)) if model_type else ""
    if not isinstance(encoder, transformers.PreTrainedModel) or maps_to != own:
        raise UserError(
            f"backbone {backbone} ({type(encoder).__module__}.{type(encoder).__name__}) cannot be "
            f"exported with format=hf: the folder's modeling file builds its encoder with "
            f"transformers' AutoModel, which maps model_type {model_type!r} to "
            f"{maps_to or 'no class'}; use format=onnx or format=torchscript"
        )
    return str(model_type)


def head_config(head: nn.Module) -> dict[str, Any]:
    """The modeling file's description of a dfd head (its weights keep their names)."""
    if isinstance(head, ArcFaceHead):
        classes, features = head.weight.shape
        return {"kind": "cosine", "in_features": features, "num_classes": classes, "scale": head.s}
    if isinstance(head, LinearHead):  # LinearNormHead is one
        kind = "linear_norm" if isinstance(head, LinearNormHead) else "linear"
        return {
            "kind": kind,
            "in_features": head.fc.in_features,
            "num_classes": head.fc.out_features,
        }
    raise UserError(
        f"head {type(head).__name__} cannot be exported with format=hf (linear, linear_norm "
        f"and arcface heads can); use format=onnx"
    )


def encoder_config(encoder: transformers.PreTrainedModel) -> dict[str, Any]:
    config = encoder.config.to_dict()
    for key in _LOCAL_FIELDS:
        config.pop(key, None)
    return config


def build_hf_model(detector: nn.Module, record: dict[str, Any]) -> DfdDetector:
    """dfd's transformers model holding a merged detector's weights, with `record` in its config."""
    encoder = detector.backbone.model
    config = DfdDetectorConfig(
        encoder=encoder_config(encoder),
        feature=detector.backbone.feature,
        head=head_config(detector.head),
        dfd=record,
    )
    config.auto_map = dict(AUTO_MAP)
    config.architectures = ["DfdDetector"]
    model = DfdDetector(config)
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    state |= {f"head.{k}": v for k, v in detector.head.state_dict().items()}
    model.load_state_dict(state, strict=True)
    return model.eval()


def encoder_processor(backbone: DictConfig, model_type: str) -> Any:
    """The encoder's own image processor: from its weights' folder or hub id, or (random
    weights) its class with the backbone config's ``image_processor`` fields."""
    fields = OmegaConf.to_container(backbone.get("image_processor") or {}, resolve=True)
    named = fields.pop("image_processor_type", None)
    # A backbone config may name a PIL processor class on purpose (DINOv3's own processor is
    # torchvision-only): that class then wins over the one the weights' folder names.
    if backbone.get("pretrained", True) and not named:
        source = str(backbone.name_or_path)
        local = source.startswith(("/", ".", "~"))
        return transformers.AutoImageProcessor.from_pretrained(
            str(Path(source).expanduser()) if local else source,
            local_files_only=not local and not hub_reachable(),
            **pil_backend(),
        )
    name = named or _processor_class(model_type)
    if not name or not hasattr(transformers, name):
        raise UserError(
            f"backbone {backbone.get('name')}: no transformers image processor is known for "
            f"model_type {model_type!r}; set backbone.image_processor.image_processor_type"
        )
    return getattr(transformers, name)(**fields)


def _processor_class(model_type: str) -> str | None:
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES

    for key in (model_type, model_type.removesuffix("_vision_model")):
        names = IMAGE_PROCESSOR_MAPPING_NAMES.get(key)
        if isinstance(names, dict):  # transformers 5: {backend: class}
            names = names.get("pil") or next(iter(names.values()), None)
        elif isinstance(names, tuple):  # transformers 4: (slow, fast)
            names = names[0]
        if names:
            return str(names).removesuffix("Pil")
    return None


def write_processor(processor: Any, spec: InputSpec, folder: Path) -> None:
    """Save the processor set to dfd's input spec: its resize (a shortest edge, or straight to
    a height and width) and centre crop, with the spec's filter, mean and std, so the
    processor prepares any image, square or not, as dfd's eval transform does."""
    processor.save_pretrained(str(folder))
    path = folder / PROCESSOR
    data = json.loads(path.read_text())
    height, width = spec.size
    data.update(
        do_resize=True,
        resample=spec.resample,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(spec.mean),
        image_std=list(spec.std),
        do_convert_rgb=True,
    )
    crop = {"height": height, "width": width}
    if "crop_pct" in data:  # ConvNeXt: size is the crop, resized first to size / crop_pct
        short = spec.resize_to if isinstance(spec.resize_to, int) else height
        data["size"] = {"shortest_edge": height}
        data["crop_pct"] = height / short
        data.pop("crop_size", None)
    elif isinstance(spec.resize_to, int):  # the shortest edge, then the centre crop
        data["size"] = {"shortest_edge": spec.resize_to}
        data["crop_size"] = crop
        data["do_center_crop"] = True
    else:  # straight to (height, width), then a crop only if it is smaller
        resized = {"height": spec.resize_to[0], "width": spec.resize_to[1]}
        data["size"] = resized
        data["do_center_crop"] = resized != crop
        if resized != crop or "crop_size" in data:
            data["crop_size"] = crop
    data.pop("auto_map", None)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def check_processor(folder: Path, spec: InputSpec, tolerance: float) -> float:
    """Largest |AutoImageProcessor(folder) - dfd's eval transform| on random square crops."""
    processor = transformers.AutoImageProcessor.from_pretrained(str(folder), **pil_backend())
    transform = FrameTransform(spec)
    rng = np.random.default_rng(0)
    worst = 0.0
    for side in sorted({spec.size[0], 256, 97}):
        image = Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
        theirs = torch.as_tensor(np.asarray(processor(images=image)["pixel_values"][0]))
        worst = max(worst, float((theirs - transform(image, None)).abs().max()))
    if not worst <= tolerance:
        raise ExportError(
            f"{folder / PROCESSOR} prepares crops differently from dfd (max difference "
            f"{worst:.2e}); the folder is not usable"
        )
    return worst


def check_model(folder: Path, reference: nn.Module, spec: InputSpec, batch: int) -> float:
    """Largest |AutoModel(folder) - the checkpoint's detector| over logits and p(fake)."""
    loaded = transformers.AutoModel.from_pretrained(str(folder), trust_remote_code=True).eval()
    x = _example_inputs(spec, batch)
    with torch.no_grad():
        ref = reference.logits(x).float()
        out = loaded(pixel_values=x)
    return max(
        float((out.logits.float() - ref).abs().max()),
        float((out.p_fake - ref.softmax(dim=-1)[:, 1]).abs().max()),
    )


def _prepare_output(output: Path) -> None:
    if output.exists() and not output.is_dir():
        raise UserError(f"output={output} is a file: format=hf writes a folder")
    if output.is_dir() and any(output.iterdir()):
        config = output / CONFIG
        ours = config.is_file() and json.loads(config.read_text()).get("model_type") == MODEL_TYPE
        if not ours:
            raise UserError(
                f"output={output} is a folder with other files in it: pass a new or empty "
                f"folder (or one a previous format=hf export wrote, which is replaced)"
            )
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)


def write_hf_folder(
    folder: Path,
    output: Path,
    output_dir: Path | str | None = None,
    card: dict[str, Any] | None = None,
) -> tuple[nn.Module, str, bool]:
    """Write checkpoint `folder` as a Hugging Face folder at `output` (model, modeling file,
    processor, model card with the ``card`` options). Returns the checkpoint's own detector
    (unmerged: the reference to check against), the encoder's model_type, and whether the
    card has test results."""
    reference, train_cfg = load_detector(folder, output_dir)
    merged, _ = load_detector(folder, output_dir)  # merging changes modules in place
    merge_adapters(merged)
    backbone = str(train_cfg.backbone.get("name", ""))
    model_type = check_exportable(merged.backbone.model, backbone)
    spec = reference.backbone.input_spec
    card = dict(card or {})
    protocol = protocol_of(folder, train_cfg)
    results = read_results(folder, card.get("metrics"), protocol["selection"].get("epoch"))
    record = {
        "version": __version__,
        "checkpoint": checkpoint_identity(folder, train_cfg),
        "backbone": {
            "name": backbone,
            "name_or_path": str(train_cfg.backbone.get("name_or_path", "")),
            "model_class": str(train_cfg.backbone.get("model_class", "")),
            "pretrained": bool(train_cfg.backbone.get("pretrained", True)),
        },
        "scoring": {
            "aggregate": protocol["aggregate"],
            "frames_per_video": protocol["frames_per_video"].get("eval"),
            "precision": str(train_cfg.trainer.get("precision", "no")),
        },
        "protocol": protocol,
        "exported_with": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    model = build_hf_model(merged, record)

    _prepare_output(output)
    model.save_pretrained(str(output))
    shutil.copyfile(modeling_source(), output / MODELING_FILE)
    write_processor(encoder_processor(train_cfg.backbone, model_type), spec, output)
    card["folder_name"] = output.name
    (output / "README.md").write_text(render_card(protocol, results, record, card))
    return reference, model_type, bool(results)


def export_hf(cfg: DictConfig) -> dict[str, Any]:
    """Export ``cfg.checkpoint`` as a Hugging Face folder at ``cfg.output``; return the checks."""
    folder = Path(cfg.checkpoint).expanduser()
    output = Path(cfg.output).expanduser()
    check = config_flag(cfg, "check")
    card = dict(cfg.get("card") or {})
    reference, model_type, results = write_hf_folder(folder, output, cfg.paths.output_dir, card)
    spec = reference.backbone.input_spec
    result: dict[str, Any] = {"output": str(output), "format": "hf", "results": results}
    if check:
        result["processor_max_abs_diff"] = check_processor(output, spec, 1e-6)
        diff = check_model(output, reference, spec, int(cfg.check_batch))
        result["max_abs_diff"] = diff
        if not diff <= float(cfg.tolerance):
            raise ExportError(
                f"the exported folder's model differs from PyTorch by {diff:.2e} (> tolerance="
                f"{cfg.tolerance}) on {cfg.check_batch} random inputs; {output} is not usable"
            )
    print(
        f"exported {folder} -> {output} (Hugging Face folder, {model_type} encoder, input "
        f"{spec.size[0]}x{spec.size[1]}; model card "
        + ("with the run's test results" if results else "without test results: none recorded")
        + ")"
        + (f"; max |AutoModel - PyTorch| = {result['max_abs_diff']:.2e}" if check else "")
    )
    return result
