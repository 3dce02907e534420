"""Entry point: `python -m dfd.evaluate checkpoint=<folder>` scores a trained detector on targets.

Runs as one process or under `accelerate launch` / `torchrun`; every frame is scored once
whatever the number of processes, so the metrics do not depend on it.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

import dfd.config  # noqa: F401  (registers the config resolvers)
from dfd.build import load_targets
from dfd.data.frames import FrameTransform
from dfd.engine.accelerator import make_accelerator
from dfd.engine.checkpoint import load_detector
from dfd.engine.targets import evaluate_targets
from dfd.results import results_summary, write_metrics


def evaluate_checkpoint(cfg: DictConfig) -> dict[str, dict[str, float]]:
    """Rebuild the checkpoint's detector, load its trainable tensors, evaluate every target."""
    folder = Path(cfg.checkpoint).expanduser()
    accelerator = make_accelerator(cfg.precision, cpu=cfg.cpu)
    model, train_cfg = load_detector(folder, cfg.paths.output_dir)
    data_cfg = cfg.data if cfg.get("data") else train_cfg.data
    with accelerator.main_process_first():
        targets = load_targets(data_cfg)

    tracker = instantiate(cfg.tracking)
    run_cfg = OmegaConf.create(
        {"checkpoint": str(folder.resolve()), "trained": train_cfg, "data": data_cfg}
    )
    with tracker.run(run_cfg, active=accelerator.is_main_process):
        model = accelerator.prepare(model)
        results = evaluate_targets(
            model,
            targets,
            FrameTransform(accelerator.unwrap_model(model).backbone.input_spec),
            accelerator,
            tracker,
            cfg.eval_batch_size,
            cfg.num_workers,
            Path(cfg.paths.output_dir) / "plots",
        )
        if accelerator.is_main_process:
            write_metrics(Path(cfg.paths.output_dir) / "metrics.json", {"test": results})
            print(results_summary(results))
    accelerator.end_training()
    return results


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> float:
    with open_dict(cfg):
        cfg.checkpoint = str(Path(cfg.checkpoint).expanduser().resolve())
    return evaluate_checkpoint(cfg)["mean"]["video_auc"]


if __name__ == "__main__":
    main()
