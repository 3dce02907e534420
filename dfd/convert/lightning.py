"""The authors' released Lightning checkpoint as a dfd checkpoint folder.

The authors (yermandy/deepfake-detection, and its successor yermandy/GenD) save a
Lightning checkpoint: ``state_dict`` holds the whole model, ``hyper_parameters`` their
pydantic ``Config.model_dump()`` (``self.save_hyperparameters(config.model_dump())`` in
src/model/dfdet.py; src/config.py defines the fields). Only the tensors that trained are
taken over:

- LN-tuning through peft (deepfake-detection): ``feature_extractor.base_model.model.
  vision_model.<module>.ln_tuning_layers.default.{weight,bias}`` for the 50 LayerNorms;
- LN-tuning by unfreezing (GenD's ``unfreeze_layers``): the plain LayerNorm keys
  ``feature_extractor.vision_model.<module>.{weight,bias}``;
- the head ``model.linear.{weight,bias}`` (their ``LinearProbe``).

Every other ``feature_extractor.*`` tensor is CLIP's frozen pretrained weight, which dfd
loads from ``backbone.name_or_path``. The file is read with ``torch.load(weights_only=True)``
only: a checkpoint that needs a full unpickle (which can run code) is refused.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from dfd.convert.common import ConversionError, check_torch_archive, load_weights_only
from dfd.engine.checkpoint import canonical_key, save_checkpoint
from dfd.runtime.config import CONF_DIR, compose_config

# peft's LN-tuning layout: a trainable copy beside the frozen `base_layer` of each LayerNorm
PEFT_LN = re.compile(
    r"^feature_extractor\.base_model\.model\.(?:vision_model\.)?"
    r"(?P<module>.+)\.ln_tuning_layers\.default\.(?P<param>weight|bias)$"
)
# GenD's layout: the LayerNorms themselves train (`unfreeze_layers`)
PLAIN_LN = re.compile(r"^feature_extractor\.vision_model\.(?P<module>.+)\.(?P<param>weight|bias)$")
HEAD = re.compile(r"^model\.linear\.(?P<param>weight|bias)$")
FROZEN_PREFIX = "feature_extractor."
# the authors' per-stage prediction buffers (OutputsForMetrics in src/model/dfdet.py): torchmetrics
# states, not weights; torchmetrics does not save them by default, a checkpoint that does is fine
METRIC_STATE_PREFIXES = ("train_step_outputs.", "val_step_outputs.", "test_step_outputs.")

# the authors' Head enum values (src/config.py) -> dfd's head option
HEADS = {"LinearNorm": "linear_norm", "linear": "linear"}
# Lightning precision strings -> Accelerate's mixed precision
PRECISIONS = {
    "bf16-mixed": "bf16",
    "bf16": "bf16",
    "16-mixed": "fp16",
    "16": "fp16",
    "32": "no",
    "32-true": "no",
}


@dataclass
class AuthorsCheckpoint:
    """What a Lightning checkpoint holds that the conversion needs."""

    path: Path
    state_dict: dict[str, torch.Tensor]
    hyper_parameters: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)  # epoch, global_step, versions


def read_lightning_checkpoint(path: Path) -> AuthorsCheckpoint:
    """Load a Lightning ``.ckpt`` with ``torch.load(weights_only=True)``, never a full unpickle.

    The tensors are memory-mapped where the file allows it, so a 1.2 GB checkpoint is not
    read into memory whole. Raises `ConversionError` naming the file when it is missing,
    is not a Lightning checkpoint, or holds objects that only a full unpickle could rebuild.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConversionError(
            f"input={path} does not exist: pass the authors' Lightning checkpoint, e.g. "
            f"model.ckpt from the hub repo yermandy/deepfake-detection"
        )
    check_torch_archive(
        path, "a torch checkpoint", "pass the Lightning .ckpt file the authors' trainer wrote"
    )
    try:
        ckpt = load_weights_only(path)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConversionError(
            f"{path} cannot be read with torch.load(weights_only=True): it holds objects beyond "
            f"tensors and plain Python types ({first}). dfd does not unpickle such files, because "
            f"unpickling can run arbitrary code. If you trust the file, re-save only its tensors "
            f"and plain hyper-parameters in a trusted environment, e.g. "
            f"ckpt = torch.load(p, weights_only=False); torch.save({{'state_dict': "
            f"ckpt['state_dict'], 'hyper_parameters': dict(ckpt['hyper_parameters'])}}, out), "
            f"and convert `out`."
        ) from err
    except Exception as err:  # noqa: BLE001 - any bytes: torch's weights_only unpickler
        # fails on a text or truncated file with KeyError, IndexError, ... as well
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ConversionError(
            f"{path} is not a readable torch checkpoint ({type(err).__name__}: {first}): pass "
            f"the Lightning .ckpt file the authors' trainer wrote"
        ) from err
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("state_dict"), Mapping):
        keys = sorted(ckpt)[:8] if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise ConversionError(
            f"{path} is not a Lightning checkpoint: no 'state_dict' mapping (found {keys})"
        )
    hparams = ckpt.get("hyper_parameters")
    if not isinstance(hparams, Mapping):
        raise ConversionError(
            f"{path} has no 'hyper_parameters' mapping: the conversion reads the backbone, head "
            f"and loss from it (the authors' LightningModule saves them with save_hyperparameters)"
        )
    info = {
        k: ckpt[k]
        for k in ("epoch", "global_step", "pytorch-lightning_version")
        if k in ckpt and isinstance(ckpt[k], (int, float, str))
    }
    return AuthorsCheckpoint(path, dict(ckpt["state_dict"]), dict(hparams), info)


