"""The trial objective: compose a trial's config, train it with `dfd.train.train`, return its
SOURCE validation metric.

Target test sets never score a trial: their metrics are recorded as user attributes for
reporting only, because choosing a configuration on them would tune the detector to the
"unseen" datasets and void the cross-dataset protocol. The sweep reaches into training only
through `dfd.train.train(cfg, callbacks=[...])`: the pruner is a callback, and trial runs nest
and tag through plain config keys (`tracking.nested`, `tracking.tags`, `tracking.run_name`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
from omegaconf import DictConfig, open_dict
from optuna.trial import FrozenTrial, TrialState

from dfd.engine.callbacks import Callback, RunState, RunStopped
from dfd.runtime.redact import redact
from dfd.runtime.run_info import run_name
from dfd.sweep.compose import (
    compose_train_config,
    leaky_objective_error,
    pairing_error,
    path_overrides,
)
from dfd.sweep.space import GridPoint, Param, Value
from dfd.sweep.storage import GridClaims

log = logging.getLogger(__name__)


class TrialPrunedStop(RunStopped, optuna.TrialPruned):
    """The pruner stopped the trial: its run ends KILLED (`RunStopped`) and Optuna records the
    trial PRUNED (`TrialPruned`)."""


class OptunaTrialCallback(Callback):
    """Links a trial to its training run and, when `prune`, lets the study's pruner stop it.

    At fit start it records the MLflow run id as the trial's `mlflow_run_id`; after each
    epoch's source validation it reports `monitor` to the trial (step = epoch) and raises
    `TrialPrunedStop` when the pruner says so. Only the main process reports.
    """

    def __init__(self, trial: optuna.Trial, monitor: str, prune: bool) -> None:
        self.trial, self.monitor, self.prune = trial, monitor, prune

    def on_fit_start(self, run: RunState) -> None:
        if run.is_main_process and run.run_id:
            self.trial.set_user_attr("mlflow_run_id", run.run_id)

    def on_validation_end(self, run: RunState, metrics: Mapping[str, float]) -> None:
        if not (self.prune and run.is_main_process):
            return
        value = metrics.get(self.monitor, metrics.get(f"val/{self.monitor}"))
        if value is None:
            raise KeyError(
                f"validation metrics hold no {self.monitor!r} (trainer.monitor) to prune on; "
                f"they hold {sorted(metrics)}"
            )
        self.trial.report(float(value), run.epoch)
        if self.trial.should_prune():
            raise TrialPrunedStop(
                f"stopped by the pruner after epoch {run.epoch} (val {self.monitor} {value:.4f})"
            )


@dataclass
class TrialContext:
    """What every trial of one sweep shares: its paths, shared overrides and study name."""

    shared: Sequence[str]
    paths: DictConfig
    trials_dir: Path
    study_name: str
    monitor: str


def train_trial(
    ctx: TrialContext,
    trial: optuna.Trial,
    overrides: Sequence[str],
    name: str,
    tags: Mapping[str, str],
    prune: bool,
) -> float:
    """Compose and train one trial; record its results as user attributes; return source val.

    An invalid loss/head pair is PRUNED with its reason (never a score, never trained); an
    error is recorded in the trial's `reason` and re-raised.
    """
    out_dir = ctx.trials_dir / f"{trial.number:03d}"
    trial.set_user_attr("overrides", redact(" ".join(overrides)))
    trial.set_user_attr("output_dir", str(out_dir))
    cfg = compose_train_config([*path_overrides(ctx.paths, out_dir), *ctx.shared, *overrides])
    leaky = leaky_objective_error(cfg)
    if leaky is not None:
        # never trained: a trial may not select on a test target (a row or space set it)
        trial.set_user_attr("reason", leaky)
        raise ValueError(leaky)
    reason = pairing_error(cfg)
    if reason is not None:
        # never a score: pruned, so TPE learns to avoid the combination, with the reason
        trial.set_user_attr("reason", f"invalid combination: {reason}")
        raise optuna.TrialPruned(reason)
    with open_dict(cfg):
        cfg.tracking.nested = True  # under the sweep's parent run
        cfg.tracking.run_name = name
        cfg.tracking.tags = {
            "optuna.study_name": ctx.study_name,
            "optuna.trial_number": str(trial.number),
            # rerun this trial alone: python -m dfd.train <this>
            "dfd.overrides": " ".join([*ctx.shared, *overrides])[:5000],
            **tags,
        }

    # imported here: dfd.train pulls in the whole model stack, the sweep's setup needs none of it
    import torch

    from dfd.train import train

    try:
        result = train(cfg, callbacks=[OptunaTrialCallback(trial, ctx.monitor, prune)])
    except optuna.TrialPruned as err:
        trial.set_user_attr("reason", str(err))
        raise
    except Exception as err:
        trial.set_user_attr("reason", redact(f"{type(err).__name__}: {err}")[:2000])
        raise
    finally:
        # the trial's model is garbage now (gc_after_trial collects it): give its GPU memory back
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # reported beside the value, never optimized
    trial.set_user_attr("best_epoch", int(result["best_epoch"]))
    trial.set_user_attr("test/mean/video_auc", float(result["mean"]["video_auc"]))
    # the data config's target order: Optuna hands user attributes back sorted by name
    trial.set_user_attr("targets", list(result["test"]))
    for target, metrics in result["test"].items():
        trial.set_user_attr(f"test/{target}/video_auc", float(metrics["video_auc"]))
    for key, value in result["val"].items():
        if isinstance(value, int | float):
            trial.set_user_attr(f"val/{key}", float(value))
    value = float(result["val"][ctx.monitor])
    if math.isnan(value):
        trial.set_user_attr("reason", f"val {ctx.monitor} is NaN")
    return value


@dataclass
class SearchObjective:
    """A search sweep's objective: sample the space, refuse repeats, train, return source val."""

    ctx: TrialContext
    params: Sequence[Param]

    def __call__(self, trial: optuna.Trial) -> float:
        sampled: dict[str, Value] = {}
        for param in self.params:
            if param.is_active(sampled):
                sampled[param.name] = param.suggest(trial)
        overrides = [
            o for p in self.params if p.name in sampled for o in p.overrides(sampled[p.name])
        ]
        label = config_label(sampled)
        trial.set_user_attr("label", label)
        log.info("trial %d: %s", trial.number, " ".join(overrides))

        earlier = _completed_duplicate(trial, sampled)
        if earlier is not None:
            # same config and seed: a rerun would only repeat the measurement
            trial.set_user_attr("duplicate_of", earlier.number)
            for key, value in earlier.user_attrs.items():
                if key.startswith(("test/", "val/")):
                    trial.set_user_attr(key, value)
            return float(earlier.value)
        name = f"{self.ctx.study_name} #{trial.number} · {run_name(overrides)}"
        return train_trial(self.ctx, trial, overrides, name, {}, prune=True)


