"""Configs that arrive with a checkpoint are data, never code.

A checkpoint folder may come from anyone. Its `config.yaml` is rebuilt into a model only
after every place where a config names code has been checked against dfd's own options:
each `_target_` and each import path (`model_class`) must be one that some file of dfd's
`conf/` tree names. A config that names anything else (``os.system``,
``pandas.read_pickle``) is refused before anything is instantiated or imported.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from dfd.runtime.config import CONF_DIR

# keys whose value Hydra or dfd turns into an import; `_args_` & co only feed those targets
IMPORT_KEYS = ("_target_", "model_class")
# dfd's own import paths that moved: a checkpoint written before the move names the old one
MOVED = {"dfd.objectives.": "dfd.models.objectives."}


class UntrustedConfigError(ValueError):
    """A checkpoint's config names code that is not one of dfd's own config options."""


@functools.cache
def allowed_imports(conf_dir: Path = CONF_DIR) -> dict[str, frozenset[str]]:
    """Every value of an import key in dfd's config tree, by key."""
    found: dict[str, set[str]] = {k: set() for k in IMPORT_KEYS}
    for path in sorted(conf_dir.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            for key, value, _ in _import_sites(doc, ""):
                found[key].add(str(value))
    return {k: frozenset(v) for k, v in found.items()}


def _import_sites(node: Any, where: str) -> Iterator[tuple[str, Any, str]]:
    if isinstance(node, dict | DictConfig):
        items = node.items() if isinstance(node, dict) else node.items_ex(resolve=False)
        for key, value in items:
            here = f"{where}.{key}" if where else str(key)
            if key in IMPORT_KEYS:
                yield str(key), value, here
            yield from _import_sites(value, here)
    elif isinstance(node, list | ListConfig):
        for i, value in enumerate(node):
            yield from _import_sites(value, f"{where}[{i}]")


def check_trusted(cfg: DictConfig, source: str) -> None:
    """Raise `UntrustedConfigError` naming the first key whose import is not dfd's own."""
    allowed = allowed_imports()
    for key, value, where in _import_sites(cfg, ""):
        if not isinstance(value, str) or value not in allowed[key]:
            raise UntrustedConfigError(
                f"{source}: `{where}: {value}` is not one of dfd's own config options, so the "
                f"checkpoint is refused and nothing in it was run. Use a checkpoint folder written "
                f"by dfd (or by `python -m dfd.convert`), or fix that key to a value from conf/."
            )


def load_trusted_yaml(path: Path) -> DictConfig:
    """Read a YAML config safely (no tags, no Python objects) and check it is trusted."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UntrustedConfigError(f"{path} is not plain YAML: {err}") from err
    if not isinstance(data, dict):
        raise UntrustedConfigError(f"{path} must hold a mapping, found {type(data).__name__}")
    cfg = OmegaConf.create(current_import_paths(data))
    check_trusted(cfg, str(path))
    return cfg


def current_import_paths(node: Any) -> Any:
    """`node` with every import path of `MOVED` renamed to where the code lives now."""
    if isinstance(node, dict):
        return {
            k: _current_path(v) if k in IMPORT_KEYS else current_import_paths(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [current_import_paths(v) for v in node]
    return node


def _current_path(value: Any) -> Any:
    if isinstance(value, str):
        for old, new in MOVED.items():
            if value.startswith(old):
                return new + value.removeprefix(old)
    return value
