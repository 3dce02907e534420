"""Robustness evaluation: every target scored at every severity of every test-time perturbation.

`python -m dfd.evaluate checkpoint=<folder> robustness=deepfakebench` runs it after the clean
evaluation. Each perturbation (`dfd.data.perturb`) is applied to the decoded crop before the
evaluation transform, seeded per frame, and the frames are scored by the same inference code
as the clean targets (`dfd.scoring.inference.evaluate`), so severity 0 of every curve is the
clean score. Results: nested ``{perturbation: {severity: {target: metrics}}}``, MLflow
metrics ``robust/<perturbation>/<severity>/<target>/video_auc`` and a plot of video AUC
against severity (one panel per perturbation, one line per target).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from hydra.utils import instantiate
from omegaconf import DictConfig

from dfd.data.frames import FrameTransform
from dfd.data.index import FrameIndex
from dfd.data.perturb import Perturbation, PerturbedTransform
from dfd.scoring.targets import TargetScoring, score_target

CLEAN = "0"  # the severity key of unperturbed frames, shared by every perturbation's curve


def build_perturbations(cfg: DictConfig) -> dict[str, list[Perturbation]]:
    """{name: [the perturbation at severity 1, 2, ...]} from a `conf/robustness` option.

    Each entry names a `perturbation` factory (a Hydra partial), the `parameter` the
    severity sets and its `levels` in order of increasing severity.
    """
    out: dict[str, list[Perturbation]] = {}
    for name, spec in (cfg.get("perturbations") or {}).items():
        missing = [k for k in ("perturbation", "parameter", "levels") if not spec.get(k)]
        if missing:
            raise ValueError(
                f"robustness.perturbations.{name} lacks {missing}: give a perturbation factory, "
                f"the parameter its severity sets and a non-empty list of levels"
            )
        factory = instantiate(spec.perturbation)
        out[str(name)] = [factory(**{spec.parameter: level}) for level in spec.levels]
    return out


@dataclass
class RobustnessResults:
    """What `evaluate_robustness` measured.

    Attributes:
        results: {perturbation: {severity: {target: metrics}}}, severity "0" = clean.
        levels: {perturbation: {severity: what it does, e.g. "quality 50"}}.
        values: {perturbation: (its parameter's name, [value at severity 1, 2, ...])}.
        metrics: ``robust/<perturbation>/<severity>/<target>/video_auc`` -> value.
    """

    results: dict[str, dict[str, dict[str, dict[str, float]]]]
    levels: dict[str, dict[str, str]]
    values: dict[str, tuple[str, list[float]]]
    metrics: dict[str, float]

    def summary(self) -> str:
        """A plain-text table: one row per perturbation and severity, one column per target."""
        targets = list(next(iter(next(iter(self.results.values())).values())))
        head = f"{'perturbation':<14}{'severity':<26}" + "".join(f"{t:>10}" for t in targets)
        lines = ["robustness: video AUC", head]
        for name, by_severity in self.results.items():
            for severity, by_target in by_severity.items():
                label = f"{severity} ({self.levels[name][severity]})"
                lines.append(
                    f"{name:<14}{label:<26}"
                    + "".join(f"{by_target[t]['video_auc']:>10.4f}" for t in targets)
                )
        return "\n".join(lines)


def score_pass(
    task: torch.nn.Module,
    targets: Mapping[str, FrameIndex],
    transform,
    accelerator: Accelerator,
    setup: TargetScoring,
    desc: str,
) -> dict[str, dict[str, float]]:
    """{target: metrics} of one pass over every target through `transform` (a perturbed or
    clean evaluation transform), reading the targets' stores as `setup` says."""
    return {
        name: score_target(task, index, transform, accelerator, setup, f"{desc} {name}")[0]
        for name, index in targets.items()
    }


def evaluate_robustness(
    task: torch.nn.Module,
    targets: Mapping[str, FrameIndex],
    transform: FrameTransform,
    accelerator: Accelerator,
    perturbations: Mapping[str, Sequence[Perturbation]],
    setup: TargetScoring,
    clean: Mapping[str, Mapping[str, float]] | None = None,
) -> RobustnessResults:
    """Score every target clean and at every severity of every perturbation.

    `task` is the prepared `DetectionTask` the clean evaluation scored with, `transform`
    the evaluation transform; each perturbation runs on the decoded crop before it.
    `setup` is the clean evaluation's (unreadable frames, a video's score from its frames',
    frame stores); `clean` its metrics per target, when it already ran (severity 0 is then
    not scored a second time); `dfd.report.results.write_robustness` writes what this
    returns. With a store naming the test role, the clean pass reads the targets' evaluation
    store and every perturbed pass one store of the decoded frames (decoded once for all
    severities).
    """
    if not perturbations:
        raise ValueError("no perturbations to evaluate: choose a robustness option with some")
    if clean is None or set(clean) != set(targets):
        clean = score_pass(task, targets, transform, accelerator, setup, "clean")
    clean = {name: dict(clean[name]) for name in targets}
    results: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    levels: dict[str, dict[str, str]] = {}
    for p_name, severities in perturbations.items():
        results[p_name] = {CLEAN: clean}
        levels[p_name] = {CLEAN: "clean"}
        for severity, perturbation in enumerate(severities, start=1):
            tf = PerturbedTransform(transform, perturbation)
            results[p_name][str(severity)] = score_pass(
                task, targets, tf, accelerator, setup, f"{p_name} {severity}"
            )
            levels[p_name][str(severity)] = perturbation.describe()
    values = {p: (ps[0].parameter, [x.value for x in ps]) for p, ps in perturbations.items()}
    metrics = {
        f"robust/{p}/{s}/{t}/video_auc": m["video_auc"]
        for p, by_severity in results.items()
        for s, by_target in by_severity.items()
        for t, m in by_target.items()
    }
    return RobustnessResults(results, levels, values, metrics)
