"""What one benchmark run measured, as a printed report, flat MLflow metrics and a JSON record."""

from __future__ import annotations

from dataclasses import dataclass, field

from dfd.bench.ceiling import Ceiling
from dfd.bench.scale import ScaleResults, format_scale
from dfd.bench.timing import Rate


@dataclass
class BenchResults:
    """Every section's figures; a section that did not run is None.

    Attributes:
        machine: CPU, cores, GPU and versions (`machine.describe_machine`).
        setup: what was measured (backbone, peft, precision, batch sizes, crops...).
        pipeline: {"train"|"eval": {"old", "new", "ratio"[, "store", "store_ratio"]}}:
            images/s of one worker (the store figures read a pre-decoded frame store).
        model: {"train"|"eval": images/s} of the step on synthetic tensors.
        flops: {"train"|"eval": FLOPs of one step} at the configured batch sizes.
        end_to_end: {"train"|"eval": images/s} from PNG crops through the DataLoader.
        ceiling: the matmul rate measured in this run.
        scale: each stage of a real run timed at growing data sizes (`dfd.bench.scale`).
    """

    machine: dict[str, str]
    setup: dict[str, object]
    pipeline: dict[str, dict[str, Rate]] | None = None
    model: dict[str, Rate] | None = None
    flops: dict[str, int] | None = None
    end_to_end: dict[str, Rate] | None = None
    ceiling: Ceiling | None = None
    scale: ScaleResults | None = None
    notes: list[str] = field(default_factory=list)

    def flops_per_image(self, kind: str) -> float:
        batch = self.setup["batch_size"] if kind == "train" else self.setup["eval_batch_size"]
        return self.flops[kind] / batch

    def achieved_tflops(self) -> dict[str, Rate]:
        """TFLOP/s reached by the model step (train, eval) and end to end (train FLOPs)."""
        if self.flops is None:
            return {}
        out = {}
        if self.model is not None:
            for kind in ("train", "eval"):
                out[kind] = self.model[kind].scaled(self.flops_per_image(kind) / 1e12)
        for kind, rate in (self.end_to_end or {}).items():
            out[f"end_to_end_{kind}"] = rate.scaled(self.flops_per_image(kind) / 1e12)
        return out

    def metrics(self) -> dict[str, float]:
        """Flat metrics for MLflow: each rate's median under its name, plus _min and _max."""
        rates: dict[str, Rate] = {}
        for transform, figures in (self.pipeline or {}).items():
            rates[f"bench/pipeline/{transform}/old_images_per_s"] = figures["old"]
            rates[f"bench/pipeline/{transform}/new_images_per_s"] = figures["new"]
            rates[f"bench/pipeline/{transform}/ratio"] = figures["ratio"]
            if "store" in figures:
                rates[f"bench/pipeline/{transform}/store_images_per_s"] = figures["store"]
                rates[f"bench/pipeline/{transform}/store_ratio"] = figures["store_ratio"]
        for kind, rate in (self.model or {}).items():
            rates[f"bench/model/{kind}_images_per_s"] = rate
        for kind, rate in (self.end_to_end or {}).items():
            rates[f"bench/end_to_end/{kind}_images_per_s"] = rate
        for kind, rate in self.achieved_tflops().items():
            rates[f"bench/flops/{kind}_tflops"] = rate
        if self.ceiling is not None:
            rates["bench/ceiling/tflops"] = self.ceiling.tflops
        out: dict[str, float] = {}
        for name, rate in rates.items():
            out[name] = rate.median
            out[f"{name}_min"], out[f"{name}_max"] = rate.min, rate.max
        for kind in ("train", "eval"):
            if self.flops is not None:
                out[f"bench/flops/{kind}_gflop_per_image"] = self.flops_per_image(kind) / 1e9
        for kind, fraction in self.ceiling_fractions().items():
            out[f"bench/flops/{kind}_ceiling_fraction"] = fraction
        if self.scale is not None:
            out.update(self.scale.metrics())
        return out

    def ceiling_fractions(self) -> dict[str, float]:
        if self.ceiling is None:
            return {}
        return {k: r.median / self.ceiling.tflops.median for k, r in self.achieved_tflops().items()}

    def as_dict(self) -> dict:
        """The whole record, JSON-ready (every repeat's value kept)."""

        def rates(d):
            return {k: v.as_dict() for k, v in d.items()}

        return {
            "machine": self.machine,
            "setup": self.setup,
            "pipeline": {t: rates(f) for t, f in self.pipeline.items()} if self.pipeline else None,
            "model": rates(self.model) if self.model else None,
            "flops_per_step": self.flops,
            "end_to_end": rates(self.end_to_end) if self.end_to_end else None,
            "achieved_tflops": rates(self.achieved_tflops()),
            "ceiling": None
            if self.ceiling is None
            else {"label": self.ceiling.label, "tflops": self.ceiling.tflops.as_dict()},
            "ceiling_fraction": self.ceiling_fractions(),
            "scale": self.scale.as_dict() if self.scale is not None else None,
            "metrics": self.metrics(),
            "notes": self.notes,
        }


