"""Run the benchmark's sections from the composed `conf/bench.yaml` and record what they measured."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from dfd.bench.ceiling import matmul_ceiling
from dfd.bench.crops import crops_index, find_crops, write_crops
from dfd.bench.end_to_end import bench_end_to_end
from dfd.bench.machine import describe_machine
from dfd.bench.model_step import StepSetup, bench_model, build_setup
from dfd.bench.pipeline import bench_pipeline
from dfd.bench.results import BenchResults, format_report
from dfd.bench.scale import bench_scale
from dfd.runtime.redact import redact

THROUGHPUT_SECTIONS = ("pipeline", "model", "end_to_end", "flops")
SECTIONS = (*THROUGHPUT_SECTIONS, "scale")


def check_sections(sections: list[str]) -> list[str]:
    """The requested sections in canonical order; unknown names or flops without model fail."""
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown or not sections:
        raise ValueError(
            f"sections={list(sections)}: unknown {unknown}; choose a non-empty subset of {list(SECTIONS)}"
        )
    if "flops" in sections and "model" not in sections:
        raise ValueError("sections: flops compares the model step with the ceiling; add model")
    return [s for s in SECTIONS if s in sections]


def train_augmentations(cfg: DictConfig) -> Mapping[str, object]:
    """The current pipeline's training augmentations from the config (the group's one reader)."""
    return instantiate(cfg.augment.train_augmentations)


def run_bench(cfg: DictConfig) -> BenchResults:
    """Run every configured section, print the report, log it if tracking is on, write bench.json."""
    sections = check_sections(list(cfg.sections))
    out_dir = Path(cfg.paths.output_dir)
    if cfg.threads is not None:
        # on a CPU shared with other jobs, fewer threads than cores can be much faster:
        # torch's OpenMP threads spin-wait for each other
        torch.set_num_threads(int(cfg.threads))
    throughput = [s for s in sections if s in THROUGHPUT_SECTIONS]
    # crops first: a wrong folder fails before any model is built
    needs_crops = bool({"pipeline", "end_to_end"} & set(sections))
    crop_paths, written = _crops(cfg, out_dir) if needs_crops else ([], False)
    try:
        if throughput:
            results = _measure(cfg, throughput, build_setup(cfg), crop_paths)
        else:
            results = BenchResults(machine=describe_machine(_device(cfg)), setup={})
        if "scale" in sections:
            # measured before the bench's own MLflow run starts: a stage logs a run of its own
            results.scale = bench_scale(cfg, out_dir / "scale")
        out_dir.mkdir(parents=True, exist_ok=True)
        record = out_dir / "bench.json"
        record.write_text(json.dumps(results.as_dict(), indent=2))
        print(format_report(results))
        print(f"\nwritten {record}")
        tracker = instantiate(cfg.tracking)
        with tracker.run(cfg):
            tracker.log_params({f"machine/{k}": v for k, v in results.machine.items()})
            tracker.log_metrics(results.metrics())
            tracker.log_artifact(record)
            if tracker.run_id:
                print(f"MLflow run {tracker.run_id} in {redact(cfg.tracking.uri)}")
    finally:
        shutil.rmtree(out_dir / "frame_stores", ignore_errors=True)
        if written and not cfg.crops.keep:
            shutil.rmtree(out_dir / "crops", ignore_errors=True)
    return results


def _device(cfg: DictConfig) -> torch.device:
    """The device the sections run on: CPU when asked or when torch sees no accelerator."""
    if cfg.cpu or not torch.accelerator.is_available():
        return torch.device("cpu")
    return torch.accelerator.current_accelerator()


def _crops(cfg: DictConfig, out_dir: Path) -> tuple[list[Path], bool]:
    """The crops to read: the configured folder's, or crops written for this run."""
    c = cfg.crops
    if c.folder:
        return find_crops(Path(c.folder).expanduser(), c.count), False
    if not c.count:
        raise ValueError("crops.count must be a positive number when crops.folder is null")
    return write_crops(out_dir / "crops", int(c.count), int(c.size), cfg.seed), True


