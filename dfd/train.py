"""Entry point: `python -m dfd.train [overrides]` trains a detector and evaluates it cross-dataset.

Runs as one process or under `accelerate launch` / `torchrun`. See conf/train.yaml.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from accelerate.utils import gather_object, set_seed
from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm.auto import tqdm

import dfd.config  # noqa: F401  (registers the config resolvers)
from dfd.build import build_detector, load_splits
from dfd.cli import entry_point
from dfd.data.frames import FrameTransform
from dfd.data.loading import make_loader
from dfd.data.provenance import dataset_provenance, pipeline_mismatch
from dfd.data.store import StoreOptions, store_for
from dfd.engine.accelerator import finish, make_accelerator
from dfd.engine.callbacks import Callback, CallbackList, EarlyStopping, Results, RunState, watched
from dfd.engine.checkpoint import load_trainable
from dfd.engine.optim import build_optimizer
from dfd.engine.resume import check_same_config, find_resumable, read_resume_state
from dfd.engine.saving import BestCheckpoint, ResumeStateWriter
from dfd.engine.targets import score_targets
from dfd.engine.task import DetectionTask
from dfd.engine.trainer import Trainer
from dfd.models.adapters import count_parameters
from dfd.results import results_summary, write_metrics, write_predictions
from dfd.tracking import MLflowCallback


def train(cfg: DictConfig, callbacks: Sequence[Callback] = ()) -> Results:
    """Train on the source domain, select on its validation split, evaluate every target.

    Returns ``{"best_epoch": int, "val": metrics of the selected epoch on the source
    validation split, "test": {target: metrics}, "mean": mean metrics over the targets}``
    (the same shape as ``metrics.json``). Model selection and sweeps use ``val``; ``test``
    is for reporting only. `callbacks` run after dfd's own (tracking, checkpoint, resume).
    """
    t = cfg.trainer
    accelerator = make_accelerator(t.precision, t.grad_accum_steps, t.cpu)
    set_seed(cfg.seed)
    torch.set_float32_matmul_precision(t.matmul_precision)
    resume = _resume_state(cfg)
    out_dir = resume.run_dir if resume else Path(cfg.paths.output_dir)

    # data first: a wrong data root fails before any weights load
    with accelerator.main_process_first():
        splits = load_splits(cfg.data)
    _print_data(splits, accelerator)
    model, objective = build_detector(cfg)
    trainable, total = count_parameters(model)
    overrides = _overrides(cfg)

    run = RunState(
        cfg=cfg,
        output_dir=out_dir,
        is_main_process=accelerator.is_main_process,
        monitor=t.monitor,
        run_id=resume.info["run_id"] if resume else None,
        resumed=resume is not None,
        extra={"overrides": overrides},
        params={
            "trainable_params": trainable,
            "total_params": total,
            **_data_params(splits, _provenance(splits, accelerator)),
        },
    )
    cbs = CallbackList(
        [
            MLflowCallback(instantiate(cfg.tracking)),
            BestCheckpoint(out_dir / "checkpoint", overrides),
            ResumeStateWriter(out_dir, accelerator, t.resume_every_steps),
            *([EarlyStopping(t.early_stop_patience)] if t.early_stop_patience else []),
            *callbacks,
        ]
    )
    with watched(cbs, run):
        spec = model.backbone.input_spec
        train_tf = FrameTransform(spec, instantiate(cfg.augment.train_augmentations))
        eval_tf = FrameTransform(spec)
        task = DetectionTask(model, objective)
        optimizer = build_optimizer(task, instantiate(t.optimizer), t.weight_decay, t.no_decay)
        on_error = cfg.data.get("on_error", "raise")
        store = StoreOptions.from_config(cfg.data.get("store"))
        # every process asks for its stores: the first to take a store's file lock builds it,
        # the others wait on the lock (no collective, so no NCCL timeout however long it takes)
        stores = {
            role: store_for(role, index, tf, store, t.num_workers)
            for role, index, tf in (("train", splits.train, train_tf), ("val", splits.val, eval_tf))
        }
        train_loader = make_loader(
            splits.train,
            train_tf,
            t.batch_size,
            t.num_workers,
            True,
            cfg.seed,
            on_error=on_error,
            sampler=cfg.data.get("sampler"),
            frames=stores["train"],
        )
        val_loader = make_loader(
            splits.val,
            eval_tf,
            t.eval_batch_size,
            t.num_workers,
            False,
            cfg.seed,
            on_error=on_error,
            frames=stores["val"],
        )
        if t.compile:
            task = torch.compile(task)
        task, optimizer, prepared_train, prepared_val = accelerator.prepare(
            task, optimizer, train_loader, val_loader
        )
        total_steps = _total_steps(t, len(prepared_train), accelerator.gradient_accumulation_steps)
        # stepped once per optimizer step, here rather than by Accelerate, whose prepared
        # scheduler advances num_processes times per step
        scheduler = instantiate(t.scheduler)(optimizer, T_max=max(total_steps, 1))
        if accelerator.is_main_process:
            tqdm.write(f"trainable parameters: {trainable:,} of {total:,}")
        trainer = Trainer(
            accelerator=accelerator,
            task=task,
            optimizer=optimizer,
            scheduler=scheduler,
            train_loader=prepared_train,
            epoch_loader=train_loader,
            val_loader=prepared_val,
            max_epochs=t.max_epochs,
            total_steps=total_steps,
            callbacks=cbs,
            run=run,
            log_every_steps=t.log_every_steps,
            aggregate=cfg.eval.aggregate,
        )
        run.snapshot = trainer.snapshot
        cbs.on_fit_start(run)
        trainer.fit(resume)

        load_trainable(
            trainer.detector, trainer.best_state, source=f"epoch {run.best_epoch} weights"
        )
        scored, predictions, lost = score_targets(
            task,
            splits.test,
            eval_tf,
            accelerator,
            t.eval_batch_size,
            t.num_workers,
            on_error,
            cfg.eval.aggregate,
            store=store,
        )
        results: Results = {"best_epoch": run.best_epoch, "val": run.best_val, **scored}
        run.predictions = predictions
        run.extra["unreadable"] = {
            "train": len(set().union(*gather_object([trainer.unreadable["train"]]))),
            "val": len(trainer.unreadable["val"]),
            **lost,
        }
        if accelerator.is_main_process:
            write_metrics(out_dir / "metrics.json", results)
            write_predictions(out_dir / "predictions", predictions)
            _print_results(run, results)
        cbs.on_test_end(run, results)
    # release the DDP-wrapped task while the process group lives: a DDP Reducer destroyed
    # after the group was torn down can hang in gloo's destructor
    run.snapshot = None
    del trainer, task
    finish(accelerator)
    return results


def _total_steps(t: DictConfig, batches_per_epoch: int, accumulation: int) -> int:
    total = t.max_epochs * math.ceil(batches_per_epoch / accumulation)
    return min(total, t.max_steps) if t.max_steps is not None else total


def _resume_state(cfg: DictConfig):
    """The interrupted run that `trainer.resume` names (a folder, or `auto`), or None."""
    target = cfg.trainer.get("resume")
    if not target:
        return None
    if str(target) == "auto":
        found = find_resumable(Path(cfg.paths.output_root), cfg)
        if found is None:
            print("trainer.resume=auto: no unfinished run with this config; starting a new run")
            return None
        target = found
    run_dir = Path(str(target)).expanduser().resolve()
    if run_dir.name == "resume":
        run_dir = run_dir.parent
    state = read_resume_state(run_dir)
    check_same_config(state.info, cfg, run_dir)
    print(f"resuming {run_dir} after epoch {state.info['epoch']}, step {state.info['step']}")
    return state


def _overrides(cfg: DictConfig) -> list[str]:
    """The overrides the run was composed from: the command line's under Hydra's app, else
    those a sweep recorded in the `dfd.overrides` tag (empty when unknown)."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return list(HydraConfig.get().overrides.task)
    return str((cfg.tracking.get("tags") or {}).get("dfd.overrides", "")).split()


