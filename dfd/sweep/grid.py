"""The grid worker: train every point of a grid ablation that no process has trained or is
training, each claimed in the study's database first (`dfd.sweep.storage.GridClaims`)."""

from __future__ import annotations

import itertools
import json
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence

import optuna
from optuna.trial import TrialState

from dfd.sweep.objective import GridObjective, TrialContext
from dfd.sweep.space import GridPoint, grid_distributions
from dfd.sweep.storage import GridClaims

log = logging.getLogger(__name__)


def run_grid(
    study: optuna.Study,
    points: Sequence[GridPoint],
    claims: GridClaims,
    ctx: TrialContext,
    catch: tuple[type[BaseException], ...],
    objective_for: Callable[[GridPoint], Callable[[optuna.Trial], float]] | None = None,
) -> list[str]:
    """Train every point of `points` this process can claim; return the keys it trained.

    Points are tried in grid order. Before each claim, trials whose process stopped beating
    are marked FAIL, which frees their points. `objective_for` builds a point's objective
    (default: `GridObjective`, real training; tests pass a stand-in).
    """
    distributions = grid_distributions(points)
    objective_for = objective_for or (
        lambda point: GridObjective(ctx, point, claims, distributions)
    )
    trained = []
    free = [p for p in points if not _is_done(study, p)]
    log.info(
        "grid study %r: %d of %d points not yet trained", study.study_name, len(free), len(points)
    )
    for point in free:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        if not claims.claim(point.key):
            continue
        # the trial's parameters are the claimed point: the sampler can draw nothing else
        study.sampler = optuna.samplers.PartialFixedSampler(
            point.params, optuna.samplers.RandomSampler()
        )
        study.optimize(objective_for(point), n_trials=1, catch=catch, gc_after_trial=True)
        trained.append(point.key)
    return trained


def _is_done(study: optuna.Study, point: GridPoint) -> bool:
    return any(
        t.user_attrs.get("point") == point.key
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    )


def is_grid_sampler(sampler_cfg) -> bool:
    """Whether a sweep's `sampler` config builds Optuna's `GridSampler` (or a subclass)."""
    if not sampler_cfg or not sampler_cfg.get("_target_"):
        return False
    from hydra.utils import get_class

    return issubclass(get_class(str(sampler_cfg._target_)), optuna.samplers.GridSampler)


def grid_sampler_points(search_space: Mapping[str, Sequence]) -> list[dict]:
    """Every point of a `GridSampler` search space, in the order of its keys and values."""
    names = list(search_space)
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product(*(list(search_space[n]) for n in names))
    ]


def run_grid_search(
    study: optuna.Study,
    search_space: Mapping[str, Sequence],
    objective: Callable[[optuna.Trial], float],
    claims: GridClaims,
    n_trials: int,
    catch: tuple[type[BaseException], ...],
) -> list[str]:
    """A search sweep whose sampler is Optuna's `GridSampler`, run through the grid claims.

    `GridSampler` alone lets two workers train one point (it avoids the points of finished
    trials only, and two workers starting together draw among the same ones). Here each point
    of `search_space` is claimed in the study's database before its trial starts, exactly as
    a `rows` grid's points are, and the trial is fixed to it; a point held by a RUNNING,
    COMPLETE or PRUNED trial (pruning is the search's verdict) is skipped, one whose trial
    failed is retried. Stops when the study holds `n_trials` started trials. Returns the keys
    this process trained.
    """
    trained = []
    points = grid_sampler_points(search_space)
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    done = {_point_key(t.params) for t in study.get_trials(deepcopy=False, states=finished)}
    free = [p for p in points if _point_key(p) not in done]
    log.info(
        "grid search %r: %d of %d points not yet trained", study.study_name, len(free), len(points)
    )
    sampler = study.sampler
    try:
        for params in free:
            if len(study.get_trials(deepcopy=False, states=_STARTED)) >= n_trials:
                break
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            key = _point_key(params)
            if not claims.claim(key):
                continue
            study.sampler = optuna.samplers.PartialFixedSampler(
                params, optuna.samplers.RandomSampler()
            )

            def claimed(trial: optuna.Trial, key: str = key) -> float:
                claims.bind(key, trial.number)
                trial.set_user_attr("point", key)
                return objective(trial)

            study.optimize(claimed, n_trials=1, catch=catch, gc_after_trial=True)
            trained.append(key)
    finally:
        study.sampler = sampler
    return trained


# a grid search's point is taken by a pruned trial too: the pruner's verdict stands
GRID_SEARCH_TAKEN = (TrialState.RUNNING, TrialState.WAITING, TrialState.COMPLETE, TrialState.PRUNED)
_STARTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)


def _point_key(params: Mapping) -> str:
    return json.dumps({k: params[k] for k in sorted(params)}, default=str)
