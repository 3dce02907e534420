"""A detector's model card, generated from its run's files, never written by hand.

Everything the card says comes from the checkpoint folder (its config, ``meta.json`` with the
selected epoch and the data it was trained on, recorded by `dfd.engine.saving`) and the run's
``metrics.json`` beside it: the protocol (training set, selection split, frames per video,
aggregation, the face pipeline behind the crops as `dfd.data.provenance` recorded it), every
target's video AUC with its interval when the run recorded one, and the ``model-index``
metadata in the Hugging Face schema (https://github.com/huggingface/hub-docs/blob/main/modelcard.md),
written by `huggingface_hub.ModelCardData`. A checkpoint without test results gets a card that
says so, with no results and no ``model-index``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCardData
from omegaconf import DictConfig, OmegaConf

from dfd import __version__
from dfd.data.demo.render import IMAGE_SIZE
from dfd.engine.restore import read_meta
from dfd.runtime.config import CONF_DIR

DEMO_READER = "dfd.data.demo.demo_index"
# dfd's dataset names (`conf/dataset/*.yaml`) as the field writes them
PRETTY_NAMES = {
    "ff": "FaceForensics++",
    "cdf_v2": "Celeb-DF-v2",
    "dfd": "DeepFakeDetection (DFD)",
    "dfdc": "DFDC",
    "dfdcp": "DFDC-Preview",
    "ffiw": "FFIW-10K",
}
# reader arguments that tell a reader's sets apart (paths and switches are left out)
DATASET_ARGS = ("compression", "manipulations", "sources", "labels")
NO_INTERVAL = "no interval recorded"
TASK = {"type": "image-classification", "name": "Deepfake detection (video level)"}


class CardError(ValueError):
    """The run's files contradict each other (e.g. metrics of another epoch)."""


def option_name(group: str, node: Mapping[str, Any] | None) -> str:
    """The ``conf/<group>`` option a config node was composed from, matched by its
    ``_target_`` (and its ``config._target_``): ``ln``, ``lora``, ``linear_norm``..."""
    node = dict(_plain(node) or {})

    def targets(n: Mapping[str, Any]) -> tuple[Any, Any]:
        inner = n.get("config")
        return n.get("_target_"), inner.get("_target_") if isinstance(inner, Mapping) else None

    wanted = targets(node)
    for path in sorted((CONF_DIR / group).glob("*.yaml")):
        option = yaml.safe_load(path.read_text()) or {}
        if isinstance(option, dict) and targets(option) == wanted:
            return path.stem
    return str(wanted[1] or wanted[0] or "unknown").rsplit(".", 1)[-1]


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def describe_dataset(spec: Mapping[str, Any] | None, key: str) -> dict[str, Any]:
    """A dataset spec of a run's config (a reader call) as the card names it: ``type`` (dfd's
    name), ``name`` (the field's), ``split`` and the arguments that select its videos."""
    spec = dict(_plain(spec) or {})
    demo = spec.get("_target_") == DEMO_READER
    short = str(spec.get("name") or spec.get("dataset") or key)
    name = f"dfd demo benchmark: {short}" if demo else PRETTY_NAMES.get(short, short)
    args = {k: spec[k] for k in DATASET_ARGS if spec.get(k) is not None}
    return {
        "type": f"dfd-demo-{short}" if demo else short,
        "name": name,
        "split": None if spec.get("split") is None else str(spec.get("split")),
        "args": args,
    }


def _provenance(data: Mapping[str, Any] | None, role: str) -> dict[str, str] | None:
    """One set's face pipeline as the run recorded it (params ``data/<role>/preprocess/*``)."""
    if data is None:
        return None
    prefix = f"data/{role}/preprocess/"
    found = {k.removeprefix(prefix): str(v) for k, v in data.items() if k.startswith(prefix)}
    return found or None


def pipeline_text(prov: Mapping[str, str] | None, demo: bool = False) -> str:
    """A face pipeline in one line: detector, landmarks, crop, frame sampling."""
    if demo:
        return f"none: the dfd demo benchmark renders its faces as aligned {IMAGE_SIZE}x{IMAGE_SIZE} crops"
    if prov is None:
        return "not recorded in this checkpoint"
    if prov.get("pipeline") != "dfd.preprocess":
        return "unknown: no dfd.preprocess manifest was found beside the crops"
    return (
        f"dfd.preprocess {prov.get('dfd', '')}: detector {prov.get('detector')} "
        f"(landmarks {prov.get('landmarks')}), aligned crop {prov.get('crop')}, frames "
        f"{prov.get('sampling')}"
    )