def _data_params(splits, provenance) -> dict[str, int | str]:
    params = {}
    for role, index in splits.by_role():
        params[f"data/{role}/frames"] = len(index)
        params[f"data/{role}/videos"] = len(set(index.video_ids))
        for reason, n in index.skipped.items():
            params[f"data/{role}/skipped/{reason}"] = n
        for key, value in provenance[role].items():
            params[f"data/{role}/preprocess/{key}"] = value
    return params


def _provenance(splits, accelerator) -> dict[str, dict[str, str]]:
    """Per dataset: the face pipeline behind its crops and the frames per video used."""
    provenance = {role: dataset_provenance(index) for role, index in splits.by_role()}
    if accelerator.is_main_process:
        for warning in pipeline_mismatch(provenance):
            warnings.warn(warning, stacklevel=2)
    return provenance


def _print_data(splits, accelerator) -> None:
    if not accelerator.is_main_process:
        return
    for role, index in splits.by_role():
        tqdm.write(f"{role:>8}: {index.summary()}")
        for reason, count in index.skipped.items():
            tqdm.write(f"{'':>8}  skipped {count} ({reason})")


def _print_results(run: RunState, results: Results) -> None:
    value = run.best_val.get(run.monitor, float("nan"))
    print(f"\nselected epoch {run.best_epoch} (val {run.monitor} {value:.4f})")
    print(results_summary(results))
    lost = {k: v for k, v in run.extra.get("unreadable", {}).items() if v}
    if lost:
        print("unreadable frames skipped: " + ", ".join(f"{k} {v}" for k, v in lost.items()))
    if run.run_id:
        print(f"MLflow run {run.run_id} in {run.cfg.tracking.uri}")


@entry_point("train")
def main(cfg: DictConfig) -> float:
    # the source-validation metric: what a Hydra sweeper may optimize without seeing targets
    return train(cfg)["val"][cfg.trainer.monitor]


if __name__ == "__main__":
    main()
