"""What names a run's protocol: its data config (name and hash) and the rule that selects its
checkpoint, read from the composed config alone.

A table must be able to say which protocol a number came from. Every run records the data
config's name (`data.name`), a short hash of the composed data config that does not depend on
where the data live (`data_hash`), and which rule and which set selected its checkpoint
(`selection_rule`): the source domain's validation split (`source_val`, the default and the
paper's), held-out sets of the target domains pooled into one (`heldout`, GenD's), or a test
target (`test_set`, the seed's code: leaky, and marked so wherever its numbers go).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

RULES = ("source_val", "heldout", "test_set")
# keys that change how frames are fed or checked, or where dfd caches, but not which frames
# are read or how they are labelled: a protocol is the same whatever they say
_NOT_THE_PROTOCOL = frozenset(
    {"sampler", "store", "verify", "check_files", "cache_dir", "hf_cache_dir"}
)
HASH_CHARS = 12


@dataclass(frozen=True)
class SelectionRule:
    """Which rule selects the checkpoint (`rule`, one of `RULES`) and the config keys of the
    sets it selects on (`sets`, pooled into one when several); `target` names the test
    target of ``test_set``."""

    rule: str
    sets: tuple[str, ...]
    target: str | None = None

    @property
    def leaky(self) -> bool:
        """Whether the checkpoint was chosen on a set the run also reports as a test result."""
        return self.rule == "test_set"

    def describe(self) -> str:
        """``source_val (data.val)``, ``heldout (data.heldout.a, data.heldout.b)``, ..."""
        return f"{self.rule} ({', '.join(self.sets)})"

    def as_dict(self) -> dict[str, Any]:
        """What metrics.json records of it."""
        return {
            "rule": self.rule,
            "sets": list(self.sets),
            "leaky": self.leaky,
            **({"target": self.target} if self.target else {}),
        }


def selection_rule(cfg: DictConfig) -> SelectionRule:
    """The run's selection rule from `cfg.selection` (absent: ``source_val``), checked against
    its data config: ``heldout`` needs a non-empty ``data.heldout``; ``test_set`` needs
    ``selection.target`` naming one of ``data.test``'s targets. A bad choice is a ValueError
    that names the key and the fix."""
    selection: Mapping = cfg.get("selection") or {}
    data: Mapping = cfg.get("data") or {}
    rule = str(selection.get("name", "source_val"))
    if rule == "source_val":
        return SelectionRule(rule, ("data.val",))
    if rule == "heldout":
        heldout = data.get("heldout") or {}
        if not heldout:
            raise ValueError(
                f"selection=heldout: data={data.get('name')} has no data.heldout sets to select on; "
                f"use a data config that defines them (data=demo does) or add one with "
                f"+data.heldout.<name>={{...a dataset spec...}}"
            )
        return SelectionRule(rule, tuple(f"data.heldout.{name}" for name in heldout))
    if rule == "test_set":
        targets = list(data.get("test") or {})
        target = selection.get("target")
        if target is None:
            raise ValueError(
                f"selection=test_set selects the checkpoint on a test target, so it must be named: "
                f"add selection.target=<one of {targets}> (its results are marked leaky)"
            )
        if str(target) not in targets:
            raise ValueError(
                f"selection.target={target}: not a test target of data={data.get('name')}; "
                f"its targets are {targets}"
            )
        return SelectionRule(rule, (f"data.test.{target}",), str(target))
    raise ValueError(f"selection.name={rule}: unknown rule; choose selection=" + " | ".join(RULES))


def _without(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {k: _without(v) for k, v in node.items() if k not in _NOT_THE_PROTOCOL}
    if isinstance(node, list):
        return [_without(v) for v in node]
    return node


def data_hash(cfg: DictConfig) -> str:
    """A short SHA-256 (12 hex digits) of the composed data config: the same protocol hashes
    the same on every machine, and any change to which frames are read or how (a dataset, a
    split, a label rule, frames per video, a held-out set) changes it.

    The data node is resolved with every ``paths.*`` value replaced by its own name
    (``${paths.data_dir}/ff`` hashes as ``<paths.data_dir>/ff``), so two machines with
    different `paths.data_dir` agree; a path given explicitly (``data.train.root=/fast/ff``)
    stays in, since it may hold other data. Keys that do not decide the data (the sampler,
    the frame store, decode checks, cache folders: `_NOT_THE_PROTOCOL`) are left out.
    """
    raw = OmegaConf.to_container(cfg, resolve=False)
    placeholders = {k: f"<paths.{k}>" for k in raw.get("paths") or {}}
    others = {k: v for k, v in raw.items() if k not in ("paths", "hydra")}
    resolved = OmegaConf.to_container(
        OmegaConf.create({**others, "paths": placeholders}).data, resolve=True
    )
    text = json.dumps(_without(resolved), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def protocol_record(cfg: DictConfig) -> dict[str, Any]:
    """What metrics.json records of the protocol: ``{"data": name, "data_hash": ...,
    "selection": {"rule", "sets", "leaky"[, "target"]}}``."""
    data = cfg.get("data") or {}
    return {
        "data": str(data.get("name", "unknown")),
        "data_hash": data_hash(cfg),
        "selection": selection_rule(cfg).as_dict(),
    }


def protocol_tags(record: Mapping[str, Any]) -> dict[str, str]:
    """The MLflow tags of a `protocol_record`: `dfd.data`, `dfd.data.hash`, `dfd.selection`
    (the rule), `dfd.selection.split` (rule and sets: ``source_val (data.val)``) and
    `dfd.selection.leaky` (``true`` | ``false``, or ``unknown`` for a checkpoint another code
    base selected)."""
    sel = record["selection"]
    leaky = sel.get("leaky")
    return {
        "dfd.data": str(record["data"]),
        "dfd.data.hash": str(record["data_hash"]),
        "dfd.selection": str(sel["rule"]),
        "dfd.selection.split": f"{sel['rule']} ({', '.join(sel['sets'])})",
        "dfd.selection.leaky": "unknown" if leaky is None else str(bool(leaky)).lower(),
    }