@dataclass
class GridObjective:
    """A grid sweep's objective for one claimed point: train the row under the point's seed.

    Never pruned: an ablation row is compared on its completed runs only.
    """

    ctx: TrialContext
    point: GridPoint
    claims: GridClaims
    distributions: Mapping[str, optuna.distributions.BaseDistribution]

    def __call__(self, trial: optuna.Trial) -> float:
        self.claims.bind(self.point.key, trial.number)
        for key, value in self.point.params.items():
            # the study's sampler is fixed to this point (PartialFixedSampler): this records it
            got = trial.suggest_categorical(key, list(self.distributions[key].choices))
            if got != value:
                raise RuntimeError(
                    f"trial {trial.number} drew {key}={got}, not the claimed {value}"
                )
        trial.set_user_attr("point", self.point.key)
        trial.set_user_attr("label", self.point.key)
        log.info("trial %d: grid point %s", trial.number, self.point.key)
        tags = {"dfd.sweep.row": self.point.row, "dfd.sweep.seed": str(self.point.seed)}
        # the row's label is the name its author gave the configuration: `ln · seed=0`
        name = run_name([f"seed={self.point.seed}"], experiment=self.point.row)
        return train_trial(self.ctx, trial, self.point.train_overrides(), name, tags, prune=False)


def config_label(params: Mapping[str, Value]) -> str:
    """A trial's configuration in a few words, for plot points and tables (`ln · lr=0.003`)."""
    parts = []
    for key, value in params.items():
        text = f"{value:.3g}" if isinstance(value, float) else str(value)
        # a config-group choice reads as itself, a key as leaf=value
        parts.append(
            text if "." not in key and key not in ("seed",) else f"{key.rsplit('.', 1)[-1]}={text}"
        )
    return " · ".join(parts)


def _completed_duplicate(trial: optuna.Trial, sampled: Mapping[str, Value]) -> FrozenTrial | None:
    for done in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if done.params == sampled:
            return done
    return None
