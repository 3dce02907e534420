"""Runs of an MLflow store side by side: select them, build the paper's table from them, and
write it (`python -m dfd.report`).

One row per run (its run name), or, with `group_seeds`, one row per configuration (runs whose
overrides differ only in `seed`) holding mean ± std over its runs; one column per target's
video AUC (`test/<target>/video_auc`; more metrics on request), the mean over targets and,
where the runs logged it, the pooled figure over all targets' videos (`test/pooled/<metric>`).
A single run's cell shows its bootstrap interval where the run logged one
(`test/<target>/<metric>_ci_low` / `_ci_high`). A run whose checkpoint was selected on a test
target (tag `dfd.selection.leaky=true`) is marked with a dagger and a footnote.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run
from omegaconf import DictConfig, OmegaConf

from dfd.report.plots import plot_table
from dfd.report.tables import (
    LEAKY_MARK,
    Interval,
    Stat,
    Table,
    leaky_note,
    to_csv,
    to_latex,
    to_markdown,
)
from dfd.runtime.redact import redact
from dfd.runtime.run_info import SEPARATOR, run_name
from dfd.runtime.stores import (
    MLFLOW_TABLES,
    OPTUNA_TABLES,
    StoreError,
    check_sqlite_store,
    check_tracking_server,
    describe_store_error,
)

_TARGET_METRIC = re.compile(r"^test/(?P<target>[^/]+)/(?P<metric>[^/]+)$")
# dfd.scoring.robustness: robust/<perturbation>/<severity>/<target>/video_auc
_ROBUST_METRIC = re.compile(r"^robust/(?P<p>[^/]+)/(?P<s>[^/]+)/(?P<target>[^/]+)/video_auc$")
_SEED = re.compile(r"^\+*seed=\S+$")
# rows of test/<name>/ that are not targets: the mean over targets and the pooled videos
_NOT_TARGETS = ("mean", "pooled")


@dataclass(frozen=True)
class Selection:
    """Which runs to compare: any of experiments, tags, a sweep (its study name or its parent
    run id) and run ids; `status` keeps only runs that ended so (None: any)."""

    experiments: Sequence[str] = ()
    tags: Mapping[str, str] | None = None
    sweep: str | None = None
    parent: str | None = None
    run_ids: Sequence[str] = ()
    status: str | None = "FINISHED"


def _quote(value: str) -> str:
    return "'" + str(value).replace("'", "\\'") + "'"


def select_runs(client: MlflowClient, selection: Selection) -> list[Run]:
    """The selected runs, oldest first; a sweep's own parent run is never one of them.

    Fails naming the store's experiments when an experiment does not exist, and naming the
    selection when nothing matches.
    """
    if selection.run_ids:
        runs = [client.get_run(run_id) for run_id in selection.run_ids]
    else:
        experiments = client.search_experiments()
        by_name = {e.name: e.experiment_id for e in experiments}
        names = list(selection.experiments) or list(by_name)
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ValueError(
                f"select.experiments: no experiment {missing} in the store; it holds "
                f"{sorted(by_name)}"
            )
        filters = [f"tags.`{k}` = {_quote(v)}" for k, v in (selection.tags or {}).items()]
        if selection.sweep:
            filters.append(f"tags.`optuna.study_name` = {_quote(selection.sweep)}")
        if selection.parent:
            filters.append(f"tags.`mlflow.parentRunId` = {_quote(selection.parent)}")
        if selection.status:
            filters.append(f"attributes.status = {_quote(selection.status)}")
        runs, token = [], None
        while True:
            page = client.search_runs(
                [by_name[n] for n in names],
                filter_string=" and ".join(filters),
                max_results=1000,
                order_by=["attributes.start_time ASC"],
                page_token=token,
            )
            runs += list(page)
            token = page.token
            if not token:
                break
    runs = [r for r in runs if r.data.tags.get("dfd.role") != "sweep"]
    if not runs:
        raise ValueError(
            f"no run matches the selection {selection} in {redact(client.tracking_uri)}"
        )
    return sorted(runs, key=lambda r: r.info.start_time or 0)


def targets_of(runs: Sequence[Run], metric: str) -> list[str]:
    """The targets the runs were tested on (`test/<target>/<metric>`), first-seen order."""
    names: dict[str, None] = {}
    for run in runs:
        for key in run.data.metrics:
            m = _TARGET_METRIC.match(key)
            if m and m["metric"] == metric and m["target"] not in _NOT_TARGETS:
                names[m["target"]] = None
    return list(names)


def run_label(run: Run) -> str:
    """A run's row name: its run name, or one made from its overrides tag."""
    return run.info.run_name or run_name(run.data.tags.get("dfd.overrides", "").split())


