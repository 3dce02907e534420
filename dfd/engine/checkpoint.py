"""Checkpoints: the trainable tensors as safetensors plus the run's config as YAML.

Only tensors that train are saved (for LN-tuning of ViT-L/14: 104,450 numbers), loaded
with safetensors, never unpickled. Tensor keys are stored in one canonical form, relative
to the vision tower, so a checkpoint loads whatever wraps the tower: peft's
``base_model.model.`` and transformers 4.x's ``vision_model.`` prefix are dropped
(transformers 5 has no such prefix). The backbone's frozen weights come from
`backbone.name_or_path` when the detector is rebuilt from the folder's config.

A folder holds:
- ``trainable.safetensors``: the tensors;
- ``config.yaml``: the run's config as composed, interpolations kept (``${paths.root_dir}``
  resolves on the machine that loads it); checked by `dfd.engine.trusted_config` before use;
- ``config.resolved.yaml``: the same, resolved, for reading;
- ``run.json``: the command-line overrides (when known) and the dfd version;
- ``meta.json``: epoch, step, monitor, validation metrics.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from dfd.engine.trusted_config import check_trusted, load_trusted_yaml
from dfd.runtime.redact import redact_values

WEIGHTS, CONFIG, RESOLVED, RUN, META = (
    "trainable.safetensors",
    "config.yaml",
    "config.resolved.yaml",
    "run.json",
    "meta.json",
)

# wrappers between the Detector's `backbone` and the vision tower's own modules. The
# VisionBackbone's `model.` is kept where the tower's own first module is `model.layer`
# (transformers 5's DINOv3ViTModel): `backbone.model.layer.0...` is already canonical, and
# stripping it again would make the form depend on how often it was applied.
_WRAPPERS = re.compile(
    r"^(backbone\.)(?:model\.(?!layer\.))?(?:base_model\.model\.)?(?:vision_model\.)?"
)


class CheckpointError(ValueError):
    """A checkpoint folder that is missing, incomplete or does not fit its config."""


def canonical_key(name: str) -> str:
    """A Detector parameter name in the checkpoint's canonical form.

    ``backbone.model.base_model.model.vision_model.encoder.layers.0.layer_norm1.ln_tuning_layers.default.weight``
    (peft around transformers 4.x) and ``backbone.model.base_model.model.encoder...``
    (transformers 5) both become ``backbone.encoder.layers.0.layer_norm1.ln_tuning_layers.default.weight``;
    head keys are unchanged. Idempotent.
    """
    return _WRAPPERS.sub(r"\1", name, count=1)


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached CPU copies of the parameters that train, by canonical name."""
    return {
        canonical_key(n): p.detach().to("cpu", copy=True).contiguous()
        for n, p in model.named_parameters()
        if p.requires_grad
    }


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so that readers see the old or the new content, never a torn one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_save_tensors(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(dict(tensors), str(tmp), metadata={"format": "pt"})
    os.replace(tmp, path)


def save_checkpoint(
    folder: Path,
    state: Mapping[str, torch.Tensor],
    cfg: DictConfig,
    overrides: Sequence[str] | None,
    meta: Mapping,
) -> Path:
    """Write a checkpoint folder, each file atomically (temp file, then rename).

    `state` keys may be model parameter names or canonical ones; `overrides` are the
    command-line overrides the run was composed from (None when unknown).
    """
    from dfd import __version__

    folder.mkdir(parents=True, exist_ok=True)
    atomic_save_tensors(folder / WEIGHTS, {canonical_key(k): v for k, v in state.items()})
    atomic_write_text(folder / CONFIG, OmegaConf.to_yaml(_portable(cfg)))
    resolved = redact_values(OmegaConf.to_container(_portable(cfg), resolve=True))
    atomic_write_text(folder / RESOLVED, OmegaConf.to_yaml(OmegaConf.create(resolved)))
    run = {"overrides": list(overrides) if overrides is not None else None, "dfd": __version__}
    atomic_write_text(folder / RUN, json.dumps(run, indent=2))
    atomic_write_text(folder / META, json.dumps(dict(meta), indent=2))
    return folder


def _portable(cfg: DictConfig) -> DictConfig:
    """The config with interpolations kept, but without this run's own output folder
    (``${hydra:runtime.output_dir}`` means nothing outside the run) and without passwords."""
    out = OmegaConf.create(redact_values(OmegaConf.to_container(cfg, resolve=False)))
    if "paths" in out and "output_dir" in out.paths:
        with open_dict(out):
            out.paths.output_dir = None
    return out


def load_trainable(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint"
) -> None:
    """Copy saved trainable tensors into `model`; every trainable parameter must be present.

    Keys are matched in canonical form, so a checkpoint written under transformers 4.x
    loads under 5.x and back.
    """
    params = {canonical_key(n): p for n, p in model.named_parameters()}
    trainable = {n for n, p in params.items() if p.requires_grad}
    given = {canonical_key(k): v for k, v in state.items()}
    missing = sorted(trainable - given.keys())
    unknown = sorted(given.keys() - params.keys())
    wrong_shape = sorted(
        f"{k}: {tuple(v.shape)} vs model {tuple(params[k].shape)}"
        for k, v in given.items()
        if k in params and tuple(v.shape) != tuple(params[k].shape)
    )
    if missing or unknown or wrong_shape:
        raise CheckpointError(
            f"{source} does not match the model built from its config: missing {missing[:5]} "
            f"({len(missing)}), unknown {unknown[:5]} ({len(unknown)}), wrong shape "
            f"{wrong_shape[:5]} ({len(wrong_shape)}). Build the model with the checkpoint's own "
            f"config.yaml."
        )
    with torch.no_grad():
        for n, t in given.items():
            params[n].copy_(t.to(params[n].device, params[n].dtype))


def read_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], DictConfig]:
    """The tensors and the trusted (checked, not yet resolved) config of a checkpoint folder."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise CheckpointError(
            f"checkpoint folder {folder} does not exist: pass the `checkpoint` folder of a "
            f"training run (outputs/runs/<date>/<time>/checkpoint) or one written by dfd.convert"
        )
    for name in (WEIGHTS, CONFIG):
        if not (folder / name).is_file():
            raise CheckpointError(
                f"no {name} in {folder}: pass the checkpoint folder a training run wrote "
                f"(it holds {WEIGHTS} and {CONFIG})"
            )
    cfg = load_trusted_yaml(folder / CONFIG)
    try:
        state = load_file(str(folder / WEIGHTS))
    except SafetensorError as err:
        raise CheckpointError(
            f"{folder / WEIGHTS} is not a readable safetensors file: {err}"
        ) from err
    check_finite(state, str(folder / WEIGHTS))
    return state, cfg


def check_finite(state: Mapping[str, torch.Tensor], source: str) -> None:
    """Refuse tensors holding NaN or infinity, naming the first (by name) and its count: such
    weights score every frame NaN, which no metric can use."""
    for name in sorted(state):
        tensor = state[name]
        if not tensor.is_floating_point():
            continue
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise CheckpointError(
                f"{source}: tensor {name!r} holds {bad} non-finite values (NaN or inf) of "
                f"{tensor.numel()}: the checkpoint is damaged or its training diverged; use "
                f"another checkpoint (or retrain with a lower trainer.optimizer.lr)"
            )


def resolve_checkpoint_config(cfg: DictConfig, output_dir: Path | str, source: str) -> DictConfig:
    """Resolve a trusted checkpoint config on this machine and check it again once resolved
    (an interpolation could otherwise produce a `_target_`)."""
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    try:
        OmegaConf.resolve(cfg)
    except Exception as err:  # noqa: BLE001  (any resolver failure is a bad checkpoint config)
        raise CheckpointError(f"{source}: its config does not resolve here: {err}") from err
    check_trusted(cfg, source)
    return cfg
