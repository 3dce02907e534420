"""The stages of a real run, one function each, for the scale benchmark (`dfd.bench.scale`).

Each stage reads one size's folder (its data, the composed training config `config.yaml`,
what earlier stages left there), does its setup untimed, and times exactly the code that
`dfd.train`, `dfd.evaluate` and `dfd.report` run for that step inside a `Probe`: the index
readers, the frame store, the trainer's epoch and validation, `score_targets`, the parquet
files, the plots, the MLflow callback, the report, a robustness pass. A stage returns the
probe's record (seconds, peak RSS, the RSS it grew by) with a few counts.

Files of a size folder: ``data/`` (the benchmark), ``cache/`` (indexes, frame stores),
``run/`` (what a run writes: checkpoint, predictions, plots, results), ``weights.safetensors``
(the trained epoch's tensors), ``scratch/`` (what the file stages write again),
``mlflow.db``, ``report/``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch
from accelerate.utils import set_seed
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import load_file

from dfd.bench.memory import MIB, Probe
from dfd.data.frames import FrameTransform
from dfd.data.loading import source_loaders
from dfd.data.perturb import PerturbedTransform
from dfd.data.splits import load_splits, load_targets
from dfd.data.store import StoreOptions, store_for
from dfd.engine.accelerator import make_accelerator
from dfd.engine.callbacks import CallbackList, RunState
from dfd.engine.checkpoint import (
    atomic_save_tensors,
    load_trainable,
    save_checkpoint,
    trainable_state,
)
from dfd.engine.task import DetectionTask
from dfd.engine.trainer import Trainer
from dfd.models.build import build_detector
from dfd.report.compare import write_report
from dfd.report.plots import plot_results
from dfd.report.results import PredictionWriter, write_metrics
from dfd.scoring.robustness import build_perturbations, score_pass
from dfd.scoring.targets import TargetScoring, score_targets, target_loader
from dfd.tracking.callback import MLflowCallback
from dfd.tracking.tracker import prepare_experiment

CONFIG, OPTIONS, REPORT = "config.yaml", "options.yaml", "report.yaml"
WEIGHTS = "weights.safetensors"


@dataclass(frozen=True)
class Stage:
    """One row of the scale table: its label, metric key, function and what it needs.

    `needs` names a module the stage runs (a command not every branch has): without it the
    stage is reported as skipped, with the reason.
    """

    label: str
    key: str
    run: Callable[[Path], dict[str, Any]]
    needs: str | None = None


# ---- setup shared by the stages (untimed) ------------------------------------------------


def _config(folder: Path) -> DictConfig:
    cfg = OmegaConf.load(folder / CONFIG)
    options = OmegaConf.load(folder / OPTIONS)
    if options.threads is not None:
        torch.set_num_threads(int(options.threads))
    set_seed(cfg.seed)
    return cfg


def _options(folder: Path) -> DictConfig:
    return OmegaConf.load(folder / OPTIONS)


def _accelerator(cfg: DictConfig):
    return make_accelerator(cfg.trainer.precision, 1, cfg.trainer.cpu)


def _trainer(folder: Path, cfg: DictConfig, trained: bool) -> tuple[Trainer, Any]:
    """The trainer `dfd.train` prepares (its loaders read the stores `data.store` names)."""
    accelerator = _accelerator(cfg)
    splits = load_splits(cfg.data)
    model, objective = build_detector(cfg)
    if trained:
        load_trainable(model, load_file(folder / WEIGHTS), source=str(folder / WEIGHTS))
    spec = model.backbone.input_spec
    train_tf = FrameTransform(spec, instantiate(cfg.augment.train_augmentations))
    train_loader, val_loader = source_loaders(cfg, splits, train_tf, FrameTransform(spec))
    run = RunState(cfg=cfg, output_dir=folder / "run", monitor=cfg.trainer.monitor)
    task = DetectionTask(model, objective)
    trainer = Trainer.prepare(accelerator, task, train_loader, val_loader, CallbackList([]), run)
    return trainer, splits


@dataclass
class _Scorer:
    """What `dfd.evaluate` holds before scoring: targets, the task with trained weights."""

    accelerator: Any
    targets: dict
    task: DetectionTask
    transform: FrameTransform
    setup: TargetScoring


def _scorer(folder: Path, cfg: DictConfig, store_folder: Path | None, fresh: bool) -> _Scorer:
    accelerator = _accelerator(cfg)
    targets = load_targets(cfg.data)
    model, _ = build_detector(cfg)
    load_trainable(model, load_file(folder / WEIGHTS), source=str(folder / WEIGHTS))
    task = DetectionTask(model, objective=None).to(accelerator.device)
    setup = TargetScoring.of_run(cfg)
    if store_folder is None:
        setup = dataclasses.replace(setup, store=None)
    elif setup.store is not None:
        if fresh:
            shutil.rmtree(store_folder, ignore_errors=True)
        setup = dataclasses.replace(
            setup, store=dataclasses.replace(setup.store, folder=store_folder)
        )
    return _Scorer(accelerator, targets, task, FrameTransform(model.backbone.input_spec), setup)


def _frames(targets: dict) -> int:
    return sum(len(index) for index in targets.values())


# ---- the stages -------------------------------------------------------------------------


def index_cold(folder: Path) -> dict[str, Any]:
    """Every reader's index built from the files (the index cache emptied first)."""
    cfg = _config(folder)
    shutil.rmtree(Path(cfg.paths.cache_dir) / "index", ignore_errors=True)
    probe = Probe()
    with probe:
        splits = load_splits(cfg.data)
    return {**probe.record(), "frames": sum(len(i) for _, i in splits.by_role())}