@dataclass(frozen=True)
class LossWeights:
    """The released model's loss, in the authors' field names (src/config.py `Loss`)."""

    ce_labels: float
    uniformity: float
    alignment_labels: float
    label_smoothing: float
    slerp: bool

    def describe(self) -> str:
        return (
            f"CE {self.ce_labels:g}, uniformity {self.uniformity:g}, alignment "
            f"{self.alignment_labels:g}, label smoothing {self.label_smoothing:g}, "
            f"slerp {'on' if self.slerp else 'off'}"
        )


def loss_weights(hparams: Mapping[str, Any]) -> LossWeights:
    """Read the loss weights and slerp from the authors' hyper_parameters."""
    loss = hparams.get("loss")
    if not isinstance(loss, Mapping):
        raise ConversionError("hyper_parameters has no 'loss' mapping (the authors' Loss config)")
    if float(loss.get("bce_labels") or 0.0) != 0.0:
        raise ConversionError(
            f"hyper_parameters.loss.bce_labels={loss['bce_labels']}: the multi-label BCE loss "
            f"has no dfd counterpart"
        )
    slerp = bool(hparams.get("slerp_feature_augmentation", False))
    slerp_range = list(hparams.get("slerp_feature_augmentation_range") or [0.0, 1.0])
    if slerp and [float(v) for v in slerp_range] != [0.0, 1.0]:
        raise ConversionError(
            f"hyper_parameters.slerp_feature_augmentation_range={slerp_range}: dfd's slerp draws "
            f"t from U(0, 1) only"
        )
    return LossWeights(
        ce_labels=float(loss.get("ce_labels", 0.0)),
        uniformity=float(loss.get("uniformity", 0.0)),
        alignment_labels=float(loss.get("alignment_labels", 0.0)),
        label_smoothing=float(loss.get("label_smoothing", 0.0)),
        slerp=slerp,
    )


def _backbone_options(conf_dir: Path) -> dict[str, Any]:
    """{option: its conf/backbone/<option>.yaml, paths resolved} for every backbone option."""
    paths = OmegaConf.load(conf_dir / "paths" / "default.yaml")
    options = {}
    for file in sorted((conf_dir / "backbone").glob("*.yaml")):
        spec = OmegaConf.merge({"paths": paths}, {"backbone": OmegaConf.load(file)})
        options[file.stem] = spec.backbone
    return options


def _name_or_path(option: Any) -> str:
    # the option's own path, resolved (a local folder such as the demo's tiny CLIP)
    return str(OmegaConf.select(option, "name_or_path", throw_on_resolution_failure=False))


