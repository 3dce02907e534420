"""A sweep's search space: its parameters, the train overrides each value stands for, and the
grid of an ablation (rows x seeds).

A search sweep (`sweep.space`) samples config-group choices, named variants (several overrides
under one label) and numeric ranges. A grid sweep (`sweep.rows` x `sweep.seeds`) trains every
row, each a label for a list of overrides, once per seed: a controlled ablation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from omegaconf import DictConfig, ListConfig, OmegaConf

Value = bool | int | float | str | None

_SPEC_KEYS = {"choices", "low", "high", "log", "step", "type", "when"}
_PLAIN = re.compile(r"[\w./:+\-@%]+")


def override_value(value: Value) -> str:
    """A value as Hydra's override grammar reads it back: bools lowercase, odd strings quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if _PLAIN.fullmatch(text):
        return text
    # Hydra keeps backslashes as written, except a run of them before a quote, which it halves
    text = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, text)
    return "'" + text.replace("'", "\\'") + "'"


@dataclass(frozen=True)
class Param:
    """One dimension of a search space and the train overrides each of its values stands for.

    Categorical: `choices` (override `name=<choice>`), or `variants` (label -> overrides, for
    choices that set several keys at once). Numeric: `low`..`high`, optionally `log` or
    `step`, integer when `integer`. `when` makes it conditional: it is sampled only when each
    named earlier parameter took one of the listed values.
    """

    name: str
    choices: tuple[Value, ...] = ()
    variants: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False
    when: Mapping[str, tuple[Value, ...]] = field(default_factory=dict)

    @property
    def distribution(self) -> optuna.distributions.BaseDistribution:
        """The Optuna distribution; building it also checks low/high/log/step."""
        if self.low is None:
            return optuna.distributions.CategoricalDistribution(self.choices)
        if self.integer:
            return optuna.distributions.IntDistribution(
                int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return optuna.distributions.FloatDistribution(
            self.low, self.high, log=self.log, step=self.step
        )

    def suggest(self, trial: optuna.Trial) -> Value:
        """Ask the trial's sampler for this parameter's value."""
        if self.low is None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def overrides(self, value: Value) -> list[str]:
        """The train overrides that set this parameter to `value`."""
        if self.variants:
            return list(self.variants[value])
        return [f"{self.name}={override_value(value)}"]

    def contains(self, value: Value) -> bool:
        """Whether `value` lies in this parameter's space (enqueued trials are checked with it)."""
        if self.low is None:
            return value in self.choices
        return isinstance(value, int | float) and self.low <= value <= self.high

    def is_active(self, sampled: Mapping[str, Value]) -> bool:
        """Whether every `when` condition holds for the values sampled so far."""
        return all(k in sampled and sampled[k] in allowed for k, allowed in self.when.items())


def parse_space(space: Mapping[str, Any]) -> list[Param]:
    """`sweep.space` -> parameters in order; a malformed entry fails naming it and the fix.

    Each entry is `name: [choices]` or `name: {choices: [...] | {label: [overrides]},
    when: {...}}` or `name: {low, high, log?, step?, type?: int|float, when?}`.
    """
    params: dict[str, Param] = {}
    for name, raw in space.items():
        spec = OmegaConf.to_container(raw) if isinstance(raw, DictConfig | ListConfig) else raw
        where = f"sweep.space.{name}"
        if isinstance(spec, list):
            spec = {"choices": spec}
        if not isinstance(spec, dict):
            raise ValueError(f"{where}: expected a list of choices or a mapping, got {spec!r}")
        unknown = set(spec) - _SPEC_KEYS
        if unknown:
            raise ValueError(
                f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(_SPEC_KEYS)}"
            )
        when = {
            k: tuple(v) if isinstance(v, list) else (v,)
            for k, v in (spec.get("when") or {}).items()
        }
        for parent, allowed in when.items():
            if parent not in params:
                raise ValueError(
                    f"{where}.when names {parent!r}, which is not a parameter listed before it "
                    f"(listed before: {list(params) or 'none'})"
                )
            known = params[parent].choices
            if known and (bad := [v for v in allowed if v not in known]):
                raise ValueError(
                    f"{where}.when: {parent} never takes {bad}; its choices: {list(known)}"
                )
        params[name] = _param(name, spec, when, where)
    return list(params.values())