def index_cached(folder: Path) -> dict[str, Any]:
    """Every index loaded back from the index cache (what every later run does)."""
    cfg = _config(folder)
    probe = Probe()
    with probe:
        splits = load_splits(cfg.data)
    return {**probe.record(), "frames": sum(len(i) for _, i in splits.by_role())}


def store_build(folder: Path) -> dict[str, Any]:
    """The frame stores of the validation set and every target, built from scratch."""
    cfg = _config(folder)
    splits = load_splits(cfg.data)
    spec = build_detector(cfg)[0].backbone.input_spec
    transform = FrameTransform(spec)
    options = StoreOptions.from_config(cfg.data.get("store"))
    if options is None:
        raise ValueError("the scale benchmark's run stores no set: give it a data/store option")
    shutil.rmtree(options.folder, ignore_errors=True)
    sets = [("val", splits.val), *(("test", index) for index in splits.test.values())]
    probe = Probe()
    with probe:
        stores = [store_for(role, index, transform, options) for role, index in sets]
    stored = [index for (_, index), store in zip(sets, stores, strict=True) if store is not None]
    return {**probe.record(), "frames": sum(len(i) for i in stored)}


def train_epoch(folder: Path) -> dict[str, Any]:
    """One training epoch (`Trainer`'s loop over the training loader); its weights are kept."""
    cfg = _config(folder)
    trainer, splits = _trainer(folder, cfg, trained=False)
    probe = Probe()
    with probe:
        trainer._train_epoch()
    atomic_save_tensors(folder / WEIGHTS, trainable_state(trainer.detector))
    return {**probe.record(), "frames": len(splits.train)}


def validation(folder: Path) -> dict[str, Any]:
    """One source validation (`Trainer`'s selection pass) with the trained weights."""
    cfg = _config(folder)
    trainer, splits = _trainer(folder, cfg, trained=True)
    probe = Probe()
    with probe:
        trainer._validate()
    return {**probe.record(), "frames": len(splits.val)}


def score_first(folder: Path) -> dict[str, Any]:
    """Every target scored the first time: its frame stores built (data.store), then read."""
    cfg = _config(folder)
    s = _scorer(folder, cfg, folder / "cache" / "frames-first", fresh=True)
    probe = Probe()
    with probe:
        score_targets(s.task, s.targets, s.transform, s.accelerator, s.setup)
    return {**probe.record(), "frames": _frames(s.targets)}


