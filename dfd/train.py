"""Entry point: `python -m dfd.train [overrides]` trains a detector and evaluates it cross-dataset.

Runs as one process or under `accelerate launch` / `torchrun`. See conf/train.yaml.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import torch
from accelerate.utils import set_seed
from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm.auto import tqdm

import dfd.config  # noqa: F401  (registers the config resolvers)
from dfd.build import build_detector, load_splits
from dfd.data.frames import FrameTransform
from dfd.data.loading import make_loader
from dfd.engine.accelerator import make_accelerator
from dfd.engine.checkpoint import load_trainable
from dfd.engine.optim import build_optimizer
from dfd.engine.targets import evaluate_targets
from dfd.engine.trainer import Trainer
from dfd.models.adapters import count_parameters
from dfd.results import results_summary, write_metrics


def train(cfg: DictConfig) -> dict:
    """Train on the source domain, select on its validation split, evaluate every target.

    Returns ``{"best_epoch": int, "val": metrics of the selected epoch on the source
    validation split, "test": {target: metrics}, "mean": mean AUCs over the targets}``.
    Model selection and sweeps use ``val``; ``test`` is for reporting only.
    """
    t = cfg.trainer
    accelerator = make_accelerator(t.precision, t.grad_accum_steps, t.cpu)
    set_seed(cfg.seed)
    torch.set_float32_matmul_precision(t.matmul_precision)
    model, objective = build_detector(cfg)
    trainable, total = count_parameters(model)
    tracker = instantiate(cfg.tracking)
    out_dir = Path(cfg.paths.output_dir)
    with tracker.run(cfg, active=accelerator.is_main_process):
        tracker.log_params({"trainable_params": trainable, "total_params": total})
        with accelerator.main_process_first():
            splits = load_splits(cfg.data)
        _report_data(splits, tracker, accelerator)

        spec = model.backbone.input_spec
        train_tf = FrameTransform(spec, instantiate(cfg.preprocess.train_augmentations))
        eval_tf = FrameTransform(spec)
        optimizer = build_optimizer(model, instantiate(t.optimizer), t.weight_decay, t.no_decay)
        train_loader = make_loader(
            splits.train, train_tf, t.batch_size, t.num_workers, True, cfg.seed
        )
        val_loader = make_loader(
            splits.val, eval_tf, t.eval_batch_size, t.num_workers, False, cfg.seed
        )
        model, optimizer, train_loader, val_loader = accelerator.prepare(
            model, optimizer, train_loader, val_loader
        )
        if accelerator.is_main_process:
            tqdm.write(f"trainable parameters: {trainable:,} of {total:,}")

        trainer = Trainer(
            accelerator,
            model,
            objective,
            optimizer,
            instantiate(t.scheduler),
            train_loader,
            val_loader,
            t.max_epochs,
            t.max_steps,
            t.monitor,
            tracker,
            out_dir / "checkpoint",
            cfg,
        )
        fit = trainer.fit()
        tracker.log_metrics(
            {"best_epoch": fit.best_epoch, **{f"best_val/{k}": v for k, v in fit.best_val.items()}}
        )
        load_trainable(
            accelerator.unwrap_model(model),
            fit.best_state,
            source=f"epoch {fit.best_epoch} weights",
        )

        results = evaluate_targets(
            model,
            splits.test,
            eval_tf,
            accelerator,
            tracker,
            t.eval_batch_size,
            t.num_workers,
            out_dir / "plots",
        )
        if accelerator.is_main_process:
            summary = {"best_epoch": fit.best_epoch, "val": fit.best_val, "test": results}
            write_metrics(out_dir / "metrics.json", summary)
            print(
                f"\nselected epoch {fit.best_epoch} (val {t.monitor} {fit.best_val[t.monitor]:.4f})"
            )
            print(results_summary(results))
            if tracker.run_id:
                print(f"MLflow run {tracker.run_id} in {cfg.tracking.uri}")
        tracker.log_artifact(out_dir / "checkpoint", "checkpoint")
    accelerator.end_training()
    mean = results.pop("mean")
    return {"best_epoch": fit.best_epoch, "val": fit.best_val, "test": results, "mean": mean}


def _report_data(splits, tracker, accelerator) -> None:
    for role, index in [("train", splits.train), ("val", splits.val), *splits.test.items()]:
        if accelerator.is_main_process:
            tqdm.write(f"{role:>8}: {index.summary()}")
            for reason, count in index.skipped.items():
                tqdm.write(f"{'':>8}  skipped {count} ({reason})")
        tracker.log_params(
            {f"data/{role}/frames": len(index), f"data/{role}/videos": len(set(index.video_ids))}
        )
        tracker.log_metrics(
            {f"data/{role}/skipped/{reason}": n for reason, n in index.skipped.items()}
        )


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    # the source-validation metric: what a Hydra sweeper may optimize without seeing targets
    return train(cfg)["val"][cfg.trainer.monitor]


if __name__ == "__main__":
    main()