def _param(name: str, spec: dict, when: dict, where: str) -> Param:
    if "choices" in spec:
        choices = spec["choices"]
        if not choices:
            raise ValueError(f"{where}.choices is empty")
        if isinstance(choices, dict):
            variants = {
                str(label): tuple([ovs] if isinstance(ovs, str) else ovs)
                for label, ovs in choices.items()
            }
            param = Param(name, tuple(variants), variants=variants, when=when)
        else:
            param = Param(name, tuple(choices), when=when)
    elif "low" in spec and "high" in spec:
        kind = spec.get("type") or (
            "int" if all(isinstance(spec[k], int) for k in ("low", "high")) else "float"
        )
        if kind not in ("int", "float"):
            raise ValueError(f"{where}.type must be int or float, got {kind!r}")
        param = Param(
            name,
            low=spec["low"],
            high=spec["high"],
            log=bool(spec.get("log", False)),
            step=spec.get("step"),
            integer=kind == "int",
            when=when,
        )
    else:
        raise ValueError(f"{where}: give `choices` or both `low` and `high`")
    try:
        param.distribution  # noqa: B018  (validates the range)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from err
    return param


@dataclass(frozen=True)
class GridPoint:
    """One training of a grid sweep: a row (a label for overrides) under one seed."""

    row: str
    seed: int
    overrides: tuple[str, ...]

    @property
    def key(self) -> str:
        """The point's name in the study's storage and in tables: `<row>/seed=<seed>`."""
        return f"{self.row}/seed={self.seed}"

    @property
    def params(self) -> dict[str, Value]:
        """The point as Optuna trial parameters."""
        return {"row": self.row, "seed": self.seed}

    def train_overrides(self) -> list[str]:
        """The row's overrides plus the seed: what `python -m dfd.train` would be given."""
        return [*self.overrides, f"seed={self.seed}"]


def parse_grid(rows: Mapping[str, Any], seeds: Sequence[Any]) -> list[GridPoint]:
    """`sweep.rows` x `sweep.seeds` -> grid points, row by row in file order, then seed by seed.

    `rows` maps a label to its train overrides (a list, or one string; `[]` is the base
    config). A row or seed list that is empty or malformed fails naming the key and the fix.
    """
    if isinstance(rows, DictConfig):
        rows = OmegaConf.to_container(rows)
    if isinstance(seeds, ListConfig):
        seeds = OmegaConf.to_container(seeds)
    if not rows or not isinstance(rows, Mapping):
        raise ValueError("sweep.rows: give a mapping of row labels to override lists")
    if isinstance(seeds, int):
        seeds = [seeds]
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"sweep.seeds: give a list of integer seeds, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"sweep.seeds lists a seed twice: {seeds}")
    points = []
    for label, overrides in rows.items():
        if isinstance(overrides, str):
            overrides = [overrides]
        if overrides is None:
            overrides = []
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise ValueError(f"sweep.rows.{label}: expected a list of override strings")
        if any(o.split("=", 1)[0].lstrip("+~") == "seed" for o in overrides):
            raise ValueError(f"sweep.rows.{label} sets seed: seeds come from sweep.seeds")
        points += [GridPoint(str(label), int(s), tuple(overrides)) for s in seeds]
    return points


def grid_distributions(
    points: Sequence[GridPoint],
) -> dict[str, optuna.distributions.BaseDistribution]:
    """The Optuna distributions of a grid's two parameters (`row`, `seed`)."""
    rows = list(dict.fromkeys(p.row for p in points))
    seeds = list(dict.fromkeys(p.seed for p in points))
    return {
        "row": optuna.distributions.CategoricalDistribution(rows),
        "seed": optuna.distributions.CategoricalDistribution(seeds),
    }
