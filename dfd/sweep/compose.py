"""Trial configs: `conf/train.yaml` composed with Hydra's compose API, as `python -m dfd.train`
would compose it from the sweep's shared overrides and a trial's own."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from dfd.runtime.config import PROJECT_ROOT
from dfd.sweep.space import GridPoint, Param, Value, override_value

CONF_DIR = PROJECT_ROOT / "conf"


@contextlib.contextmanager
def train_config_source() -> Iterator[None]:
    """Make Hydra's compose API available for `conf/`.

    Under `python -m dfd.sweep` Hydra is already initialized on `conf/` (which holds
    `train.yaml`) and is reused; elsewhere (tests, notebooks) it is initialized for the block.
    """
    if GlobalHydra.instance().is_initialized():
        yield
        return
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield


def compose_train_config(overrides: Sequence[str]) -> DictConfig:
    """`conf/train.yaml` with `overrides`, as `python -m dfd.train <overrides>` sees it."""
    return compose(config_name="train", overrides=list(overrides))


def pairing_error(cfg: DictConfig) -> str | None:
    """Why the config's loss cannot train with its head, or None; builds no backbone.

    The check `build_detector` makes first (`check_head` on a head of a dummy width), run
    here so that exactly this error, and no other ValueError, marks a trial as invalid.
    """
    # imported here: composing configs and claiming grid points need no torch
    from dfd.models.objectives import check_head

    try:
        check_head(instantiate(cfg.loss), instantiate(cfg.head)(in_features=8))
    except ValueError as err:
        return str(err)
    return None


def leaky_objective_error(cfg: DictConfig) -> str | None:
    """Why the config cannot be a sweep's trial, or None: a sweep optimizes the selection
    set's metric, and under ``selection=test_set`` that set is a test target, so the sweep
    would tune the detector on the numbers it reports."""
    selection = cfg.get("selection") or {}
    if selection.get("name") != "test_set":
        return None
    return (
        f"selection=test_set selects on test target {selection.get('target')!r}: a sweep would "
        f"tune on it, so dfd.sweep refuses it as its objective; use selection=source_val or "
        f"selection=heldout"
    )


def path_overrides(paths: DictConfig, output_dir: Path) -> list[str]:
    """The sweep's `paths` as train overrides, with `output_dir` set to `output_dir`.

    Paths set on the sweep's command line (data_dir, output_root, ...) hold for every trial,
    and each trial writes into its own folder.
    """
    # iterate keys, not items: output_dir may be an unresolvable ${hydra:...} outside an app
    out = [f"paths.{k}={override_value(str(paths[k]))}" for k in paths if k != "output_dir"]
    return [*out, f"paths.output_dir={override_value(str(output_dir))}"]


def check_space(
    params: Sequence[Param],
    shared: Sequence[str],
    enqueue: Sequence[Mapping[str, Value]],
    base: DictConfig | None = None,
) -> list[tuple[str, DictConfig]]:
    """Fail at start when a choice, a range's key or an enqueued trial does not compose.

    Each value is composed with the shared overrides and, for a conditional parameter, with
    values of its parents that make it active, so a typo (`peft=lnn`, `loss.slerpp`) stops the
    sweep before any training, naming the parameter. Returns every distinct data config met
    (the `base` config's, any a choice selects) with where it comes from, for `check_data`.
    """
    by_name = {p.name: p for p in params}

    def context(param: Param) -> list[str]:
        overrides: list[str] = []
        for parent, allowed in param.when.items():
            overrides += context(by_name[parent]) + by_name[parent].overrides(allowed[0])
        return overrides

    data = {_key(base.data): ("sweep.base_overrides", base.data)} if base is not None else {}
    for param in params:
        # a range's key is what can be misspelled; its ends were checked by its distribution
        values = param.choices if param.low is None else (param.low,)
        for value in values:
            overrides = [*shared, *context(param), *param.overrides(value)]
            try:
                cfg = compose_train_config(overrides)
            except Exception as err:
                raise ValueError(
                    f"sweep.space.{param.name}={value!r}: the overrides {param.overrides(value)} "
                    f"do not compose with the sweep's base overrides: {err}"
                ) from err
            leaky = leaky_objective_error(cfg)
            if leaky is not None:
                raise ValueError(f"sweep.space.{param.name}={value!r}: {leaky}")
            data.setdefault(_key(cfg.data), (f"sweep.space.{param.name}={value!r}", cfg.data))
    for i, trial in enumerate(enqueue):
        for name, value in trial.items():
            if name not in by_name:
                raise ValueError(
                    f"sweep.enqueue[{i}] names {name!r}, not a parameter of sweep.space"
                )
            if not by_name[name].contains(value):
                raise ValueError(f"sweep.enqueue[{i}]: {name}={value!r} is outside its space")
    return list(data.values())


def check_grid(points: Sequence[GridPoint], shared: Sequence[str]) -> list[tuple[str, DictConfig]]:
    """Fail at start when a row does not compose or pairs a loss with a head it cannot train.

    Every row is composed once (its first seed) with the shared overrides: a typo in a row or
    an impossible row stops the sweep before any training, naming the row. Returns every
    distinct data config of the rows with the first row using it, for `check_data`.
    """
    seen: set[str] = set()
    data: dict[str, tuple[str, DictConfig]] = {}
    for point in points:
        if point.row in seen:
            continue
        seen.add(point.row)
        try:
            cfg = compose_train_config([*shared, *point.train_overrides()])
        except Exception as err:
            raise ValueError(
                f"sweep.rows.{point.row}: the overrides {list(point.overrides)} do not compose "
                f"with the sweep's base overrides: {err}"
            ) from err
        reason = pairing_error(cfg) or leaky_objective_error(cfg)
        if reason is not None:
            raise ValueError(f"sweep.rows.{point.row} cannot train: {reason}")
        data.setdefault(_key(cfg.data), (f"sweep.rows.{point.row}", cfg.data))
    return list(data.values())


def check_data(sets: Iterable[tuple[str, DictConfig]]) -> None:
    """Read every distinct data config the sweep's trials will train on, before any trial.

    Each `(where, data)` is read as training reads it (`load_splits`: every dataset's root,
    lists and labels, through the index cache the trials then reuse), so a missing data root
    stops the sweep at start, naming the row (or `base_overrides`) and the path.
    """
    from dfd.data.splits import load_splits

    for where, data in sets:
        try:
            load_splits(data)
        except (OSError, ValueError) as err:
            raise type(err)(f"{where}: {err}") from None


def _key(node: DictConfig) -> str:
    return json.dumps(OmegaConf.to_container(node, resolve=True), sort_keys=True, default=str)
