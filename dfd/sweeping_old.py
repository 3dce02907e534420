"""Optuna sweeps over the training config; every trial is one real `dfd.train.train` run.

A sweep definition (a file of `sweeps/`, the `sweep` config group) names the study, its
sampler and pruner, the overrides every trial shares and a search space of config-group
choices, named variants (several overrides under one label) and numeric ranges. A trial
composes `conf/train.yaml` with Hydra's compose API (shared + sampled overrides), trains in
this process and is scored by the SOURCE domain's validation metric of the selected epoch,
`trainer.monitor`, the same number that selects the checkpoint. Target test sets never
score a trial: their metrics are recorded (MLflow, Optuna user attributes, `trials.csv`)
for reporting only, because choosing hyper-parameters on them would tune the detector to
the "unseen" datasets and void the cross-dataset protocol the paper evaluates with.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class, instantiate
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url

from dfd.config import PROJECT_ROOT
from dfd.objectives import check_head
from dfd.sweep_report import report_study
from dfd.tracking import Tracker

log = logging.getLogger(__name__)

CONF_DIR = PROJECT_ROOT / "conf"
Value = bool | int | float | str | None

# train() builds its tracker from the config, and a live Optuna trial cannot travel through
# a config: the objective publishes the trial here for the duration of one train() call.
_ACTIVE_TRIAL: ContextVar[optuna.Trial | None] = ContextVar("dfd_active_trial", default=None)

_SPEC_KEYS = {"choices", "low", "high", "log", "step", "type", "when"}
_PLAIN = re.compile(r"[\w./:+\-@%]+")
_STARTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)


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


class TrialTracker(Tracker):
    """The run's MLflow tracker that also reports each epoch's source-validation metric to the
    running Optuna trial, so that the sweep's pruner can stop a poor trial early.

    It relies on the Trainer logging `val/<monitor>` with `step=epoch` once per epoch. A
    pruned run's MLflow status becomes KILLED (stopped on purpose) with tag
    `optuna.state=PRUNED`. Outside a sweep it behaves exactly like `Tracker`.
    """

    def __init__(self, *args: Any, monitor: str = "video_auc", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.monitor = monitor
        self._reports = False

    @contextlib.contextmanager
    def run(self, cfg: DictConfig, active: bool = True) -> Iterator[TrialTracker]:
        """`Tracker.run`, linking the MLflow run id to the trial (user attribute `mlflow_run_id`)."""
        trial = _ACTIVE_TRIAL.get()
        self._reports = trial is not None and active
        try:
            with super().run(cfg, active):
                if trial is not None and self.run_id:
                    trial.set_user_attr("mlflow_run_id", self.run_id)
                yield self
        except optuna.TrialPruned:
            if self.run_id:
                client = MlflowClient(self.uri)
                client.set_tag(self.run_id, "optuna.state", "PRUNED")
                client.set_terminated(self.run_id, "KILLED")
            raise

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log as `Tracker` does; an epoch's `val/<monitor>` also goes to the trial's pruner."""
        super().log_metrics(metrics, step)
        trial, key = _ACTIVE_TRIAL.get(), f"val/{self.monitor}"
        if not self._reports or trial is None or step is None or key not in metrics:
            return
        value = float(metrics[key])
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned(
                f"stopped by the pruner after epoch {step} (val {self.monitor} {value:.4f})"
            )


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
    try:
        check_head(instantiate(cfg.loss), instantiate(cfg.head)(in_features=8))
    except ValueError as err:
        return str(err)
    return None


def path_overrides(paths: DictConfig, output_dir: Path) -> list[str]:
    """The sweep's `paths` as train overrides, with `output_dir` set to `output_dir`.

    Paths set on the sweep's command line (data_dir, output_root, ...) hold for every trial,
    and each trial writes into its own folder.
    """
    # iterate keys, not items: output_dir may be an unresolvable ${hydra:...} outside an app
    out = [f"paths.{k}={override_value(str(paths[k]))}" for k in paths if k != "output_dir"]
    return [*out, f"paths.output_dir={override_value(str(output_dir))}"]