def _user_backbone(overrides: list[str] | tuple[str, ...]) -> tuple[str | None, str | None]:
    """(the `backbone=<option>` the user chose, the `backbone.name_or_path` they set), each
    None when not given; the path read from the overrides composed onto conf/train.yaml."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not overrides:
        return None, None
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    option = path = None
    for o in parsed:
        if o.key_or_group == "backbone" and not o.is_delete():
            option = o.get_value_element_as_str()
        elif o.key_or_group == "backbone.name_or_path":
            path = ""  # read below, resolved
    if path is not None:
        path = str(compose_config("train", list(overrides)).backbone.name_or_path)
    return option, path


_STRUCTURE = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "patch_size",
    "image_size",
    "hidden_sizes",
    "depths",
)


def _architecture_matches(folder: str, options: Mapping[str, Any]) -> list[str]:
    """The options whose `architecture` is the encoder saved in `folder` (its config.json:
    the model type and every structural size the option names)."""
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ConversionError(
            f"backbone.name_or_path={folder}: cannot read the encoder's config.json there "
            f"({str(err).splitlines()[0] if str(err) else type(err).__name__}); pass a folder "
            f"written by save_pretrained or `hf download`"
        ) from err
    vision = getattr(config, "vision_config", None) or config  # a full CLIP/SigLIP folder
    found = vision.to_dict()
    found["model_type"] = vision.model_type
    matches = []
    for name, option in options.items():
        arch = OmegaConf.to_container(option.architecture, resolve=True)
        if all(found.get(k) == v for k, v in arch.items() if k in (*_STRUCTURE, "model_type")):
            matches.append(name)
    return matches


def backbone_option(
    name_or_path: str, conf_dir: Path = CONF_DIR, overrides: list[str] | tuple[str, ...] = ()
) -> tuple[str, list[str]]:
    """The dfd backbone option (conf/backbone/<option>.yaml) of a checkpoint whose backbone is
    `name_or_path` (a hub id or the folder it was trained from), and the LayerNorm modules
    LN-tuning trains in it.

    The user's `overrides` come first: ``backbone=<option>`` names the option outright;
    otherwise an option whose own `name_or_path` is the checkpoint's matches; otherwise
    ``backbone.name_or_path=<folder>`` (a local copy of the encoder) matches the option whose
    architecture is the folder's config.json (its model type and sizes).
    """
    options = _backbone_options(conf_dir)
    chosen, folder = _user_backbone(overrides)
    if chosen is not None:
        if chosen not in options:
            raise ConversionError(
                f"overrides backbone={chosen}: no such option in conf/backbone/ "
                f"({', '.join(options)})"
            )
        return chosen, list(options[chosen].layernorm_modules)
    for candidate in (name_or_path, folder):
        named = [k for k, o in options.items() if candidate and _name_or_path(o) == candidate]
        if len(named) == 1:
            return named[0], list(options[named[0]].layernorm_modules)
    if folder and Path(folder).expanduser().is_dir():
        matches = _architecture_matches(str(Path(folder).expanduser()), options)
        if len(matches) == 1:
            return matches[0], list(options[matches[0]].layernorm_modules)
        if len(matches) > 1:
            raise ConversionError(
                f"backbone.name_or_path={folder} fits the backbone options {matches}: name "
                f'one, \'overrides=["backbone={matches[0]}","backbone.name_or_path={folder}"]\''
            )
    known = sorted(v for v in (_name_or_path(o) for o in options.values()) if v != "None")
    raise ConversionError(
        f"hyper_parameters.backbone={name_or_path!r} has no dfd backbone option "
        f"(conf/backbone/ knows {known})"
        + (
            f", and backbone.name_or_path={folder} is not the folder of one of their encoders"
            if folder
            else ""
        )
        + ". For a copy of a known encoder in a local folder pass "
        "'overrides=[\"backbone.name_or_path=<folder>\"]' (and backbone=<option> if its "
        "config.json does not tell which)"
    )


def config_overrides(
    ckpt: AuthorsCheckpoint, layout: str, peft: str, backbone: str | None = None
) -> list[str]:
    """dfd overrides of conf/train.yaml that describe the authors' model and its training loss.

    Backbone (the option `backbone`, else the one whose hub id the hyper_parameters name),
    head, loss weights, slerp, precision and seed come from the hyper_parameters, `peft`
    (``ln`` or ``linear_probe``) from what trained; anything dfd cannot represent faithfully
    is refused.
    """
    hp = ckpt.hyper_parameters
    head = HEADS.get(str(hp.get("head")))
    if head is None:
        raise ConversionError(
            f"hyper_parameters.head={hp.get('head')!r}: dfd converts the authors' heads "
            f"{sorted(HEADS)} only"
        )
    if int(hp.get("num_classes", 2)) != 2:
        raise ConversionError(
            f"hyper_parameters.num_classes={hp['num_classes']}: dfd's detectors have 2 classes"
        )
    if not hp.get("freeze_feature_extractor", True):
        raise ConversionError(
            "hyper_parameters.freeze_feature_extractor=False: the whole backbone was fine-tuned; "
            "dfd converts LN-tuned checkpoints only"
        )
    if layout == "peft" and hp.get("unfreeze_layers"):
        raise ConversionError(
            f"hyper_parameters.unfreeze_layers={hp['unfreeze_layers']} besides peft LN-tuning: "
            f"those layers trained too and dfd's LN-tuning would not train them"
        )
    weights = loss_weights(hp)
    if backbone is None:
        backbone, _ = backbone_option(str(hp.get("backbone")))
    overrides = [f"backbone={backbone}", f"peft={peft}", f"head={head}"]
    if head == "linear_norm":
        overrides += [
            "loss=hypersphere",
            f"loss.w_ce={weights.ce_labels!r}",
            f"loss.w_unif={weights.uniformity!r}",
            f"loss.w_align={weights.alignment_labels!r}",
            f"loss.slerp={str(weights.slerp).lower()}",
            f"loss.label_smoothing={weights.label_smoothing!r}",
        ]
    elif weights.uniformity == weights.alignment_labels == 0.0 and not weights.slerp:
        if weights.ce_labels != 1.0:
            raise ConversionError(
                f"hyper_parameters.loss.ce_labels={weights.ce_labels} with head=linear: dfd's "
                f"loss=ce has weight 1"
            )
        overrides += ["loss=ce", f"loss.label_smoothing={weights.label_smoothing!r}"]
    else:
        raise ConversionError(
            f"head={hp.get('head')!r} trained with {weights.describe()}: dfd's hypersphere "
            f"loss (uniformity, alignment, slerp) needs the linear_norm head"
        )
    precision = PRECISIONS.get(str(hp.get("precision", "32")))
    if precision is not None:
        overrides.append(f"trainer.precision={precision}")
    if "seed" in hp:
        overrides.append(f"seed={int(hp['seed'])}")
    return overrides


def trained_tensors(
    ckpt: AuthorsCheckpoint, layernorm_modules: list[str]
) -> tuple[str, dict[str, torch.Tensor], list[str]]:
    """(layout, {dfd canonical key: tensor}, frozen keys left to the pretrained backbone).

    `layout` is ``peft`` (peft's LN-tuning copies) or ``plain`` (GenD: the LayerNorms whose
    names contain one of ``unfreeze_layers``, the substring rule of its `_freeze_parameters`).
    A plain key selected by ``unfreeze_layers`` that is not one of the backbone's LayerNorms,
    and any key that is neither backbone nor head, fail the conversion.
    """
    sd = ckpt.state_dict
    if any(".lora_" in k for k in sd):
        raise ConversionError(
            f"{ckpt.path} holds LoRA tensors: dfd converts LN-tuned checkpoints only"
        )
    layout = "peft" if any(PEFT_LN.match(k) for k in sd) else "plain"
    unfreeze = [str(u) for u in ckpt.hyper_parameters.get("unfreeze_layers") or []]
    mapped: dict[str, torch.Tensor] = {}
    frozen: list[str] = []
    unknown: list[str] = []
    for key, tensor in sd.items():
        head = HEAD.match(key)
        peft_ln = PEFT_LN.match(key) if layout == "peft" else None
        if key.startswith(METRIC_STATE_PREFIXES):
            continue
        if not isinstance(tensor, torch.Tensor):
            unknown.append(key)
        elif head:
            mapped[f"head.{head['param']}"] = tensor
        elif peft_ln:
            mapped[_ln_key(peft_ln)] = tensor
        elif (
            layout == "plain" and key.startswith(FROZEN_PREFIX) and any(u in key for u in unfreeze)
        ):
            plain_ln = PLAIN_LN.match(key)
            if not plain_ln or plain_ln["module"].rsplit(".", 1)[-1] not in layernorm_modules:
                raise ConversionError(
                    f"{key} trained (hyper_parameters.unfreeze_layers={unfreeze}), but it is not "
                    f"one of the backbone's LayerNorms {layernorm_modules}: dfd's LN-tuning "
                    f"would not train it"
                )
            mapped[_ln_key(plain_ln)] = tensor
        elif key.startswith(FROZEN_PREFIX):
            frozen.append(key)
        else:
            unknown.append(key)
    if unknown:
        raise ConversionError(
            f"{ckpt.path}: {len(unknown)} state_dict entries are neither backbone "
            f"({FROZEN_PREFIX}*) nor head (model.linear.*) tensors: {sorted(unknown)[:10]}"
        )
    return layout, mapped, frozen


def _ln_key(match: re.Match) -> str:
    return canonical_key(f"backbone.{match['module']}.ln_tuning_layers.default.{match['param']}")


def expected_trainable(cfg) -> dict[str, tuple[int, ...]]:
    """{canonical key: shape} of every parameter dfd trains for `cfg`, without any weights.

    The detector is built on the meta device from the config's architecture
    (``backbone.pretrained=false``), so a ViT-L/14 costs no memory and no download.
    """
    from dfd.models.build import build_detector

    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    cfg.backbone.pretrained = False
    with torch.device("meta"):
        model, _ = build_detector(cfg)
    return {
        canonical_key(n): tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad
    }


def match_to_model(
    mapped: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], source: str
) -> dict[str, torch.Tensor]:
    """Rename the head keys to the model's and check every key and shape against `expected`.

    Raises `ConversionError` listing missing, unexpected and wrong-shaped keys.
    """
    head_names = {k.rsplit(".", 1)[-1]: k for k in expected if k.startswith("head.")}
    state = {}
    for key, tensor in mapped.items():
        if key.startswith("head."):
            param = key.split(".", 1)[1]
            key = head_names.get(param, f"head.<no {param} in dfd's head>")
        state[key] = tensor
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    wrong = sorted(
        f"{k}: {tuple(t.shape)} in the checkpoint, {expected[k]} in dfd"
        for k, t in state.items()
        if k in expected and tuple(t.shape) != tuple(expected[k])
    )
    if missing or unexpected or wrong:
        raise ConversionError(
            f"{source} does not fit the dfd model its hyper_parameters describe: "
            f"missing {len(missing)} {missing[:10]}, unexpected {len(unexpected)} "
            f"{unexpected[:10]}, wrong shape {len(wrong)} {wrong[:10]}"
        )
    return {k: t.detach().to("cpu", torch.float32).contiguous() for k, t in state.items()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    """hyper_parameters as JSON (they are plain types once weights_only has read them)."""
    return json.loads(json.dumps(value, default=str))


def convert(
    input_path: Path, output: Path, extra_overrides: list[str] | tuple[str, ...] = ()
) -> Path:
    """Convert the authors' Lightning checkpoint into a dfd checkpoint folder; return the folder.

    Prints the released model's loss weights and the dfd overrides it maps to; the folder's
    ``meta.json`` keeps the source file's SHA-256 and its full hyper_parameters.
    """
    ckpt = read_lightning_checkpoint(input_path)
    weights = loss_weights(ckpt.hyper_parameters)
    saved = ", ".join(f"{k} {v}" for k, v in ckpt.info.items())
    print(f"{ckpt.path}: run {ckpt.hyper_parameters.get('run_name')!r} ({saved})")
    print(f"released model's loss: {weights.describe()}")
    # the authors' run.py selects the checkpoint on val_files (its example: the CDF-v2 test lists)
    print(f"its checkpoint was selected on val_files = {ckpt.hyper_parameters.get('val_files')}")
    # the user's overrides first: they may say where (or which) the encoder is
    backbone, layernorm_modules = backbone_option(
        str(ckpt.hyper_parameters.get("backbone")), overrides=extra_overrides
    )
    layout, mapped, frozen = trained_tensors(ckpt, layernorm_modules)
    # no LayerNorm trained: the authors' linear probe (a frozen backbone under the head)
    peft = "ln" if any(k.startswith("backbone.") for k in mapped) else "linear_probe"
    # a `backbone=<option>` of the user's is the one config_overrides writes already
    extra = [o for o in extra_overrides if o.split("=", 1)[0] != "backbone"]
    overrides = config_overrides(ckpt, layout, peft, backbone) + extra
    print("dfd overrides: " + " ".join(overrides))
    cfg = compose_config("train", overrides)
    state = match_to_model(mapped, expected_trainable(cfg), str(ckpt.path))
    n_numbers = sum(t.numel() for t in state.values())
    meta = {
        "converted_from": str(ckpt.path.resolve()),
        "sha256": _sha256(ckpt.path),
        "format": f"authors' Lightning checkpoint, {layout} layout, peft={peft}",
        "trainable_numbers": n_numbers,
        "frozen_tensors_left_to_the_pretrained_backbone": len(frozen),
        "loss": asdict(weights),
        "lightning": _plain(ckpt.info),
        "hyper_parameters": _plain(ckpt.hyper_parameters),
    }
    folder = save_checkpoint(Path(output).expanduser(), state, cfg, overrides, meta)
    print(
        f"wrote {folder}: {len(state)} tensors, {n_numbers:,} numbers ({layout} layout; "
        f"{len(frozen)} frozen backbone tensors come from {cfg.backbone.name_or_path})"
    )
    return folder
