"""Entry point: `python -m dfd.evaluate checkpoint=<folder>` scores a trained detector on targets.

Runs as one process or under `accelerate launch` / `torchrun`; every frame is scored once
whatever the number of processes, so the metrics do not depend on it. The detector is
rebuilt from the folder's config only after every `_target_` in it was checked to be one
of dfd's own options (`dfd.engine.trusted_config`).
"""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

import dfd.runtime.config  # noqa: F401  (registers the config resolvers)
from dfd.data.frames import FrameTransform
from dfd.data.splits import load_targets
from dfd.data.store import FrameStoreError, StoreOptions
from dfd.engine.accelerator import finish, make_accelerator
from dfd.engine.callbacks import CallbackList, Results, RunState, watched
from dfd.engine.checkpoint import CONFIG
from dfd.engine.restore import (
    load_detector,
    provenance_tags,
    read_meta,
    released_name,
    selected_val_metrics,
)
from dfd.engine.task import DetectionTask
from dfd.engine.trusted_config import load_trusted_yaml
from dfd.report.results import (
    PredictionWriter,
    results_summary,
    write_metrics,
    write_robustness,
)
from dfd.runtime.cli import entry_point
from dfd.runtime.errors import config_flag
from dfd.runtime.protocol import data_hash, protocol_record, protocol_tags
from dfd.runtime.run_info import DEFAULT_NAME, SEPARATOR, command_overrides, run_name
from dfd.runtime.workers import set_torch_threads
from dfd.scoring.metrics import val_eer_thresholds
from dfd.scoring.robustness import build_perturbations, evaluate_robustness
from dfd.scoring.targets import TargetScoring, allow_nonfinite, score_targets
from dfd.tracking.callback import MLflowCallback
from dfd.tracking.logged_model import model_callbacks


def evaluate_checkpoint(cfg: DictConfig) -> Results:
    """Rebuild the checkpoint's detector, load its trainable tensors, evaluate every target.

    Returns ``{"test": {target: metrics}, "mean": {...}, "pooled": {...}, "protocol":
    {...}}``, also written to metrics.json. The protocol names the data scored (its name and
    hash) and how the checkpoint was selected (the training run's rule, carried with it: a
    checkpoint selected on a test target stays marked leaky wherever it is scored).
    """
    set_torch_threads(cfg.get("threads"), key="threads")
    folder = Path(cfg.checkpoint).expanduser()
    out_dir = Path(cfg.paths.output_dir)
    tracker = instantiate(cfg.tracking)
    tracker.check_reachable()  # a tracking server that does not answer fails in seconds
    # log_model=true: the checkpoint as an MLflow model of this run (checked before any work)
    logged_model = model_callbacks(tracker, folder, config_flag(cfg, "log_model"))
    model, train_cfg = load_detector(folder, out_dir)
    data_cfg = cfg.data if cfg.get("data") else train_cfg.data
    # scoring precision follows training unless set here
    precision = cfg.precision if cfg.get("precision") else train_cfg.trainer.precision
    accelerator = make_accelerator(precision, cpu=cfg.cpu)
    with accelerator.main_process_first():
        targets = load_targets(data_cfg)
    trained_aggregate = train_cfg.get("eval", {}).get("aggregate", "mean")
    aggregate = cfg.eval.aggregate or trained_aggregate
    thresholds = val_eer_thresholds(selected_val_metrics(folder))
    if aggregate != trained_aggregate:
        # the video threshold was found on videos scored another way: it does not transfer
        thresholds.pop("video", None)
    setup = TargetScoring(
        batch_size=cfg.eval_batch_size,
        num_workers=cfg.num_workers,
        on_error=data_cfg.get("on_error", "raise"),
        aggregate=aggregate,
        store=_store_options(cfg, data_cfg),
        allow_nonfinite=allow_nonfinite(cfg.eval),
        bootstrap=int(cfg.eval.get("bootstrap", 0) or 0),
        bootstrap_seed=int(cfg.eval.get("bootstrap_seed", 0) or 0),
        val_thresholds=thresholds,
    )

    protocol = evaluation_protocol(cfg, folder)
    run_cfg = OmegaConf.create(
        {
            "checkpoint": str(folder.resolve()),
            "precision": precision,
            "eval": {"aggregate": aggregate},
            "trained": train_cfg,
            # resolved here: `data=<option>` interpolates this command's paths, which the
            # run's own config (logged as params) does not carry
            "data": OmegaConf.to_container(data_cfg, resolve=True),
        }
    )
    run = RunState(cfg=run_cfg, output_dir=out_dir, is_main_process=accelerator.is_main_process)
    if tracker.run_name is None:
        tracker.run_name = evaluation_name(folder, command_overrides(cfg))
    tracker.tags.update(protocol_tags(protocol))
    cbs = CallbackList([MLflowCallback(tracker), *logged_model])
    with watched(cbs, run):
        cbs.on_fit_start(run)
        if tracker.enabled:  # a converted detector's source file, hash and preprocessing
            tracker.set_tags({"dfd.checkpoint": str(folder.resolve()), **provenance_tags(folder)})
        # scoring needs no DDP wrapper (no gradients to reduce): the model only moves to the
        # device, and no DDP Reducer outlives the process group at the end
        task = DetectionTask(model, objective=None).to(accelerator.device)
        transform = FrameTransform(model.backbone.input_spec)
        # each target's per-frame predictions are written as soon as it is scored
        writer = PredictionWriter(out_dir / "predictions", enabled=accelerator.is_main_process)
        results, predictions, lost = score_targets(
            task, targets, transform, accelerator, setup, writer
        )
        results["protocol"] = protocol
        run.predictions = predictions
        run.extra["unreadable"] = lost
        if accelerator.is_main_process:
            write_metrics(out_dir / "metrics.json", results)
            print(results_summary(results))
        cbs.on_test_end(run, results)
        if cfg.robustness.perturbations:
            perturbations = build_perturbations(cfg.robustness)
            # severity 0 is the clean evaluation above, not scored a second time
            robust = evaluate_robustness(
                task, targets, transform, accelerator, perturbations, setup, results["test"]
            )
            tracker.log_metrics(robust.metrics)
            if accelerator.is_main_process:
                print(robust.summary())
                tracker.log_artifact(write_robustness(robust, out_dir / "plots"), "plots")
    finish(accelerator)
    return results