def read_results(checkpoint: Path, metrics: Path | None, epoch: int | None) -> dict | None:
    """The run's results (`metrics.json`: ``metrics``, else the one beside the checkpoint's
    run folder), or None when there is none. Metrics of another epoch are refused."""
    path = Path(metrics).expanduser() if metrics else checkpoint.parent / "metrics.json"
    if not path.is_file():
        if metrics:
            raise FileNotFoundError(f"card.metrics={metrics}: no such file")
        return None
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CardError(f"{path} is not readable JSON: {err}") from err
    if not isinstance(results, dict) or not results.get("test"):
        return None
    best = results.get("best_epoch")
    if best is not None and epoch is not None and int(best) != int(epoch):
        raise CardError(
            f"{path} holds the results of epoch {best}, but {checkpoint} holds epoch {epoch}: "
            f"pass the metrics.json of this checkpoint with card.metrics=<file>"
        )
    return {**results, "file": str(path)}


def protocol_of(checkpoint: Path, cfg: DictConfig) -> dict[str, Any]:
    """What a checkpoint was trained, selected and scored on, from its config and ``meta.json``.

    JSON-ready; an export folder keeps it in ``config.json`` (``dfd.protocol``) so that the
    card's summary can be shown without the run's files.
    """
    meta = read_meta(checkpoint)
    data_params = meta.get("data")
    data = cfg.get("data") or {}
    train = describe_dataset(data.get("train"), "train")
    val = describe_dataset(data.get("val"), "val")
    targets = {
        str(name): describe_dataset(spec, str(name))
        for name, spec in (data.get("test") or {}).items()
    }
    demo = (data.get("train") or {}).get("_target_") == DEMO_READER
    for name, target in targets.items():
        target["face_pipeline"] = pipeline_text(_provenance(data_params, name), demo)
    same = [n for n, t in targets.items() if (t["type"], t["split"]) == (val["type"], val["split"])]
    per_video = _plain(data.get("frames_per_video")) or {}
    return {
        "data": str(data.get("name", "unknown")),
        "demo": demo,
        "train": {**train, "counts": _counts(data_params, "train")},
        "selection": {
            **val,
            "monitor": str(cfg.trainer.get("monitor", "video_auc")),
            "epoch": meta.get("epoch"),
            "value": (meta.get("val") or {}).get(str(cfg.trainer.get("monitor", "video_auc"))),
            "leaky": bool(same),
            "also_a_target": same,
        },
        "frames_per_video": {"train": per_video.get("train"), "eval": per_video.get("eval")},
        "aggregate": str((cfg.get("eval") or {}).get("aggregate", "mean")),
        "face_pipeline": pipeline_text(_provenance(data_params, "train"), demo),
        "targets": targets,
        "method": {
            "backbone": str(cfg.backbone.get("name", "")),
            "name_or_path": str(cfg.backbone.get("name_or_path", "")),
            "pretrained": bool(cfg.backbone.get("pretrained", True)),
            "peft": option_name("peft", cfg.get("peft")),
            "head": option_name("head", cfg.get("head")),
            "loss": option_name("loss", cfg.get("loss")),
            "precision": str(cfg.trainer.get("precision", "no")),
            "seed": cfg.get("seed"),
        },
    }


def _counts(data_params: Mapping[str, Any] | None, role: str) -> dict[str, Any]:
    if not data_params:
        return {}
    return {
        k: data_params[f"data/{role}/{k}"]
        for k in ("videos", "frames")
        if f"data/{role}/{k}" in data_params
    }


def _set_text(d: Mapping[str, Any]) -> str:
    text = f"{d['name']}" + (f", split `{d['split']}`" if d.get("split") else "")
    args = ", ".join(f"{k} {v}" for k, v in (d.get("args") or {}).items())
    return text + (f" ({args})" if args else "")


