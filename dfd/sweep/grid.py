"""The grid worker: train every point of a grid ablation that no process has trained or is
training, each claimed in the study's database first (`dfd.sweep.storage.GridClaims`)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence

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
