"""Robustness evaluation: every target scored at every severity of every test-time perturbation.

`python -m dfd.evaluate checkpoint=<folder> robustness=deepfakebench` runs it after the clean
evaluation. Each perturbation (`dfd.data.perturb`) is applied to the decoded crop before the
evaluation transform, seeded per frame, and the frames are scored by the same inference code
as the clean targets (`dfd.engine.inference.evaluate`), so severity 0 of every curve is the
clean score. Results: nested ``{perturbation: {severity: {target: metrics}}}``, MLflow
metrics ``robust/<perturbation>/<severity>/<target>/video_auc`` and a plot of video AUC
against severity (one panel per perturbation, one line per target).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: evaluation machines have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from accelerate import Accelerator  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from dfd.data.frames import FrameTransform  # noqa: E402
from dfd.data.index import FrameIndex  # noqa: E402
from dfd.data.perturb import Perturbation, PerturbedTransform  # noqa: E402
from dfd.data.store import StoreOptions  # noqa: E402
from dfd.engine.inference import evaluate  # noqa: E402
from dfd.engine.targets import target_loader  # noqa: E402

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
        plot: the PNG of video AUC against severity (None on non-main processes).
    """

    results: dict[str, dict[str, dict[str, dict[str, float]]]]
    levels: dict[str, dict[str, str]]
    values: dict[str, tuple[str, list[float]]]
    metrics: dict[str, float]
    plot: Path | None

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


def evaluate_robustness(
    task: torch.nn.Module,
    targets: Mapping[str, FrameIndex],
    transform: FrameTransform,
    accelerator: Accelerator,
    perturbations: Mapping[str, Sequence[Perturbation]],
    batch_size: int,
    num_workers: int,
    out_dir: Path,
    on_error: str = "raise",
    aggregate: str = "mean",
    store: StoreOptions | None = None,
) -> RobustnessResults:
    """Score every target clean and at every severity of every perturbation.

    `task` is the prepared `DetectionTask` the clean evaluation scored with, `transform`
    the evaluation transform; each perturbation runs on the decoded crop before it.
    `on_error` and `aggregate` are the clean evaluation's (unreadable frames, a video's
    score from its frames'). The plot (``robustness.png``) and the nested results
    (``robustness.json``) are written into `out_dir` by the main process. With `store`
    naming the test role, the clean pass reads the targets' evaluation store and every
    perturbed pass one store of the decoded frames (decoded once for all severities).
    """
    if not perturbations:
        raise ValueError("no perturbations to evaluate: choose a robustness option with some")

    def score(index: FrameIndex, tf, desc: str) -> dict[str, float]:
        loader = target_loader(index, tf, accelerator, batch_size, num_workers, on_error, store)
        metrics, _, _ = evaluate(task, loader, accelerator, desc=desc, aggregate=aggregate)
        return metrics

    clean = {name: score(index, transform, f"clean {name}") for name, index in targets.items()}
    results: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    levels: dict[str, dict[str, str]] = {}
    for p_name, severities in perturbations.items():
        results[p_name] = {CLEAN: clean}
        levels[p_name] = {CLEAN: "clean"}
        for severity, perturbation in enumerate(severities, start=1):
            tf = PerturbedTransform(transform, perturbation)
            results[p_name][str(severity)] = {
                name: score(index, tf, f"{p_name} {severity} {name}")
                for name, index in targets.items()
            }
            levels[p_name][str(severity)] = perturbation.describe()
    values = {p: (ps[0].parameter, [x.value for x in ps]) for p, ps in perturbations.items()}
    metrics = {
        f"robust/{p}/{s}/{t}/video_auc": m["video_auc"]
        for p, by_severity in results.items()
        for s, by_target in by_severity.items()
        for t, m in by_target.items()
    }
    plot = None
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "robustness.json").write_text(
            json.dumps({"levels": levels, "results": results}, indent=2)
        )
        plot = plot_robustness(results, values, out_dir / "robustness.png")
    return RobustnessResults(results, levels, values, metrics, plot)


def plot_robustness(
    results: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]],
    values: Mapping[str, tuple[str, Sequence[float]]],
    path: Path,
) -> Path:
    """Video AUC against severity: one panel per perturbation, one line per target, plus their mean.

    `values` gives each perturbation's parameter name and its value at severities 1, 2, ...,
    shown under the severity numbers.
    """
    names = list(results)
    cols = min(len(names), 4)
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.4 * cols + 1.6, 3.2 * rows), squeeze=False, sharey=True
    )
    lowest = 1.0
    for ax, name in zip(axes.flat, names, strict=False):
        severities = list(results[name])
        x = np.arange(len(severities))
        targets = list(results[name][severities[0]])
        aucs = np.array(
            [[results[name][s][t]["video_auc"] for s in severities] for t in targets]
        )  # (targets, severities)
        for target, row in zip(targets, aucs, strict=True):
            ax.plot(x, row, marker="o", markersize=3, linewidth=1.2, label=target)
        ax.plot(x, np.nanmean(aucs, axis=0), "k--", linewidth=1.5, label="mean of targets")
        ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
        parameter, levels = values[name]
        ax.set_xticks(
            x, ["0\nclean"] + [f"{s}\n{v:.3g}" for s, v in zip(severities[1:], levels, strict=True)]
        )
        ax.tick_params(axis="x", labelsize=7)
        ax.set_title(name)
        ax.set_xlabel(f"severity ({parameter})")
        ax.grid(alpha=0.3)
        if np.isfinite(aucs).any():
            lowest = min(lowest, float(np.nanmin(aucs)))
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("video AUC")
    axes[0, 0].set_ylim(min(0.45, lowest - 0.05), 1.01)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8)
    fig.suptitle("Video AUC under test-time perturbations (severity 0 = clean; dotted: chance)")
    fig.tight_layout(rect=(0, 0, 1 - 1.6 / fig.get_figwidth(), 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
