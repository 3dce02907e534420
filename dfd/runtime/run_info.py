"""What tells one run from another in MLflow: a readable run name and the run's tags.

MLflow's own run names (`capable-auk-759`) are drawn from Python's RNG after dfd has seeded it,
so every seeded run got the same one. A dfd run is named by what its command changed: the
experiment, then each override that changes the model, the data or the training, in the order
given (`ln · hypersphere · demo`, `ablation_lora · seed=1`). Where output goes and how the run
is tracked (`paths.*`, `tracking.*`, `hydra.*`, worker counts) never makes two runs different
experiments, so those overrides are left out of the name (they stay in the overrides tag).
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Mapping, Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig

import dfd
from dfd.runtime.config import PROJECT_ROOT
from dfd.runtime.protocol import protocol_record, protocol_tags

SEPARATOR = " · "
DEFAULT_NAME = "defaults"
# overrides that decide where a run writes or how it is watched, not what it trains
_NOT_THE_EXPERIMENT = (
    "paths.",
    "tracking.",
    "hydra.",
    "trainer.num_workers",
    "trainer.eval_batch_size",
    "trainer.cpu",
    "trainer.threads",
    "data.on_error",
)
# train.yaml's top-level plain keys: `seed=1` reads `seed=1`, a group choice just `ln`
_TOP_LEVEL_KEYS = {"seed"}
_MAX_TAG_CHARS = 5000  # MLflow caps a tag value at 8000 characters


def _parse(overrides: Sequence[str]) -> list[Override]:
    try:
        return OverridesParser.create().parse_overrides(list(overrides))
    except Exception as err:  # Hydra's OverrideParseException names the bad override
        raise ValueError(f"cannot name a run from overrides {list(overrides)}: {err}") from err


def experiment_of(overrides: Sequence[str]) -> str | None:
    """The `experiment=<name>` choice among `overrides` (the last one wins), or None."""
    chosen = None
    for o in _parse(overrides):
        if o.key_or_group == "experiment" and not o.is_delete():
            value = o.value()
            chosen = None if value is None else str(value)
    return chosen


def _part(o: Override, keyed_groups: bool = False) -> str | None:
    key = o.key_or_group
    if key == "experiment" or key.startswith(_NOT_THE_EXPERIMENT):
        return None
    leaf = key.rsplit(".", 1)[-1]
    if o.is_delete():
        return f"~{leaf}"
    # the value as typed (`1e-3`, `false`), not as Hydra re-renders it (`0.001`, `False`)
    value = (o.input_line or "").split("=", 1)[-1] if o.input_line else o.get_value_element_as_str()
    # a config-group choice reads as the choice (`peft=ln` -> `ln`), a key as `leaf=value`
    plain = "." not in key and key not in _TOP_LEVEL_KEYS and not keyed_groups
    return value if plain else f"{leaf}={value}"


def run_name(
    overrides: Sequence[str],
    experiment: str | None = None,
    max_chars: int = 80,
    keyed_groups: bool = False,
) -> str:
    """A short, readable, deterministic run name from what differs from the defaults.

    `experiment` (or an `experiment=` override) comes first, then one part per override that
    changes the training, in command-line order, a later override of the same key replacing an
    earlier one: `["peft=lora", "trainer.optimizer.lr=1e-3"]` -> `lora · lr=1e-3`. With nothing
    changed the name is `defaults`. Names longer than `max_chars` are cut with an ellipsis.
    `keyed_groups` writes a group choice with its group (`robustness=deepfakebench`), for
    commands whose groups share option names (dfd.evaluate's `data` and `robustness`).
    """
    experiment = experiment or experiment_of(overrides)
    parts: dict[str, str] = {}
    for o in _parse(overrides):
        part = _part(o, keyed_groups)
        if part is not None:
            parts.pop(o.key_or_group, None)  # the last value wins, in its position
            parts[o.key_or_group] = part
    words = ([experiment] if experiment else []) + list(parts.values())
    name = SEPARATOR.join(words) or DEFAULT_NAME
    return name if len(name) <= max_chars else name[: max_chars - 1].rstrip() + "…"


@functools.cache
def git_commit() -> str | None:
    """The project's git commit (`-dirty` when tracked files changed), or None outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head or None


def _dataset_name(dataset: Mapping) -> str:
    # real readers name their dataset (`name: ff`); the demo names its domain (`dataset: source`)
    return str(dataset.get("name") or dataset.get("dataset") or "unknown")


def run_tags(cfg: DictConfig, overrides: Sequence[str]) -> dict[str, str]:
    """The tags every dfd run carries, so runs can be searched by what made them.

    `dfd.overrides` (rerun it: `python -m dfd.train <overrides>`), `dfd.experiment`
    (`none` without one), the protocol (`dfd.runtime.protocol.protocol_tags`): `dfd.data`
    (the data config's name), `dfd.data.hash` (a hash of the composed data config),
    `dfd.selection` / `dfd.selection.split` / `dfd.selection.leaky` (the rule and the sets
    that select the checkpoint, and whether they are a test target), then
    `dfd.data.source`, `dfd.data.targets`, `dfd.selection.monitor` (the metric that
    selects), `dfd.version` and, in a git checkout, `dfd.git_commit`.
    """
    data: Mapping = cfg.get("data") or {}
    test = data.get("test") or {}
    tags = {
        "dfd.overrides": " ".join(overrides)[:_MAX_TAG_CHARS],
        "dfd.experiment": experiment_of(overrides) or "none",
        **protocol_tags(protocol_record(cfg)),
        "dfd.data.source": _dataset_name(data.get("train") or {}),
        "dfd.data.targets": ",".join(str(t) for t in test),
        "dfd.selection.monitor": str(cfg.trainer.monitor),
        "dfd.version": dfd.__version__,
    }
    commit = git_commit()
    if commit:
        tags["dfd.git_commit"] = commit
    return tags


def command_overrides(cfg: DictConfig) -> list[str]:
    """The overrides the run was composed from: the command line's under Hydra's app, else
    those a sweep recorded in the `dfd.overrides` tag (empty when unknown)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return list(HydraConfig.get().overrides.task)
    return str((cfg.tracking.get("tags") or {}).get("dfd.overrides", "")).split()