def score_warm(folder: Path) -> dict[str, Any]:
    """Every target scored again, its stores already built: what a second evaluation costs.
    As in `dfd.train`, each target's predictions are written to ``run/predictions`` as soon
    as it is scored; the metrics go to ``run/metrics.json`` for the reporting stages."""
    cfg = _config(folder)
    s = _scorer(folder, cfg, Path(cfg.data.store.folder), fresh=False)
    writer = PredictionWriter(folder / "run" / "predictions")
    probe = Probe()
    with probe:
        results, _, _ = score_targets(
            s.task, s.targets, s.transform, s.accelerator, s.setup, writer
        )
    write_metrics(folder / "run" / "metrics.json", results)
    return {**probe.record(), "frames": _frames(s.targets)}


def score_decoding(folder: Path) -> dict[str, Any]:
    """Every target scored from its PNG files (data/store=none): the cost without a store."""
    cfg = _config(folder)
    s = _scorer(folder, cfg, None, fresh=False)
    probe = Probe()
    with probe:
        score_targets(s.task, s.targets, s.transform, s.accelerator, s.setup)
    return {**probe.record(), "frames": _frames(s.targets)}


def _load_targets(s: _Scorer) -> None:
    for index in s.targets.values():
        for _ in target_loader(index, s.transform, s.accelerator, s.setup):
            pass


def load_decoding(folder: Path) -> dict[str, Any]:
    """Every target's frames loaded from the PNG files, batch by batch, without the model: the
    share of an evaluation that a faster device does not shorten."""
    cfg = _config(folder)
    s = _scorer(folder, cfg, None, fresh=False)
    probe = Probe()
    with probe:
        _load_targets(s)
    return {**probe.record(), "frames": _frames(s.targets)}


def load_warm(folder: Path) -> dict[str, Any]:
    """Every target's frames loaded from its frame store, batch by batch, without the model."""
    cfg = _config(folder)
    s = _scorer(folder, cfg, Path(cfg.data.store.folder), fresh=False)
    probe = Probe()
    with probe:
        _load_targets(s)
    return {**probe.record(), "frames": _frames(s.targets)}


def _predictions(folder: Path) -> dict[str, Path]:
    """The per-frame predictions files the scoring stage wrote, as a run's `run.predictions`."""
    return {p.stem: p for p in sorted((folder / "run" / "predictions").glob("*.parquet"))}


def predictions_io(folder: Path) -> dict[str, Any]:
    """The targets' per-frame tables written as parquet (`PredictionWriter`) and read back."""
    _config(folder)
    tables = {name: pq.read_table(path) for name, path in _predictions(folder).items()}
    writer = PredictionWriter(folder / "scratch" / "predictions")
    probe = Probe()
    with probe:
        paths = [writer(name, table) for name, table in tables.items()]
        rows = sum(pq.read_table(p).num_rows for p in paths)
    return {**probe.record(), "frames": rows}


def plots(folder: Path) -> dict[str, Any]:
    """The run's target plots (ROC curves, score histograms) from its predictions files."""
    cfg = _config(folder)
    predictions = _predictions(folder)
    results = json.loads((folder / "run" / "metrics.json").read_text())
    probe = Probe()
    with probe:
        plot_results(predictions, results, folder / "scratch" / "plots", cfg.eval.aggregate)
    return {
        **probe.record(),
        "frames": sum(pq.read_metadata(p).num_rows for p in predictions.values()),
    }


def mlflow_logging(folder: Path) -> dict[str, Any]:
    """What the MLflow callback sends at the end of a run: params, metrics, the results
    table, plots, predictions and the checkpoint, into the size's sqlite store."""
    cfg = _config(folder)
    prepare_experiment(cfg.tracking.uri, cfg.tracking.experiment)  # the store's schema: once
    splits = load_splits(cfg.data)
    results = json.loads((folder / "run" / "metrics.json").read_text())
    run_dir = folder / "run"
    weights = load_file(folder / WEIGHTS)
    save_checkpoint(run_dir / "checkpoint", weights, cfg, [], {"epoch": 1})
    run = RunState(
        cfg=cfg,
        output_dir=run_dir,
        monitor=cfg.trainer.monitor,
        params=splits.params(warn=False),
        extra={"overrides": []},
    )
    run.predictions = _predictions(folder)
    callback = MLflowCallback(instantiate(cfg.tracking))
    probe = Probe()
    with probe:
        callback.on_fit_start(run)
        callback.on_test_end(run, results)
        callback.teardown(run)
    return {**probe.record(), "frames": _frames(splits.test)}


