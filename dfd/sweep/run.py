"""Running a sweep: open (or join) the study, run this process's trials under one MLflow parent
run, and leave the report.

Two kinds of sweep file (the `sweep` config group, folder `sweeps/`):
- a grid (`rows` x `seeds`): a controlled ablation. Every row trains once per seed, never
  pruned; each point is claimed atomically in the study's database (`GridClaims`), so any
  number of workers on one study train each point exactly once.
- a search (`space`, `n_trials`): Optuna's sampler (TPE) explores the space, its pruner stops
  poor trials through a training callback.
"""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.trial import TrialState

from dfd.report.study import report_study
from dfd.runtime.redact import redact_values
from dfd.sweep.compose import (
    check_data,
    check_grid,
    check_space,
    compose_train_config,
    leaky_objective_error,
    path_overrides,
    train_config_source,
)
from dfd.sweep.grid import GRID_SEARCH_TAKEN, is_grid_sampler, run_grid, run_grid_search
from dfd.sweep.objective import SearchObjective, TrialContext
from dfd.sweep.space import parse_grid, parse_space
from dfd.sweep.storage import GridClaims, check_storage, open_study, storage_errors
from dfd.tracking.pending import PENDING_FILE

log = logging.getLogger(__name__)

_STARTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)


def is_grid(spec: DictConfig) -> bool:
    """Whether a sweep file describes a grid (`rows`) rather than a search (`space`)."""
    has_rows, has_space = spec.get("rows") is not None, spec.get("space") is not None
    if has_rows == has_space:
        raise ValueError(
            f"sweep {spec.get('study_name')!r}: give either `rows` (+ `seeds`: a grid ablation) "
            "or `space` (+ `n_trials`: a search), not " + ("both" if has_rows else "neither")
        )
    return has_rows


def run_sweep(cfg: DictConfig) -> optuna.Study:
    """Run (or join) the study `cfg.sweep` describes; return it after this process's trials.

    A grid sweep trains every point no process has trained or is training; a search runs
    trials until the study holds `sweep.n_trials`. Each trial is a nested MLflow run under
    this process's parent run, which ends with the report (`dfd.report.study`), also written
    to `cfg.paths.output_dir`.
    """
    spec = cfg.sweep
    check_storage(str(cfg.storage))  # seconds, before composing and checking every row
    out_dir = Path(cfg.paths.output_dir)
    grid = is_grid(spec)
    grid_search = None
    shared = [*spec.base_overrides, *cfg.overrides]
    with_paths = [*path_overrides(cfg.paths, out_dir), *shared]
    catch = tuple(get_class(name) for name in cfg.get("catch") or [])
    with train_config_source(), storage_errors(str(cfg.storage)):
        base = compose_train_config(with_paths)
        leaky = leaky_objective_error(base)
        if leaky is not None:
            raise ValueError(f"sweep {spec.get('study_name')!r}: {leaky}")
        monitor = str(base.trainer.monitor)
        if grid:
            points = parse_grid(spec.rows, spec.seeds)
            data = check_grid(points, with_paths)
            reference = spec.get("reference")
            if reference is not None and reference not in spec.rows:
                raise ValueError(
                    f"sweep.reference={reference!r} is not a row; rows: {list(spec.rows)}"
                )
        else:
            params = parse_space(spec.space)
            data = check_space(params, with_paths, spec.get("enqueue") or [], base)
            grid_search = _grid_sampler_space(spec, params)
            n_trials = int(spec.n_trials)
        check_data(data)  # a missing data root stops the sweep here, not in its first trial
        study = open_study(cfg, f"val/{monitor}")
        ctx = TrialContext(shared, cfg.paths, out_dir / "trials", str(spec.study_name), monitor)
        parent = _parent_tracker(base, spec)
        parent.journal = out_dir / PENDING_FILE
        with parent.run(_loggable(cfg)):
            if grid:
                claims = GridClaims(str(cfg.storage), study)
                try:
                    run_grid(study, points, claims, ctx, catch)
                finally:
                    claims.close()
            elif grid_search is not None:
                claims = GridClaims(str(cfg.storage), study, taken=GRID_SEARCH_TAKEN)
                objective = SearchObjective(ctx, params)
                try:
                    run_grid_search(study, grid_search, objective, claims, n_trials, catch)
                finally:
                    claims.close()
            else:
                run_search(study, SearchObjective(ctx, params), n_trials, catch)
            report_study(study, parent, out_dir, monitor, spec, str(base.tracking.uri) or None)
    return study


def _grid_sampler_space(spec: DictConfig, params) -> dict | None:
    """The search space of a search sweep whose sampler is Optuna's `GridSampler` (run through
    the grid claims, `run_grid_search`), or None for any other sampler."""
    if not is_grid_sampler(spec.get("sampler")):
        return None
    space = OmegaConf.to_container(spec.sampler.get("search_space") or {}, resolve=True)
    names = [p.name for p in params]
    missing = [n for n in names if n not in space]
    unknown = [n for n in space if n not in names]
    if missing or unknown or spec.get("enqueue"):
        raise ValueError(
            f"sweep {spec.study_name!r}: a GridSampler's search_space must list the values of "
            f"every parameter of sweep.space, and only those (missing {missing}, not in the "
            f"space {unknown}), and take no enqueue: it would draw the missing ones at random. "
            f"For an ablation, a `rows` grid is simpler (sweeps/README.md)"
        )
    return space


def run_search(
    study: optuna.Study,
    objective: SearchObjective,
    n_trials: int,
    catch: tuple[type[BaseException], ...],
) -> None:
    """Run trials until the study holds `n_trials` started trials, whichever process ran them."""
    started = len(study.get_trials(deepcopy=False, states=_STARTED))
    remaining = n_trials - started
    log.info(
        "study %r: %d of %d trials started; this process runs up to %d",
        study.study_name,
        started,
        n_trials,
        max(remaining, 0),
    )
    if remaining > 0:
        study.optimize(
            objective,
            n_trials=remaining,
            catch=catch,
            # stop when other processes have filled the study
            callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=_STARTED)],
            gc_after_trial=True,
        )


def _parent_tracker(base: DictConfig, spec: DictConfig):
    tracking = base.tracking.copy()
    with open_dict(tracking):
        tracking.run_name = f"sweep {spec.study_name}"
        tracking.tags = {"optuna.study_name": spec.study_name, "dfd.role": "sweep"}
        tracking.nested = False
    return instantiate(tracking)


def _loggable(cfg: DictConfig) -> DictConfig:
    return OmegaConf.create(redact_values(OmegaConf.to_container(cfg, resolve=True)))
