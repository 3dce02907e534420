"""Section (e) of `dfd.bench`: what each stage of a real run costs as the data grows.

For every size (a base size times each of `scale.factors`) it writes a synthetic benchmark in
the official layouts (`dfd.bench.synthetic`: FF++ for training, Celeb-DF-v2 and DFDC as
targets), composes the training config a user would (`conf/train.yaml` with `data=ff_cross`
and `scale.overrides`), and runs every stage of `dfd.bench.stages` through the real code,
each in a fresh process forked from a server that imported dfd once (`dfd.bench.memory`), so
that its wall time and peak RSS are its own. The report gives each stage's seconds and peak
RSS per size, the time ratio per 4x of data and its growth exponent (log of the ratio over
log 4: 1 is linear), and how the second evaluation and the second robustness pass compare
with the first.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose
from mlflow import MlflowClient
from omegaconf import DictConfig, OmegaConf

import dfd
from dfd.bench.memory import isolated
from dfd.bench.stages import CONFIG, OPTIONS, REPORT, STAGES, run_stage
from dfd.bench.suite import SUITE_STAGES, run_suite_stage, write_suite_indexes
from dfd.bench.synthetic import BenchmarkSize, write_benchmark
from dfd.sweep.compose import compose_train_config, train_config_source
from dfd.sweep.space import override_value

# what the stage processes' server imports once: a run pays these imports once, not per stage
PRELOAD = ("dfd.bench.stages", "dfd.bench.suite", "datasets")
# what each stage's record holds, in MLflow's metrics
FIGURES = ("seconds", "cpu_seconds", "peak_rss_mib", "growth_mib", "anon_growth_mib")
# (numerator, denominator, label): what the frame store saves, as cost ratios
SAVINGS = (
    ("score_warm", "score_first", "2nd evaluation / 1st (stores built)"),
    ("score_warm", "score_decoding", "2nd evaluation / evaluation decoding PNGs"),
    ("load_warm", "load_decoding", "2nd evaluation's frame loading / loading by decoding"),
    ("robustness_2", "robustness_1", "robustness pass 2 / pass 1"),
)


@dataclass
class ScaleResults:
    """What the scale section measured.

    Attributes:
        factors: the sizes, as multiples of the base size.
        frames: {factor: {set: frames}} of each size.
        stages: {stage key: {factor: record}}; a record holds seconds, peak_rss_mib,
            cpu_seconds, growth_mib (how much the RSS grew over the stage, mapped files
            included), anon_growth_mib (what it allocated), start_rss_mib and method.
        skipped: {stage key: why it did not run}.
        suite: {stage key: record} of the reporting stages on a synthetic suite
            (`dfd.bench.suite`); empty when `scale.suite.frames` is 0.
        setup: what was measured (model, crops, isolation, machine load).
    """

    factors: list[int]
    frames: dict[int, dict[str, int]] = field(default_factory=dict)
    stages: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    suite: dict[str, dict[str, Any]] = field(default_factory=dict)
    setup: dict[str, Any] = field(default_factory=dict)

    def exponents(self, key: str, figure: str = "seconds") -> list[float]:
        """The growth exponent of a stage's `figure` (wall ``seconds`` or ``cpu_seconds``)
        between each pair of consecutive sizes: log(t2 / t1) / log(f2 / f1); 1 is linear,
        2 quadratic."""
        by_factor = self.stages.get(key, {})
        out = []
        for f1, f2 in zip(self.factors, self.factors[1:], strict=False):
            t1, t2 = by_factor[f1][figure], by_factor[f2][figure]
            out.append(math.log(t2 / t1) / math.log(f2 / f1) if t1 > 0 and t2 > 0 else math.nan)
        return out

    def exponent(self, key: str, figure: str = "seconds") -> float:
        """The exponent between the two largest sizes: the one that tells the trend."""
        values = self.exponents(key, figure)
        return values[-1] if values else math.nan

    def savings(self) -> dict[str, dict[int, float]]:
        """{label: {factor: cost ratio}} of `SAVINGS` (what the frame store saves)."""
        out = {}
        for num, den, label in SAVINGS:
            if num in self.stages and den in self.stages:
                out[label] = {
                    f: self.stages[num][f]["seconds"] / self.stages[den][f]["seconds"]
                    for f in self.factors
                }
        return out

    def metrics(self) -> dict[str, float]:
        """Flat metrics for MLflow: ``bench/scale/<stage>/x<factor>/<figure>`` and exponents."""
        out: dict[str, float] = {}
        for key, by_factor in self.stages.items():
            for factor, record in by_factor.items():
                for figure in FIGURES:
                    value = record.get(figure, math.nan)
                    if math.isfinite(value):
                        out[f"bench/scale/{key}/x{factor}/{figure}"] = value
            for figure, name in (("seconds", "exponent"), ("cpu_seconds", "cpu_exponent")):
                exponent = self.exponent(key, figure)
                if math.isfinite(exponent):
                    out[f"bench/scale/{key}/{name}"] = exponent
        savings = self.savings()
        for num, den, label in SAVINGS:
            for factor, ratio in savings.get(label, {}).items():
                out[f"bench/scale/{num}_over_{den}/x{factor}"] = ratio
        for key, record in self.suite.items():
            for figure in FIGURES:
                out[f"bench/scale/suite/{key}/{figure}"] = record[figure]
        out.update({f"bench/scale/suite/{k}_mib": v for k, v in self.suite_memory().items()})
        return out

    def suite_memory(self) -> dict[str, float]:
        """MiB a suite evaluation's processes hold beyond the model: ``main`` (imports, the
        targets' indexes and the largest reporting stage), ``other`` (each further process:
        imports and indexes; it neither writes, plots nor logs) and ``main_before`` (with
        every target's predictions held until the end, as runs did before)."""
        s = self.suite
        if "suite_index" not in s:
            return {}
        base = s["suite_index"]["start_rss_mib"]
        index = s["suite_index"]["growth_mib"]
        reporting = ("suite_predictions", "suite_plots", "suite_logging", "suite_report")
        largest = max(s[k]["growth_mib"] for k in reporting if k in s)
        return {
            "main": base + index + largest,
            "other": base + index,
            "main_before": base
            + index
            + max(s[k]["growth_mib"] for k in ("suite_predictions_kept", *reporting[1:]) if k in s),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "frames": {str(f): v for f, v in self.frames.items()},
            "stages": {k: {str(f): r for f, r in v.items()} for k, v in self.stages.items()},
            "exponents": {k: self.exponents(k) for k in self.stages},
            "cpu_exponents": {k: self.exponents(k, "cpu_seconds") for k in self.stages},
            "savings": {
                label: {str(f): r for f, r in v.items()} for label, v in self.savings().items()
            },
            "skipped": self.skipped,
            "suite": self.suite,
            "suite_memory_mib": self.suite_memory(),
            "setup": self.setup,
        }


def bench_scale(cfg: DictConfig, out_dir: Path) -> ScaleResults:
    """Measure every stage at every size of `cfg.scale`; the size folders go under `out_dir`
    (removed afterwards unless `scale.keep`)."""
    s = cfg.scale
    factors = sorted({int(f) for f in s.factors})
    if len(factors) < 2 or factors[0] < 1:
        raise ValueError(
            f"scale.factors={list(s.factors)}: give at least two positive sizes, e.g. [1, 4, 16]"
        )
    base = BenchmarkSize(**s.base)
    res = ScaleResults(factors=factors)
    res.setup = {
        "base": dict(s.base),
        "crop_size": s.crop_size,
        "overrides": " ".join(s.overrides),
        "isolation": "a fresh process per stage (forkserver)" if s.isolate else "one process",
        "threads": cfg.threads,
        "load_average_start": round(os.getloadavg()[0], 2),
    }
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        # the measured runs' store, made before any stage: MLflow's schema migration of a new
        # sqlite file takes seconds and is no stage of a run; each size logs to its own
        # experiment there
        uri = s.tracking_uri or f"sqlite:///{out_dir / 'mlflow.db'}"
        MlflowClient(uri).search_experiments()
        res.setup["tracking_uri"] = uri
        for factor in factors:
            _measure_size(cfg, res, factor, base.scaled(factor), out_dir / f"x{factor}")
        if s.suite.frames:
            _measure_suite(cfg, res, out_dir / "suite")
    finally:
        if not s.keep:
            shutil.rmtree(out_dir, ignore_errors=True)
    res.setup["load_average_end"] = round(os.getloadavg()[0], 2)
    return res


def _measure_size(
    cfg: DictConfig, res: ScaleResults, factor: int, size: BenchmarkSize, folder: Path
) -> None:
    s = cfg.scale
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    written = write_benchmark(folder / "data", size, int(s.crop_size), int(cfg.seed))
    res.frames[factor] = size.frame_counts()
    counts = ", ".join(f"{k} {v:,}" for k, v in res.frames[factor].items())
    print(
        f"scale x{factor}: {written:,} frames written in {time.perf_counter() - started:.1f} s "
        f"({counts} read by the run)",
        flush=True,
    )
    write_configs(cfg, folder, res.setup["tracking_uri"])
    (folder / "stages").mkdir()
    for stage in STAGES:
        if stage.needs and not command_exists(stage.needs):
            res.skipped[stage.key] = f"python -m {stage.needs} does not exist on this branch"
            continue
        record = _run(s.isolate, run_stage, stage.key, folder)
        res.stages.setdefault(stage.key, {})[factor] = record
        print(
            f"  x{factor} {stage.label}: {record['seconds']:.2f} s, "
            f"peak RSS {record['peak_rss_mib']:,.0f} MiB ({_growth(record)})",
            flush=True,
        )


def command_exists(module: str) -> bool:
    """Whether `module` is part of the dfd being measured (an editable install may map a
    missing module to another checkout's: that one is not this dfd's command)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return False
    return Path(spec.origin).resolve().is_relative_to(Path(dfd.__file__).resolve().parent)


def _run(isolate: bool, function, key: str, folder: Path) -> dict[str, Any]:
    if isolate:
        return isolated(function, (key, folder), PRELOAD, folder / "stages" / f"{key}.log")
    return function(key, folder)


def _measure_suite(cfg: DictConfig, res: ScaleResults, folder: Path) -> None:
    s = cfg.scale.suite
    shutil.rmtree(folder, ignore_errors=True)
    write_suite_indexes(folder, int(s.targets), int(s.frames), int(s.frames_per_video))
    write_configs(cfg, folder, res.setup["tracking_uri"])
    (folder / "stages").mkdir()
    res.setup["suite"] = dict(s)
    print(f"scale suite: {s.targets} targets, {s.frames:,} frames of synthetic predictions")
    for stage in SUITE_STAGES:
        record = _run(cfg.scale.isolate, run_suite_stage, stage.key, folder)
        res.suite[stage.key] = record
        print(
            f"  suite {stage.label}: {record['seconds']:.2f} s, "
            f"peak RSS {record['peak_rss_mib']:,.0f} MiB ({_growth(record)})",
            flush=True,
        )


def write_configs(cfg: DictConfig, folder: Path, tracking_uri: str) -> None:
    """The training config of the size in `folder` (`config.yaml`, as `dfd.train` would compose
    it, logging to `tracking_uri` under an experiment named after the folder), its report
    config and the stages' own options, all resolved, into `folder`."""
    s = cfg.scale
    paths = {
        "paths.data_dir": folder / "data",
        "paths.cache_dir": folder / "cache",
        "paths.output_root": folder,
        "paths.output_dir": folder / "run",
        "tracking.uri": tracking_uri,
        "seed": cfg.seed,
    }
    overrides = [f"{k}={override_value(str(v))}" for k, v in paths.items()]
    with train_config_source():
        train = compose_train_config([*overrides, *s.overrides])
        experiment = f"{train.tracking.experiment}-{folder.name}"
        train.tracking.experiment = experiment
        report = compose(
            config_name="report",
            overrides=[
                f"paths.output_root={override_value(str(folder))}",
                f"paths.output_dir={override_value(str(folder / 'report'))}",
                f"tracking.uri={override_value(tracking_uri)}",
                f"output_dir={override_value(str(folder / 'report'))}",
                f"select.experiments=[{override_value(experiment)}]",
            ],
        )
    folder.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(train, folder / CONFIG, resolve=True)
    OmegaConf.save(report, folder / REPORT, resolve=True)
    options = {
        "threads": cfg.threads,
        # the data protocol of the run, for commands that take it (dfd.datasets)
        "data_overrides": [o for o in s.overrides if o.lstrip("~+").startswith("data")],
        "robustness": {
            "perturbation": s.robustness.perturbation,
            "grid": OmegaConf.to_container(s.robustness.grid, resolve=True),
        },
    }
    OmegaConf.save(OmegaConf.create(options), folder / OPTIONS)


def _growth(record: dict[str, Any]) -> str:
    growth, anon = record["growth_mib"], record.get("anon_growth_mib", math.nan)
    if not math.isfinite(growth):
        return "its own process"
    return f"+{growth:,.0f}" + (f", allocated +{anon:,.0f}" if math.isfinite(anon) else "")


def _memory(record: dict[str, Any]) -> str:
    """Peak RSS and what the stage allocated on top of its start (mapped files excluded)."""
    anon = record.get("anon_growth_mib", math.nan)
    extra = f" +{anon:,.0f}" if math.isfinite(anon) else ""
    return f"{record['peak_rss_mib']:,.0f}{extra}"


def _seconds(value: float) -> str:
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def format_scale(res: ScaleResults) -> str:
    """The printed table: per stage, seconds per size, the time ratio per 4x of data between
    consecutive sizes, the exponent of the largest step, and peak RSS (growth) per size."""
    f = res.factors
    setup = res.setup
    lines = [
        "",
        "(e) scale: a real run's stages as the data grows "
        f"({setup['overrides']}; {setup['crop_size']} px crops, "
        f"{setup['base']['frames']} frames per video)",
        "    sizes: "
        + "; ".join(
            f"x{k}: " + ", ".join(f"{n} {c:,}" for n, c in res.frames[k].items()) + " frames"
            for k in f
        ),
        f"    each stage: {setup['isolation']}, torch threads {setup['threads']}; load average "
        f"{setup['load_average_start']} at start, {setup.get('load_average_end', '?')} at end",
    ]
    ratio_heads = [f"x{b}/x{a}" for a, b in zip(f, f[1:], strict=False)]
    lines.append(
        f"    {'stage':<46}"
        + "".join(f"{f'x{k} s':>9}" for k in f)
        + "".join(f"{h:>9}" for h in ratio_heads)
        + f"{'exp':>7}{'cpu exp':>8}   peak RSS MiB +allocated: "
        + " / ".join(f"x{k}" for k in f)
    )
    for stage in STAGES:
        if stage.key in res.skipped:
            lines.append(f"    {stage.label:<46}skipped: {res.skipped[stage.key]}")
            continue
        by = res.stages.get(stage.key)
        if not by:
            continue
        times = "".join(f"{_seconds(by[k]['seconds']):>9}" for k in f)
        ratios = "".join(
            f"{4**e:>9.2f}" if math.isfinite(e) else f"{'-':>9}" for e in res.exponents(stage.key)
        )
        exps = f"{res.exponent(stage.key):>7.2f}{res.exponent(stage.key, 'cpu_seconds'):>8.2f}"
        memory = " / ".join(_memory(by[k]) for k in f)
        lines.append(f"    {stage.label:<46}{times}{ratios}{exps}   {memory}")
    lines += [
        "    xB/xA: the wall-time ratio per 4x of data between consecutive sizes (4 is linear); "
        "exp: its exponent between the two largest sizes, log(t2/t1) / log(size2/size1) (1 is "
        "linear, 2 quadratic); cpu exp: the same of the stage's CPU time (user + system), "
        "which other jobs on the machine disturb less",
        "    peak RSS: the kernel's high-water mark over the stage (VmHWM, reset at its start), "
        "which counts the frame-store pages it read through the page cache; +allocated: what "
        "the stage itself allocated over its start (RssAnon, sampled every 10 ms)",
    ]
    for label, by_factor in res.savings().items():
        lines.append(f"    {label}: " + ", ".join(f"x{k} {v:.2f}" for k, v in by_factor.items()))
    if res.suite:
        suite = setup["suite"]
        lines += [
            "",
            f"    reporting a {suite['targets']}-target evaluation of {suite['frames']:,} frames "
            f"({suite['frames_per_video']} per video; synthetic scores, no model), each stage "
            f"in a fresh process:",
            f"    {'stage':<44}{'seconds':>9}   peak RSS MiB (growth)",
        ]
        for stage in SUITE_STAGES:
            r = res.suite[stage.key]
            lines.append(
                f"    {stage.label:<44}{_seconds(r['seconds']):>9}   "
                f"{r['peak_rss_mib']:,.0f} ({_growth(r)})"
            )
        m = res.suite_memory()
        lines.append(
            f"    memory beyond the model: the main process about {m['main']:,.0f} MiB "
            f"({m['main_before']:,.0f} with every target's predictions held, as before), "
            f"each other process of a multi-process run about {m['other']:,.0f} MiB "
            f"(x8: {8 * m['other'] + m['main'] - m['other']:,.0f} MiB in all)"
        )
    return "\n".join(lines)