def protocol_summary(protocol: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The protocol as (what, how) rows: the card's protocol table and the app's summary."""
    train, sel = protocol["train"], protocol["selection"]
    counts = train.get("counts") or {}
    trained = _set_text(train) + (
        f": {counts['videos']} videos, {counts['frames']} frames" if counts else ""
    )
    selected = f"{_set_text(sel)}, best `{sel['monitor']}`"
    if sel.get("epoch") is not None:
        value = sel.get("value")
        selected += f" (epoch {sel['epoch']}" + (
            f", {value:.4f})" if isinstance(value, int | float) else ")"
        )
    if sel.get("leaky"):
        selected += (
            f". LEAKY: this set is also a test target ({', '.join(sel['also_a_target'])}), so "
            f"its result is not a held-out measurement"
        )
    per_video = protocol["frames_per_video"]
    frames = (
        f"training {per_video.get('train') or 'all'}, evaluation "
        f"{per_video.get('eval') or 'all'} (evenly spaced among the frames with a face)"
    )
    m = protocol["method"]
    method = (
        f"{m['backbone']} (`{m['name_or_path']}`"
        + ("" if m.get("pretrained", True) else ", random weights")
        + f"), {m['peft']}, head {m['head']}, loss {m['loss']}"
    )
    return [
        ("Training set", trained),
        ("Checkpoint selection", selected),
        ("Frames per video", frames),
        ("Video score", f"the {protocol['aggregate']} of its frames' p(fake)"),
        ("Face pipeline (training crops)", protocol["face_pipeline"]),
        ("Method", method),
    ]


def _fmt(value: Any, count: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if count:  # metrics.json stores counts as floats
        return f"{int(value):,}"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def interval_text(metrics: Mapping[str, Any]) -> str:
    """A target's video-AUC interval as recorded in metrics.json, or `NO_INTERVAL`."""
    low, high = metrics.get("video_auc_ci_low"), metrics.get("video_auc_ci_high")
    if low is None or high is None:
        return NO_INTERVAL
    return f"[{_fmt(float(low))}, {_fmt(float(high))}]"


def eval_results(protocol: Mapping[str, Any], results: Mapping[str, Any]) -> list[EvalResult]:
    """One ``model-index`` result per target: its dataset and split, the video AUC, and the
    protocol it was measured under as the metric's arguments."""
    sel = protocol["selection"]
    out = []
    for name, metrics in results["test"].items():
        target = protocol["targets"].get(name) or describe_dataset(None, name)
        args: dict[str, Any] = {
            "level": "video",
            "aggregate": protocol["aggregate"],
            "frames_per_video": protocol["frames_per_video"].get("eval") or "all",
            "videos": int(metrics.get("n_videos") or 0),
            "trained_on": _set_text(protocol["train"]),
            "selected_on": f"{_set_text(sel)} ({sel['monitor']})",
            "leaky_selection": bool(sel.get("leaky")),
            "face_pipeline": target.get("face_pipeline", "not recorded"),
        }
        for key in ("video_auc_ci_low", "video_auc_ci_high"):
            if metrics.get(key) is not None:
                args[key.removeprefix("video_auc_")] = round(float(metrics[key]), 4)
        out.append(
            EvalResult(
                task_type=TASK["type"],
                task_name=TASK["name"],
                dataset_type=target["type"],
                dataset_name=target["name"],
                dataset_split=target.get("split"),
                dataset_args=target.get("args") or None,
                metric_type="roc_auc",
                metric_value=round(float(metrics["video_auc"]), 4),
                metric_name="Video AUC",
                metric_args=args,
                verified=False,
            )
        )
    return out


def front_matter(
    protocol: Mapping[str, Any], results: Mapping | None, name: str, card: Mapping[str, Any]
) -> str:
    """The card's YAML metadata: license, tags, base model, datasets and the model-index."""
    m = protocol["method"]
    hub_id = m["name_or_path"]
    is_hub_id = m.get("pretrained", True) and not hub_id.startswith(("/", ".", "~", "$"))
    license_ = card.get("license")
    data = ModelCardData(
        license=license_ or "other",
        license_name=None if license_ else "see-model-card",
        license_link=None if license_ else "README.md",
        library_name="transformers",
        pipeline_tag="image-classification",
        tags=["deepfake-detection", "face-forgery-detection", "dfd", m["backbone"], m["peft"]],
        base_model=hub_id if is_hub_id else None,
        datasets=[protocol["train"]["name"]],
        metrics=["roc_auc"],
        model_name=name,
        eval_results=eval_results(protocol, results) if results else None,
    )
    return data.to_yaml()


def results_table(results: Mapping[str, Any], targets: Mapping[str, Any]) -> str:
    lines = [
        "| target | split | videos | frames | video AUC | video AUC interval | frame AUC "
        "| video EER | video AP |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for name, m in results["test"].items():
        target = targets.get(name) or describe_dataset(None, name)
        lines.append(
            f"| {target['name']} | {target.get('split') or ''} | {_fmt(m.get('n_videos'), True)} "
            f"| {_fmt(m.get('n_frames'), True)} | {_fmt(m.get('video_auc'))} | {interval_text(m)} "
            f"| {_fmt(m.get('frame_auc'))} | {_fmt(m.get('video_eer'))} | {_fmt(m.get('video_ap'))} |"
        )
    mean = results.get("mean") or {}
    if mean:
        lines.append(
            f"| mean over {len(results['test'])} targets | | | | {_fmt(mean.get('video_auc'))} "
            f"| | {_fmt(mean.get('frame_auc'))} | {_fmt(mean.get('video_eer'))} "
            f"| {_fmt(mean.get('video_ap'))} |"
        )
    return "\n".join(lines)


CROP_SNIPPET = """\
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModel

folder = "{folder}"  # this folder, or its hub id once uploaded
processor = AutoImageProcessor.from_pretrained(folder, backend="pil")
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
crop = Image.open("face.png").convert("RGB")  # an aligned face crop (see the face pipeline)
with torch.no_grad():
    out = model(**processor(images=crop, return_tensors="pt"))
print(f"p(fake) = {{out.p_fake[0].item():.6f}}")
"""

VIDEO_SNIPPET = """\
import glob

import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModel

folder = "{folder}"
processor = AutoImageProcessor.from_pretrained(folder, backend="pil")
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
# aligned face crops of one video's sampled frames, e.g. dfd.preprocess's <video>/NNN.png
frames = [Image.open(p).convert("RGB") for p in sorted(glob.glob("crops/my_video/*.png"))]
with torch.no_grad():
    p_fake = model(**processor(images=frames, return_tensors="pt")).p_fake
print(f"video score = {{p_fake.{aggregate}().item():.6f}} over {{len(frames)}} frames")
"""


def render_card(
    protocol: Mapping[str, Any],
    results: Mapping[str, Any] | None,
    record: Mapping[str, Any],
    card: Mapping[str, Any],
) -> str:
    """The whole ``README.md``: front matter, protocol, results, use, intended use, limits.

    `record` is the export's ``dfd`` block (checkpoint identity, versions); `card` the
    export command's ``card`` options (name, license).
    """
    m = protocol["method"]
    name = card.get("name") or f"dfd-{m['backbone']}-{m['peft']}-{protocol['data']}"
    source = record.get("checkpoint") or {}
    aggregate = "median" if protocol["aggregate"] == "median" else "mean"
    rows = "\n".join(f"| {what} | {how} |" for what, how in protocol_summary(protocol))
    targets = protocol["targets"]
    tested = ", ".join(t["name"] for t in targets.values()) or "none"
    parts = [
        "---",
        front_matter(protocol, results, name, card).rstrip(),
        "---",
        "",
        f"# {name}",
        "",
        f"A face deepfake detector trained with dfd on "
        f"{_set_text(protocol['train'])}: {m['backbone']} encoder, {m['peft']}, {m['head']} "
        f"head. Given an aligned face crop it returns p(fake), the probability that the face "
        f"is manipulated (label 1; 0 = real). A video's score is the {aggregate} of its "
        f"frames' p(fake).",
        "",
        f"This card was generated by `python -m dfd.export format=hf` (dfd {__version__}) from "
        f"the run's files: checkpoint `{source.get('path', '?')}` (epoch "
        f"{source.get('epoch', '?')}, trainable tensors sha256 `{source.get('sha256', '?')}`)"
        + (f" and `{results['file']}`." if results else "."),
        "",
        "## Protocol",
        "",
        "| protocol | as the run recorded it |",
        "|---|---|",
        rows,
        "",
        "## Results",
        "",
    ]
    if results:
        parts += [
            "Video-level numbers are over whole videos (a video's score from its frames), "
            "frame-level over single frames; the two are never mixed. Intervals are the ones "
            "the run recorded in metrics.json.",
            "",
            results_table(results, targets),
        ]
    else:
        parts += [
            "**No test results recorded.** The checkpoint came without a `metrics.json` of its "
            "own run (e.g. it was converted, or training stopped before the targets were "
            "scored), so this card reports no performance and carries no `model-index`. Score "
            "it with `python -m dfd.evaluate checkpoint=<its folder>` and export again with "
            "`card.metrics=<that metrics.json>`.",
        ]
    folder = card.get("folder_name") or "."
    parts += [
        "",
        "## How to use",
        "",
        "Inputs are aligned face crops, made as the training crops were (see the face "
        "pipeline above); the folder's `preprocessor_config.json` resizes and normalizes them "
        'as dfd does. Use the image processor\'s PIL backend (`backend="pil"`, transformers '
        "5; `use_fast=False` in 4.x): the torchvision backend resizes a little differently.",
        "",
        "### A face crop, with torch and transformers only",
        "",
        "<!-- hf-crop-example -->",
        "```python",
        CROP_SNIPPET.format(folder=folder).rstrip(),
        "```",
        "",
        "### A video, with torch and transformers only",
        "",
        "Crop the faces of the video's frames first (evenly spaced frames, the largest face, "
        f"aligned as above), then take the {aggregate} of their p(fake):",
        "",
        "```python",
        VIDEO_SNIPPET.format(folder=folder, aggregate=aggregate).rstrip(),
        "```",
        "",
        "### With dfd",
        "",
        "`dfd.predict` finds and aligns the faces itself (its `conf/faces` pipeline), samples "
        "a video's frames as the evaluation did and gives the video score; it reads this "
        "folder directly:",
        "",
        "```bash",
        f"python -m dfd.predict checkpoint={folder} input=photo.jpg",
        f"python -m dfd.predict checkpoint={folder} input=clip.mp4 output=scores.csv",
        f"python -m dfd.app checkpoint={folder}   # a page to drop photos and videos on",
        "```",
        "",
        "## Intended use",
        "",
        "Research on deepfake detection that generalizes across datasets, and screening aid "
        "that ranks faces for a person to review. A score is evidence, not a verdict: do not "
        "decide from it alone that an image or video is fake or real.",
        "",
        "## Limitations",
        "",
        f"- Face crops of its training data: {protocol['face_pipeline']}. Crops made otherwise "
        "(another detector, margin, crop size or frame sampling) shift the scores.",
        f"- Tested only on: {tested}"
        + ("." if results else " (no results recorded).")
        + " It was not tested on other datasets, other manipulation methods, other "
        "compression levels, images that are not faces, or faces without a manipulation "
        "history like the ones above; performance there is unknown.",
        "- The test numbers are video level; single images (one frame) are scored but their "
        "accuracy was measured only as frame AUC on the targets above.",
    ]
    if protocol.get("demo"):
        parts.append(
            "- This is a demo model: trained and tested on dfd's procedurally rendered 64x64 "
            "faces, whose fakes are synthetic blends. It says nothing about real media; "
            "do not use it on real photos or videos."
        )
    if protocol["selection"].get("leaky"):
        parts.append(
            "- The checkpoint was selected on a set that is also a test target: that "
            "target's result is optimistic."
        )
    if not card.get("license"):
        parts += [
            "",
            "## License",
            "",
            "No license was chosen at export (`card.license`). The weights derive from the "
            f"encoder `{m['name_or_path']}` and were trained on {protocol['train']['name']}: "
            "the licenses and terms of use of both apply to this model.",
        ]
    parts += [
        "",
        "## Files",
        "",
        "- `model.safetensors`: the encoder with its fine-tuned weights merged in, and the head.",
        "- `config.json`: the encoder's config, the head, and dfd's record of the checkpoint "
        "and protocol (`dfd`).",
        "- `modeling_dfd.py`: the model's code (torch and transformers only); dfd loads such a "
        "folder only when this file is byte for byte its own.",
        "- `preprocessor_config.json`: the encoder's image processor, set to dfd's input size.",
        "",
        "## Upload",
        "",
        "```bash",
        "hf auth login",
        f"hf upload <user>/{name} {folder} .",
        "```",
        "",
    ]
    return "\n".join(parts)