def configuration(run: Run) -> tuple[str, str]:
    """(key, label) of a run's configuration: what it trained, whatever its seed.

    A sweep's grid trial is its row (`dfd.sweep.row`); any other run its overrides without
    `seed=`, named as `run_info.run_name` names them.
    """
    tags = run.data.tags
    if "dfd.sweep.row" in tags:
        row = tags["dfd.sweep.row"]
        return f"{tags.get('optuna.study_name', '')}/{row}", row
    if "dfd.overrides" in tags:
        kept = [o for o in tags["dfd.overrides"].split() if not _SEED.match(o)]
        return " ".join(kept), run_name(kept)
    label = run_label(run)
    # a name like `ablation_ln · seed=1`: the configuration is the name before the seed
    words = [w for w in label.split(SEPARATOR) if not w.startswith("seed=")]
    base = SEPARATOR.join(words) or label
    return base, base


def robustness_grid(runs: Sequence[Run]) -> list[tuple[str, str]]:
    """The (perturbation, severity) pairs the runs were scored under, severity 0 (clean) left
    out, in first-seen order of perturbation and numeric order of severity."""
    found: dict[str, set[str]] = {}
    for run in runs:
        for key in run.data.metrics:
            m = _ROBUST_METRIC.match(key)
            if m and m["s"] != "0":
                found.setdefault(m["p"], set()).add(m["s"])
    return [
        (p, s) for p, severities in found.items() for s in sorted(severities, key=_severity_key)
    ]


def _severity_key(severity: str) -> tuple[float, str]:
    try:
        return float(severity), severity
    except ValueError:
        return math.inf, severity


def robust_auc(run: Run, perturbation: str, severity: str) -> float:
    """Video AUC under one perturbation and severity, averaged over the run's targets."""
    prefix = f"robust/{perturbation}/{severity}/"
    values = [
        v for k, v in run.data.metrics.items() if k.startswith(prefix) and k.endswith("/video_auc")
    ]
    return sum(values) / len(values) if values else math.nan


def is_leaky(run: Run) -> bool:
    """Whether the run's checkpoint was selected on a test target (`dfd.selection.leaky`)."""
    return run.data.tags.get("dfd.selection.leaky") == "true"


def comparison_table(
    runs: Sequence[Run],
    metrics: Sequence[str] = ("video_auc",),
    group_seeds: bool = False,
    robustness: bool = False,
) -> Table:
    """The paper's table: rows = runs (or configurations, mean ± std over their runs), columns
    = each target's `metrics`, their mean over targets and, where logged, the pooled figure
    over all targets' videos; plus `runs` when grouped. With `robustness`, one more column
    per perturbation and severity the runs were scored under (``dfd.evaluate
    robustness=...``): video AUC averaged over targets, named ``<perturbation> <severity>``.

    With one metric the columns are the target names, `mean` and `pooled`; with several,
    `<target> <metric>`, `mean <metric>` and `pooled <metric>`. The mean is the run's own mean
    over its targets (`test/mean/<metric>` when logged, else computed from its targets). A
    single run's cell is an `Interval` where it logged one. A row holding a run selected on a
    test target (`is_leaky`) carries a dagger, explained in the table's notes.
    """
    if not metrics:
        raise ValueError("metrics: name at least one, e.g. [video_auc]")
    targets = {m: targets_of(runs, m) for m in metrics}
    if not any(targets.values()):
        raise ValueError(
            f"the selected runs logged no test/<target>/{metrics[0]} metric: were they tested?"
        )
    pooled = {m: any(f"test/pooled/{m}" in r.data.metrics for r in runs) for m in metrics}
    single = len(metrics) == 1
    columns = []
    for m in metrics:
        columns += [t if single else f"{t} {m}" for t in targets[m]]
        columns.append("mean" if single else f"mean {m}")
        if pooled[m]:
            columns.append("pooled" if single else f"pooled {m}")
    grid = robustness_grid(runs) if robustness else []
    if robustness and not grid:
        raise ValueError(
            "robustness_grid=true: the selected runs logged no robust/<perturbation>/<severity>/... "
            "metric; evaluate them with `python -m dfd.evaluate ... robustness=deepfakebench`"
        )
    columns += [f"{p} {s}" for p, s in grid]
    groups: dict[str, tuple[str, list[Run]]] = {}
    for run in runs:
        key, label = configuration(run) if group_seeds else (run.info.run_id, run_label(run))
        groups.setdefault(key, (label, []))[1].append(run)
    table = Table(
        "configuration" if group_seeds else "run", (["runs"] if group_seeds else []) + columns
    )
    seen: dict[str, int] = {}
    leaky_targets: dict[str, None] = {}
    for label, members in groups.values():
        cells: list = [len(members)] if group_seeds else []
        for m in metrics:
            for t in targets[m]:
                if group_seeds:
                    cells.append(
                        Stat.of([r.data.metrics.get(f"test/{t}/{m}", math.nan) for r in members])
                    )
                else:
                    cells.append(_run_cell(members[0], t, m))
            means = [_run_mean(r, m, targets[m]) for r in members]
            cells.append(Stat.of(means) if group_seeds else means[0])
            if pooled[m]:
                if group_seeds:
                    values = [r.data.metrics.get(f"test/pooled/{m}", math.nan) for r in members]
                    cells.append(Stat.of(values))
                else:
                    cells.append(_run_cell(members[0], "pooled", m))
        for p, sev in grid:
            values = [robust_auc(r, p, sev) for r in members]
            cells.append(Stat.of(values) if group_seeds else values[0])
        # two runs of one name stay two rows, told apart by a number
        seen[label] = seen.get(label, 0) + 1
        row = label if seen[label] == 1 else f"{label} ({seen[label]})"
        leaky = [r for r in members if is_leaky(r)]
        if leaky:
            row += f" {LEAKY_MARK}"
            for r in leaky:
                leaky_targets[_selected_on(r)] = None
        table.add(row, cells)
    if leaky_targets:
        table.notes.append(leaky_note(", ".join(leaky_targets)))
    return table