def _measure(
    cfg: DictConfig, sections: list[str], setup: StepSetup, crop_paths: list[Path]
) -> BenchResults:
    device = setup.device
    out_dir = Path(cfg.paths.output_dir)
    spec = setup.input_spec
    if cfg.pipeline.size:
        # ViT-L's geometry at that size: the shortest edge to it, then the centre square
        side = int(cfg.pipeline.size)
        spec = dataclasses.replace(spec, size=(side, side), resize_to=side)
    results = BenchResults(
        machine=describe_machine(device),
        setup={
            "backbone": cfg.backbone.name,
            "pretrained": cfg.backbone.pretrained,
            "peft": cfg.peft._target_.rsplit(".", 1)[-1]
            + (f"({cfg.peft.config._target_.rsplit('.', 1)[-1]})" if "config" in cfg.peft else ""),
            "trainable_params": setup.trainable_params,
            "total_params": setup.total_params,
            "precision": cfg.precision,
            "batch_size": cfg.batch_size,
            "eval_batch_size": cfg.eval_batch_size,
            "workers": cfg.workers,
            "steps": cfg.steps,
            "repeats": cfg.repeats,
            "model_input": "x".join(map(str, setup.input_spec.size)),
            "pipeline_input": "x".join(map(str, spec.size)),
            "pipeline_images": cfg.pipeline.images,
            "crops": f"{len(crop_paths)} from {cfg.crops.folder}"
            if cfg.crops.folder
            else f"{len(crop_paths)} written, {cfg.crops.size}x{cfg.crops.size}",
            "crop_kb_mean": round(
                sum(p.stat().st_size for p in crop_paths) / len(crop_paths) / 1024, 1
            ),
        },
    )
    augmentations = train_augmentations(cfg)
    if "pipeline" in sections:
        results.pipeline = bench_pipeline(
            crops_index(crop_paths),
            spec,
            augmentations,
            cfg.pipeline.images,
            cfg.repeats,
            cfg.warmup,
            store_folder=out_dir / "frame_stores" if cfg.store.pipeline else None,
        )
    if "model" in sections:
        results.model, flops = bench_model(
            setup, cfg.batch_size, cfg.eval_batch_size, cfg.steps, cfg.repeats, cfg.warmup
        )
        if "flops" in sections:
            results.flops = flops
    if "end_to_end" in sections:
        results.end_to_end = bench_end_to_end(
            setup,
            crop_paths,
            augmentations,
            cfg.batch_size,
            cfg.workers,
            cfg.steps,
            cfg.repeats,
            cfg.warmup,
            cfg.seed,
            store_folder=out_dir / "frame_stores" if cfg.store.end_to_end else None,
            eval_batch_size=cfg.eval_batch_size,
        )
    if "flops" in sections:
        kind = device.type if device.type in cfg.ceiling.dtype else "cpu"
        results.ceiling = matmul_ceiling(
            device,
            getattr(torch, cfg.ceiling.dtype[kind]),
            int(cfg.ceiling.size[kind]),
            int(cfg.ceiling.iters[kind]),
            cfg.repeats,
            warmup=max(cfg.warmup, 1),
        )
    if "flops" in sections and device.type != "cuda":
        results.notes.append(
            "no CUDA device: the ceiling is the CPU's fp32 matmul rate; a GPU run measures bf16"
        )
    if "pipeline" in sections:
        results.notes.append(
            "pipeline 'new' is dfd.data.frames as it stands on this branch; 'old' is "
            "dfd.bench.baseline (the pipeline at commit 6efe3b0)"
            + (
                "; 'frame store' is 'new' reading a pre-decoded store (data/store=all) "
                "instead of decoding the PNGs"
                if cfg.store.pipeline
                else ""
            )
        )
    if "end_to_end" in sections and cfg.store.end_to_end:
        results.notes.append("end to end read a pre-decoded frame store (store.end_to_end=true)")
    return results
