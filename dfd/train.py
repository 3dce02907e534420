"""Entry point: `python -m dfd.train [overrides]` trains a detector and evaluates it cross-dataset.

Runs as one process or under `accelerate launch` / `torchrun`. See conf/train.yaml.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm.auto import tqdm

from dfd.data.frames import FrameTransform
from dfd.data.loading import source_loaders
from dfd.data.splits import load_splits
from dfd.engine.accelerator import finish, start_training_process
from dfd.engine.callbacks import Callback, CallbackList, Results, RunState, watched
from dfd.engine.resume import resume_from_config
from dfd.engine.saving import run_files
from dfd.engine.task import DetectionTask
from dfd.engine.trainer import Trainer
from dfd.models.adapters import count_parameters
from dfd.models.build import build_detector
from dfd.report.results import PredictionWriter, print_run_results, write_metrics
from dfd.runtime.cli import entry_point
from dfd.runtime.protocol import protocol_record, selection_rule
from dfd.scoring.metrics import val_eer_thresholds
from dfd.scoring.targets import TargetScoring, score_targets
from dfd.tracking.callback import MLflowCallback
from dfd.tracking.logged_model import LoggedModelCallback


def train(cfg: DictConfig, callbacks: Sequence[Callback] = ()) -> Results:
    """Train on the source domain, select on the selection set, evaluate every target.

    The selection set is the source validation split unless `cfg.selection` names another
    rule (`dfd.runtime.protocol`). Returns ``{"best_epoch", "val": the selected epoch's
    metrics on the selection set, "test": {target: metrics}, "mean" over the targets,
    "pooled": all targets' videos as one set, "protocol": data name and hash, selection
    rule}``, as ``metrics.json``. Sweeps optimize ``val``; ``test`` is for reporting only.
    `callbacks` run after dfd's own (tracking, checkpoint, resume).
    """
    accelerator, threads = start_training_process(cfg.trainer, cfg.seed)
    main_process = accelerator.is_main_process
    resume = resume_from_config(cfg)
    out_dir = resume.run_dir if resume else Path(cfg.paths.output_dir)
    tracker = instantiate(cfg.tracking)
    if main_process:
        tracker.check_reachable()  # a tracking server that does not answer fails in seconds

    # 1. data first: a wrong data root (or selection rule) fails before any weights load
    protocol = protocol_record(cfg)
    with accelerator.main_process_first():
        splits = load_splits(cfg.data, selection_rule(cfg))
    if main_process:
        tqdm.write(splits.summary())
    # 2. the detector: backbone with its PEFT adapter, head, objective
    model, objective = build_detector(cfg)
    trainable, total = count_parameters(model)
    params = {"trainable_params": trainable, "total_params": total}
    run = RunState.of_training(
        cfg, out_dir, main_process, resume, {**params, **splits.params(warn=main_process)}
    )
    # 3. what watches the run: tracking, the selected checkpoint, resume state, early stop,
    # and the selected detector as an MLflow model once the target metrics are logged
    cbs = CallbackList(
        [
            MLflowCallback(tracker),
            *run_files(out_dir, accelerator, cfg.trainer, run.extra["overrides"]),
            LoggedModelCallback(tracker, out_dir / "checkpoint"),
            *callbacks,
        ]
    )
    with watched(cbs, run):
        # 4. fit: train on the source, validate every epoch, keep the best epoch's weights
        spec = model.backbone.input_spec
        train_tf = FrameTransform(spec, instantiate(cfg.augment.train_augmentations))
        eval_tf = FrameTransform(spec)
        train_loader, val_loader = source_loaders(cfg, splits, train_tf, eval_tf)
        task = DetectionTask(model, objective)
        trainer = Trainer.prepare(accelerator, task, train_loader, val_loader, cbs, run)
        if main_process:
            tqdm.write(f"trainable parameters: {trainable:,} of {total:,}; threads: {threads}")
        cbs.on_fit_start(run)
        trainer.fit(resume)

        # 5. select: the epoch with the best metric on the selection set
        trainer.load_best()
        # 6. score every target with the selected weights; the selected epoch's EER
        # thresholds on the selection set transfer to every target, and each target's
        # per-frame predictions are written as soon as it is scored
        setup = TargetScoring.of_run(cfg, val_eer_thresholds(run.best_val))
        writer = PredictionWriter(out_dir / "predictions", enabled=main_process)
        scored, predictions, lost = score_targets(
            trainer.task, splits.test, eval_tf, accelerator, setup, writer
        )
        results: Results = {"best_epoch": run.best_epoch, "val": run.best_val, **scored}
        results["protocol"] = protocol
        run.predictions = predictions
        run.extra["unreadable"] = {**trainer.unreadable_counts(), **lost}
        # 7. write the results: metrics.json, the table
        if main_process:
            write_metrics(out_dir / "metrics.json", results)
            print_run_results(run, results)
        cbs.on_test_end(run, results)
    # release the DDP-wrapped task while the process group lives: a DDP Reducer destroyed
    # after the group was torn down can hang in gloo's destructor
    run.snapshot = None
    del trainer, task
    finish(accelerator)
    return results


@entry_point("train")
def main(cfg: DictConfig) -> float:
    # the selection set's metric: what a Hydra sweeper may optimize (source val by default;
    # under selection=test_set a test target's, which dfd.sweep refuses to optimize)
    return train(cfg)["val"][cfg.trainer.monitor]


if __name__ == "__main__":
    main()