# evaluate's keys that change how fast it runs or where it writes, never what it measures;
# and `comparison`, which every row of a comparison shares (its runs share one experiment)
_NOT_THE_EVALUATION = (
    "checkpoint",
    "num_workers",
    "eval_batch_size",
    "cpu",
    "threads",
    "store",
    "comparison",
)


def evaluation_name(folder: Path, overrides: list[str]) -> str:
    """The MLflow run name of an evaluation: ``evaluate · <checkpoint> · <what it changed>``.

    The checkpoint is a converted detector's name (``GenD pe_core_l14_336 (released)``),
    else its training run's folder (``<date>/<time>``) when it is a run's ``checkpoint/``,
    else the folder's name (``authors``); then every override that changes
    what is measured, as `dfd.runtime.run_info.run_name` names training runs, with group
    choices keyed (``robustness=deepfakebench · data=ff_cross · precision=bf16``).
    """
    folder = folder.resolve()
    where = released_name(folder) or (
        "/".join(folder.parts[-3:-1]) if folder.name == "checkpoint" else folder.name
    )
    keys = [o.lstrip("+~").split("=", 1)[0] for o in overrides]
    changed = [
        o
        for o, key in zip(overrides, keys, strict=True)
        if key.split(".", 1)[0] not in _NOT_THE_EVALUATION
    ]
    what = run_name(changed, max_chars=200, keyed_groups=True) if changed else DEFAULT_NAME
    return SEPARATOR.join(["evaluate", where] + ([] if what == DEFAULT_NAME else [what]))


def evaluation_protocol(cfg: DictConfig, folder: Path) -> dict:
    """The protocol record of an evaluation (`dfd.runtime.protocol.protocol_record`): the
    data config scored (evaluate's own `data`, else the checkpoint's, hashed as composed,
    before this machine's paths resolve it) and the checkpoint's selection rule. A checkpoint
    converted from another code base was selected by that code (its `meta.json` says on
    what): its rule is ``converted`` and whether it is leaky is unknown."""
    trained = load_trusted_yaml(folder / CONFIG)
    record = protocol_record(trained)
    if cfg.get("data"):
        record |= {"data": str(cfg.data.get("name", "unknown")), "data_hash": data_hash(cfg)}
    info = read_meta(folder)
    if "converted_from" in info:  # the authors' Lightning checkpoint names its val files
        sets = [f"val_files={(info.get('hyper_parameters') or {}).get('val_files')}"]
    elif "peer" in info:  # a released peer's weights (GenD, Effort, FSFM): selected by its authors
        sets = [f"as {info['peer']}'s release was selected"]
    else:
        return record
    record["selection"] = {"rule": "converted", "sets": sets, "leaky": None}
    return record


def _store_options(cfg: DictConfig, data_cfg: DictConfig) -> StoreOptions | None:
    """The targets' frame stores: in evaluate's `store.folder`, if evaluate's `store.roles`
    (else the data config's `data.store.roles`) names the test role; a store the disk cannot
    hold does what evaluate's `store.when_full` (else the data config's) says."""
    own = cfg.get("store") or {}
    data_store = data_cfg.get("store") or {}
    roles = own.get("roles")
    if roles is not None and set(roles) - {"test"}:
        raise FrameStoreError(
            f"store.roles={list(roles)}: dfd.evaluate scores only targets; use store.roles=[test] "
            f"(or [] for none)"
        )
    if roles is None:
        roles = data_store.get("roles") or []
    if "test" not in roles:
        return None
    when_full = own.get("when_full") or data_store.get("when_full") or "refuse"
    return StoreOptions.from_config(
        {"roles": ["test"], "folder": own.get("folder"), "when_full": when_full}
    )


@entry_point("evaluate")
def main(cfg: DictConfig) -> float:
    with open_dict(cfg):
        cfg.checkpoint = str(Path(cfg.checkpoint).expanduser().resolve())
    return evaluate_checkpoint(cfg)["mean"]["video_auc"]


if __name__ == "__main__":
    main()