def report(folder: Path) -> dict[str, Any]:
    """`python -m dfd.report` on the size's MLflow store (its config in report.yaml)."""
    _config(folder)
    cfg = OmegaConf.load(folder / REPORT)
    probe = Probe()
    with probe:
        table, _ = write_report(cfg)
    return {**probe.record(), "frames": len(table.rows)}


def _robustness_pass(folder: Path, severity: int) -> dict[str, Any]:
    cfg = _config(folder)
    options = _options(folder)
    name = str(options.robustness.perturbation)
    perturbation = build_perturbations(options.robustness.grid)[name][severity - 1]
    s = _scorer(folder, cfg, folder / "cache" / "frames-robustness", fresh=severity == 1)
    transform = PerturbedTransform(s.transform, perturbation)
    probe = Probe()
    with probe:
        score_pass(s.task, s.targets, transform, s.accelerator, s.setup, f"{name} {severity}")
    return {**probe.record(), "frames": _frames(s.targets), "level": perturbation.describe()}


def robustness_first(folder: Path) -> dict[str, Any]:
    """The first robustness pass over every target (one perturbation at one severity)."""
    return _robustness_pass(folder, 1)


def robustness_second(folder: Path) -> dict[str, Any]:
    """The next severity's pass: every pass after the first."""
    return _robustness_pass(folder, 2)


def datasets_doctor(folder: Path) -> dict[str, Any]:
    """`python -m dfd.datasets data=<the run's protocol> paths.data_dir=<the size's data>`, as
    a command of its own: its wall time and its process's peak RSS (imports included)."""
    cfg = _config(folder)
    command = [
        sys.executable,
        "-m",
        "dfd.datasets",
        *_options(folder).data_overrides,  # the protocol the run reads
        f"paths.data_dir={cfg.paths.data_dir}",
        f"paths.cache_dir={cfg.paths.cache_dir}",
    ]
    log = folder / "stages" / "datasets.command.log"
    with open(log, "w") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}: see {log}")
    peak = usage.ru_maxrss * 1024
    return {
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": peak / MIB,
        "growth_mib": float("nan"),
        "anon_growth_mib": float("nan"),
        "start_rss_mib": float("nan"),
        "method": "ru_maxrss of the command's own process",
    }


# The table's rows, in the order a run meets them. A stage is one line here (and a function).
STAGES: tuple[Stage, ...] = (
    Stage("index build (cold)", "index_cold", index_cold),
    Stage("index load (cached)", "index_cached", index_cached),
    Stage("frame store build (val + targets)", "store_build", store_build),
    Stage("train epoch", "train_epoch", train_epoch),
    Stage("validation", "validation", validation),
    Stage("score targets, 1st (store built)", "score_first", score_first),
    Stage("score targets, 2nd (store warm)", "score_warm", score_warm),
    Stage("score targets, decoding (no store)", "score_decoding", score_decoding),
    Stage("target frames loaded, decoding (no model)", "load_decoding", load_decoding),
    Stage("target frames loaded, store warm (no model)", "load_warm", load_warm),
    Stage("predictions write + read back", "predictions_io", predictions_io),
    Stage("plots", "plots", plots),
    Stage("MLflow logging", "mlflow_logging", mlflow_logging),
    Stage("dfd.report", "report", report),
    Stage("robustness pass 1", "robustness_1", robustness_first),
    Stage("robustness pass 2", "robustness_2", robustness_second),
    Stage("dfd.datasets", "datasets", datasets_doctor, needs="dfd.datasets"),
)
BY_KEY = {stage.key: stage for stage in STAGES}


def run_stage(key: str, folder: Path) -> dict[str, Any]:
    """Run the stage named `key` on a size folder in this process; its record."""
    return BY_KEY[key].run(Path(folder))