def check_space(
    params: Sequence[Param], shared: Sequence[str], enqueue: Sequence[Mapping[str, Value]]
) -> None:
    """Fail at start when a choice, a range's key or an enqueued trial does not compose.

    Each value is composed with the shared overrides and, for a conditional parameter, with
    values of its parents that make it active, so a typo (`peft=lnn`, `loss.slerpp`) stops the
    sweep before any training, naming the parameter.
    """
    by_name = {p.name: p for p in params}

    def context(param: Param) -> list[str]:
        overrides: list[str] = []
        for parent, allowed in param.when.items():
            overrides += context(by_name[parent]) + by_name[parent].overrides(allowed[0])
        return overrides

    for param in params:
        # a range's key is what can be misspelled; its ends were checked by its distribution
        values = param.choices if param.low is None else (param.low,)
        for value in values:
            overrides = [*shared, *context(param), *param.overrides(value)]
            try:
                compose_train_config(overrides)
            except Exception as err:
                raise ValueError(
                    f"sweep.space.{param.name}={value!r}: the overrides {param.overrides(value)} "
                    f"do not compose with the sweep's base overrides: {err}"
                ) from err
    for i, trial in enumerate(enqueue):
        for name, value in trial.items():
            if name not in by_name:
                raise ValueError(
                    f"sweep.enqueue[{i}] names {name!r}, not a parameter of sweep.space"
                )
            if not by_name[name].contains(value):
                raise ValueError(f"sweep.enqueue[{i}]: {name}={value!r} is outside its space")


@dataclass
class TrialRunner:
    """The objective: sample, compose, refuse invalid combinations, train, return source val."""

    params: Sequence[Param]
    shared: Sequence[str]
    paths: DictConfig
    trials_dir: Path
    study_name: str

    def __call__(self, trial: optuna.Trial) -> float:
        sampled: dict[str, Value] = {}
        for param in self.params:
            if param.is_active(sampled):
                sampled[param.name] = param.suggest(trial)
        overrides = [
            o for p in self.params if p.name in sampled for o in p.overrides(sampled[p.name])
        ]
        trial.set_user_attr("overrides", " ".join(overrides))
        log.info("trial %d: %s", trial.number, " ".join(overrides))

        earlier = _completed_duplicate(trial, sampled)
        if earlier is not None:
            # same config and seed: a rerun would only repeat the measurement
            trial.set_user_attr("duplicate_of", earlier.number)
            for key, value in earlier.user_attrs.items():
                if key.startswith("test/"):
                    trial.set_user_attr(key, value)
            return float(earlier.value)

        out_dir = self.trials_dir / f"{trial.number:03d}"
        cfg = compose_train_config([*path_overrides(self.paths, out_dir), *self.shared, *overrides])
        reason = pairing_error(cfg)
        if reason is not None:
            # never a score: pruned, so TPE learns to avoid the combination, with the reason
            trial.set_user_attr("reason", f"invalid combination: {reason}")
            raise optuna.TrialPruned(reason)
        self._tag_tracking(cfg, trial, overrides)

        # imported here: dfd.train imports this module's TrialTracker through the config
        from dfd.train import train

        token = _ACTIVE_TRIAL.set(trial)
        try:
            result = train(cfg)
        except optuna.TrialPruned as err:
            trial.set_user_attr("reason", str(err))
            raise
        except Exception as err:
            trial.set_user_attr("reason", f"{type(err).__name__}: {err}"[:2000])
            raise
        finally:
            _ACTIVE_TRIAL.reset(token)
            # the trial's model is garbage now (gc_after_trial collects it): give its GPU memory back
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

        # reported beside the value, never optimized
        trial.set_user_attr("best_epoch", int(result["best_epoch"]))
        trial.set_user_attr("test/mean/video_auc", float(result["mean"]["video_auc"]))
        for name, metrics in result["test"].items():
            trial.set_user_attr(f"test/{name}/video_auc", float(metrics["video_auc"]))
        value = float(result["val"][cfg.trainer.monitor])
        if math.isnan(value):
            trial.set_user_attr("reason", f"val {cfg.trainer.monitor} is NaN")
        return value

    def _tag_tracking(self, cfg: DictConfig, trial: optuna.Trial, overrides: list[str]) -> None:
        with open_dict(cfg):
            cfg.tracking._target_ = f"{TrialTracker.__module__}.{TrialTracker.__name__}"
            cfg.tracking.monitor = cfg.trainer.monitor
            cfg.tracking.nested = True  # under the sweep's parent run
            if cfg.tracking.get("run_name") is None:
                cfg.tracking.run_name = f"{self.study_name} #{trial.number}"
            cfg.tracking.tags = {
                "optuna.study_name": self.study_name,
                "optuna.trial_number": str(trial.number),
                # rerun this trial alone: python -m dfd.train <this>
                "dfd.overrides": " ".join([*self.shared, *overrides])[:5000],
            }


