"""What every converter of a peer's released weights shares: safe reading, hashing, and writing
the weights as a dfd checkpoint folder that rebuilds the peer's detector exactly.

A released detector is a whole model (its encoder may differ from any hub model, and a test's
tiny stand-in matches none), so its converted folder holds every parameter of the dfd model,
not only what trains: ``trainable.safetensors`` then also carries the frozen ones, which
`dfd.engine.checkpoint.load_trainable` loads like the rest, and the config builds the
architecture at random (``backbone.pretrained=false``) before they are copied in: nothing is
downloaded. Files are read with safetensors or ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from dfd.engine.checkpoint import canonical_key, save_checkpoint
from dfd.runtime.config import compose_config
from dfd.runtime.errors import UserError

# peft's LN-tuning keeps a frozen `base_layer` and a trainable copy of each tuned LayerNorm;
# both take the released LayerNorm
_PEFT_WRAPPERS = re.compile(r"\.(?:base_layer|ln_tuning_layers\.default)(?=\.)")


@dataclass
class Converted:
    """A peer's detector in dfd's terms: the train overrides that build it, its tensors under
    dfd's canonical names with peft wrappers removed, and its provenance for meta.json."""

    overrides: list[str]
    state: dict[str, torch.Tensor]
    provenance: dict[str, Any]
    dropped: list[str] = field(default_factory=list)  # source keys dfd's model has no use for


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 16 MB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


class ConversionError(UserError, ValueError):
    """A checkpoint that dfd cannot read or represent; the message says why (and
    `dfd.runtime.cli.entry_point` prints it as one line)."""


def check_torch_archive(path: Path, what: str, remedy: str) -> None:
    """Refuse, by its first bytes, a file that torch.save did not write (it writes a zip
    archive, or in the legacy format a pickle of protocol 2 or more): one line saying that
    `path` is not `what`, then `remedy`, where torch.load would fail with its own error."""
    with path.open("rb") as f:
        head = f.read(4)
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):
        raise ConversionError(
            f"{path} is not {what} (it starts with {head!r}, neither a zip archive nor a "
            f"pickle): {remedy}"
        )


def load_weights_only(path: Path) -> Any:
    """``torch.load(weights_only=True)`` on the CPU, memory-mapped where the file allows it
    (files written with ``_use_new_zipfile_serialization=False`` cannot be mapped), so a
    1.2 GB checkpoint is not read into memory whole. Its errors are the caller's to word."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as err:
        if "mmap" not in str(err):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)


def load_torch_file(path: Path, expected: str = "a torch checkpoint") -> Any:
    """``torch.load(weights_only=True)`` (memory-mapped where possible), allowing besides tensors
    only argparse's Namespace (plain data: FSFM saves its command line in it). A file that needs
    a full unpickle fails with a `ConversionError` saying how to re-save it; `expected` names
    the checkpoint the caller wants, for the messages."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ConversionError(f"{path} is not {expected}: it is a folder")
    if not path.is_file():
        raise ConversionError(f"input={path} does not exist: pass {expected}")
    check_torch_archive(path, expected, "pass the file the peer's code saved with torch.save")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return load_weights_only(path)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConversionError(
            f"{path} is not {expected} that torch.load(weights_only=True) reads ({first}); dfd does not "
            f"unpickle other objects, because unpickling can run code. If you trust the file, "
            f"re-save its state dict alone: torch.save(torch.load(p, weights_only=False)"
            f"['model'], out) (or the whole dict if it is flat) and convert `out`"
        ) from err
    except (RuntimeError, OSError, EOFError, KeyError, IndexError, ValueError) as err:
        # torch.load fails on a damaged or truncated archive with any of these
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ConversionError(
            f"{path} is not a readable torch checkpoint ({type(err).__name__}: {first}): "
            f"pass {expected}"
        ) from err


def expected_parameters(cfg) -> dict[str, tuple[int, ...]]:
    """{canonical name: shape} of every parameter of the detector `cfg` builds, built on the
    meta device (no memory, no download)."""
    from dfd.models.build import build_detector

    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    cfg.paths.output_dir = None  # Hydra's run folder: not needed to build the model
    OmegaConf.resolve(cfg)
    cfg.backbone.pretrained = False
    with torch.device("meta"):
        model, _ = build_detector(cfg)
    return {canonical_key(n): tuple(p.shape) for n, p in model.named_parameters()}


def fill_model_state(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], source: str
) -> dict[str, torch.Tensor]:
    """Every expected parameter from `state` (keys without peft's wrappers), checked by shape.

    Raises `ConversionError` listing missing, unused and wrong-shaped keys.
    """
    out: dict[str, torch.Tensor] = {}
    missing, wrong = [], []
    used = set()
    for key, shape in expected.items():
        plain = _PEFT_WRAPPERS.sub("", key)
        if plain not in state:
            missing.append(plain)
            continue
        tensor = state[plain].detach().to("cpu", torch.float32).contiguous()
        shared = plain in used
        used.add(plain)
        if tuple(tensor.shape) != tuple(shape):
            wrong.append(f"{plain}: {tuple(tensor.shape)} in the file, {tuple(shape)} in dfd")
            continue
        # peft's frozen and tuned LayerNorm copies: two tensors in the file, not one shared
        out[key] = tensor.clone() if shared else tensor
    unused = sorted(set(state) - used)
    if missing or unused or wrong:
        raise ConversionError(
            f"{source} does not fit the dfd model it converts to: missing {len(missing)} "
            f"{sorted(missing)[:6]}, unused {len(unused)} {unused[:6]}, wrong shape {len(wrong)} "
            f"{wrong[:4]}. If the encoder has other dimensions, pass them as overrides, e.g. "
            f"'overrides=[backbone.architecture.num_attention_heads=12]'"
        )
    return out


def write_converted(
    converted: Converted, output: Path, extra_overrides: Iterable[str] = ()
) -> Path:
    """Compose the dfd config the converter named, fill every parameter and write the folder;
    ``meta.json`` holds the provenance (source file, its SHA-256, the peer's preprocessing)."""
    overrides = [*converted.overrides, "backbone.pretrained=false", *extra_overrides]
    print("dfd overrides: " + " ".join(overrides))
    cfg = compose_config("train", overrides)
    source = str(converted.provenance.get("source", "the input"))
    state = fill_model_state(converted.state, expected_parameters(cfg), source)
    meta = {
        **converted.provenance,
        "numbers": sum(t.numel() for t in state.values()),
        "whole_model": True,  # frozen tensors included: nothing comes from name_or_path
        "dropped_source_keys": converted.dropped,
    }
    folder = save_checkpoint(Path(output).expanduser(), state, cfg, overrides, meta)
    print(
        f"wrote {folder}: {meta['detector']}, {len(state)} tensors, {meta['numbers']:,} numbers"
        + (f"; unused by the detector: {converted.dropped}" if converted.dropped else "")
    )
    return folder


def strip_prefix(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The entries whose key starts with `prefix`, with it removed."""
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def describe_keys(state: Mapping[str, Any], n: int = 4) -> str:
    keys = sorted(state) if isinstance(state, Mapping) else []
    return f"{len(keys)} keys such as {keys[:n]}" if keys else f"a {type(state).__name__}"