def _num(v: float) -> str:
    """Three significant digits at least, thousands separated: 1,346 / 137 / 13.7 / 0.0447."""
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}" if abs(v) < 1 else f"{v:.{3 - len(str(int(abs(v))))}f}"


def _fmt(rate: Rate) -> str:
    return f"{_num(rate.median)} [{_num(rate.min)}-{_num(rate.max)}]"


def format_report(res: BenchResults) -> str:
    """The printed report: machine, setup, then one block per section that ran."""
    m, s = res.machine, res.setup
    lines = [
        "dfd.bench",
        f"machine   {m['cpu']}, {m['cores']} cores, torch threads {m['torch_threads']}, "
        f"device {m['device']}, GPU {m['gpu']}",
        "versions  " + ", ".join(f"{k} {m[k]}" for k in m if k not in _MACHINE_KEYS),
    ]
    if s:  # the throughput sections' setup (the scale section prints its own)
        lines += [
            "setup     " + ", ".join(f"{k} {v}" for k, v in s.items()),
            f"figures   median [min-max] of {s['repeats']} timed repeats, warm-up excluded",
        ]
    if res.pipeline:
        p = res.pipeline
        lines += [
            "",
            f"(a) data pipeline, images/s per worker process (1 thread, "
            f"{s['pipeline_images']} crops per repeat, old/new interleaved)",
            f"    {'transform':<10}{'old (baseline)':<26}{'new (current)':<26}{'new/old':<26}"
            + (f"{'new, frame store':<26}store/old" if "store" in next(iter(p.values())) else ""),
        ]
        for transform, f in p.items():
            line = (
                f"    {transform:<10}{_fmt(f['old']):<26}{_fmt(f['new']):<26}{_fmt(f['ratio']):<26}"
            )
            if "store" in f:
                line += f"{_fmt(f['store']):<26}{_fmt(f['store_ratio'])}"
            lines.append(line.rstrip())
    if res.model:
        lines += [
            "",
            "(b) model step, images/s on synthetic tensors",
            f"    train step (forward+backward+optimizer), batch {s['batch_size']}: "
            f"{_fmt(res.model['train'])}",
            f"    eval forward (inference_mode), batch {s['eval_batch_size']}: "
            f"{_fmt(res.model['eval'])}",
        ]
    if res.end_to_end is not None:
        e = res.end_to_end
        lines += [
            "",
            f"(c) end to end, images/s: PNG crops -> DataLoader ({s['workers']} workers) -> step",
            f"    train (augment, train step), batch {s['batch_size']}: {_fmt(e['train'])}",
            f"    eval (eval transform, eval forward), batch {s['eval_batch_size']}: "
            f"{_fmt(e['eval'])}",
        ]
    if res.flops is not None:
        achieved, fractions = res.achieved_tflops(), res.ceiling_fractions()
        lines += ["", "(d) FLOPs (FlopCounterMode: matmuls, convolutions, attention)"]
        if res.ceiling is not None:
            cpu_note = (
                f"  (CPU: {res.ceiling.dtype} BLAS on {m['torch_threads']} torch thread(s), "
                "not a GPU bf16 ceiling)"
                if res.ceiling.device == "cpu"
                else ""
            )
            lines.append(
                f"    ceiling: {res.ceiling.label}: {_fmt(res.ceiling.tflops)} TFLOP/s{cpu_note}"
            )
        lines.append(f"    {'':<16}{'GFLOP/image':>12}   {'TFLOP/s achieved':<28}of ceiling")
        for kind, rate in achieved.items():
            per_image = res.flops_per_image("eval" if kind.endswith("eval") else "train") / 1e9
            frac = f"{fractions[kind]:.1%}" if kind in fractions else "-"
            lines.append(f"    {kind:<16}{per_image:>12.4g}   {_fmt(rate):<28}{frac}")
    if res.scale is not None:
        lines.append(format_scale(res.scale))
    lines += [f"note: {n}" for n in res.notes]
    return "\n".join(lines)


_MACHINE_KEYS = ("cpu", "cores", "torch_threads", "device", "gpu")