def _selected_on(run: Run) -> str:
    split = run.data.tags.get("dfd.selection.split", "")
    # "test_set (data.test.swap)" -> "swap"
    return split.rsplit("data.test.", 1)[-1].rstrip(")") if "data.test." in split else "?"


def _run_cell(run: Run, target: str, metric: str) -> float | Interval:
    logged = run.data.metrics
    value = logged.get(f"test/{target}/{metric}", math.nan)
    low, high = (
        logged.get(f"test/{target}/{metric}_ci_low"),
        logged.get(f"test/{target}/{metric}_ci_high"),
    )
    if low is None or high is None:
        return value
    return Interval(value, low, high)


def _run_mean(run: Run, metric: str, targets: Sequence[str]) -> float:
    logged = run.data.metrics.get(f"test/mean/{metric}")
    if logged is not None:
        return float(logged)
    values = [run.data.metrics.get(f"test/{t}/{metric}") for t in targets]
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else math.nan


FORMATS = {"markdown": "md", "csv": "csv", "latex": "tex"}
_STORE = "MLflow store"


def open_tracking_store(uri: str) -> MlflowClient:
    """A client of the MLflow store at `uri` that only reads: a missing, empty, non-sqlite or
    foreign sqlite file, or a server that does not answer, fails in one line naming it
    (MLflow would create a new store at a mistyped path, or retry a server for minutes)."""
    check_sqlite_store(
        uri,
        _STORE,
        "tracking.uri",
        must_exist=True,
        tables=MLFLOW_TABLES,
        foreign=OPTUNA_TABLES,
    )
    check_tracking_server(uri)
    return _ReadingClient(uri)


class _ReadingClient(MlflowClient):
    """`MlflowClient` whose store errors (a damaged or locked file, a lost server) are one
    line naming the store."""

    def __init__(self, uri: str) -> None:
        try:
            super().__init__(uri)
        except Exception as err:
            raise _store_error(uri, err) from None
        self._uri = uri

    def search_experiments(self, *args, **kwargs):
        try:
            return super().search_experiments(*args, **kwargs)
        except Exception as err:
            raise _store_error(self._uri, err) from None

    def search_runs(self, *args, **kwargs):
        try:
            return super().search_runs(*args, **kwargs)
        except Exception as err:
            raise _store_error(self._uri, err) from None


def _store_error(uri: str, err: Exception) -> Exception:
    message = describe_store_error(uri, err, _STORE, "tracking.uri")
    if message is None:
        cause = err.__cause__ or err.__context__
        message = cause and describe_store_error(uri, cause, _STORE, "tracking.uri")
    return StoreError(message) if message else err


def write_report(cfg: DictConfig) -> tuple[Table, list[Path]]:
    """Select the runs `cfg.select` names in `cfg.tracking.uri`, build their table, print it
    and write it (and its plot) to `cfg.output_dir`; return the table and the files."""
    unknown = [f for f in cfg.formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"formats: {unknown} unknown; choose from {list(FORMATS)}")
    select = OmegaConf.to_container(cfg.select, resolve=True)
    runs = select_runs(open_tracking_store(str(cfg.tracking.uri)), Selection(**select))
    table = comparison_table(
        runs, list(cfg.metrics), bool(cfg.group_seeds), bool(cfg.get("robustness_grid", False))
    )
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in cfg.formats:
        text = {
            "markdown": lambda: to_markdown(table),
            "csv": lambda: to_csv(table),
            "latex": lambda: to_latex(table, percent=bool(cfg.latex_percent)),
        }[fmt]()
        path = out / f"{cfg.name}.{FORMATS[fmt]}"
        path.write_text(text if text.endswith("\n") else text + "\n")
        written.append(path)
    if cfg.plot:
        # the plot shows the targets; the robustness columns stay in the table
        grid = {f"{p} {s}" for p, s in robustness_grid(runs)}
        columns = [c for c in table.columns if c != "runs" and c not in grid]
        written.append(
            plot_table(
                table,
                columns,
                out / f"{cfg.name}.png",
                f"{' / '.join(cfg.metrics)} per target, {len(runs)} runs",
                kind=str(cfg.plot),
                ylabel=" / ".join(cfg.metrics),
            )
        )
    print(to_markdown(table))
    print(f"\n{len(runs)} runs; written: " + ", ".join(str(p) for p in written))
    return table, written