def _completed_duplicate(trial: optuna.Trial, sampled: Mapping[str, Value]) -> FrozenTrial | None:
    for done in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if done.params == sampled:
            return done
    return None


def open_study(cfg: DictConfig) -> optuna.Study:
    """Create the study in `cfg.storage`, or join it: several processes share one study."""
    spec = cfg.sweep
    url = str(cfg.storage)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    beat = cfg.get("heartbeat_interval")
    with warnings.catch_warnings():
        # heartbeats and TPE's multivariate/group modes are experimental in Optuna and chosen
        # knowingly; their warnings would only repeat on every run
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(
            url, heartbeat_interval=beat, grace_period=2 * beat if beat else None
        )
        study = optuna.create_study(
            storage=storage,
            study_name=spec.study_name,
            direction=spec.direction,
            sampler=instantiate(spec.sampler),
            pruner=instantiate(spec.pruner),
            load_if_exists=True,
        )
    if study.direction.name.lower() != str(spec.direction).lower():
        raise ValueError(
            f"study {spec.study_name!r} in {redact(url)} exists with direction "
            f"{study.direction.name.lower()}, the sweep asks {spec.direction}: use another study_name"
        )
    for params in spec.get("enqueue") or []:
        study.enqueue_trial(OmegaConf.to_container(params), skip_if_exists=True)
    return study


def redact(url: str) -> str:
    """A storage URL without its password (safe to print and to log to MLflow)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL: let create_study report it
        return url


def run_sweep(cfg: DictConfig) -> optuna.Study:
    """Run (or join) the study `cfg.sweep` describes; return it after this process's trials.

    Trials run until the study holds `sweep.n_trials` trials in all, whichever process ran
    them. Each trial is a nested MLflow run under this process's parent run, which ends with
    the study's best trial (by source validation), `trials.csv` (source-val value beside the
    mean target video AUC, reported only) and plots, also written to `cfg.paths.output_dir`.
    """
    spec = cfg.sweep
    out_dir = Path(cfg.paths.output_dir)
    params = parse_space(spec.space)
    shared = [*spec.base_overrides, *cfg.overrides]
    catch = tuple(get_class(name) for name in cfg.get("catch") or [])
    with train_config_source():
        base = compose_train_config([*path_overrides(cfg.paths, out_dir), *shared])
        check_space(
            params, [*path_overrides(cfg.paths, out_dir), *shared], spec.get("enqueue") or []
        )
        study = open_study(cfg)
        monitor = str(base.trainer.monitor)
        parent = instantiate(
            base.tracking,
            run_name=f"sweep {spec.study_name}",
            tags={"optuna.study_name": spec.study_name, "dfd.role": "sweep"},
        )
        runner = TrialRunner(params, shared, cfg.paths, out_dir / "trials", str(spec.study_name))
        with parent.run(_loggable(cfg)):
            started = len(study.get_trials(deepcopy=False, states=_STARTED))
            remaining = int(spec.n_trials) - started
            log.info(
                "study %r in %s: %d of %d trials started; this process runs up to %d",
                spec.study_name,
                redact(str(cfg.storage)),
                started,
                spec.n_trials,
                max(remaining, 0),
            )
            if remaining > 0:
                study.optimize(
                    runner,
                    n_trials=remaining,
                    catch=catch,
                    # stop when other processes have filled the study
                    callbacks=[optuna.study.MaxTrialsCallback(spec.n_trials, states=_STARTED)],
                    gc_after_trial=True,
                )
            report_study(study, parent, out_dir, monitor)
    return study


def _loggable(cfg: DictConfig) -> DictConfig:
    safe = OmegaConf.to_container(cfg, resolve=True)
    safe["storage"] = redact(str(cfg.storage))
    return OmegaConf.create(safe)
