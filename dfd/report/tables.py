"""Results tables in the paper's shape, written as Markdown, CSV and LaTeX.

A `Table` is rows (a label each) by columns; a cell is a number, a mean ± std over seeds
(`Stat`), an estimate with its confidence interval (`Interval`), a difference with its
confidence interval (`Delta`), or empty; notes (footnotes) follow the table. The same table
feeds every format, so a run's results artifact, `python -m dfd.report` and a sweep's ablation
table read alike. A number whose checkpoint was selected on a test set (leaky) carries a
dagger (`LEAKY_MARK`) on its row and the footnote `leaky_note` says why. AUCs stay fractions
in Markdown and CSV (as MLflow logs them); LaTeX prints them in percent, as the paper does,
when `percent=True`.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# the columns a run's results table shows: what the paper reports (video AUC first)
RESULT_COLUMNS = ("video_auc", "frame_auc", "video_eer", "video_ap")
LEAKY_MARK = "†"


@dataclass(frozen=True)
class Stat:
    """Mean ± std of one metric over `n` runs (sample std, ddof 1; 0 for a single run)."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        """The statistic of `values` (NaNs left out; no value gives a NaN mean)."""
        clean = [float(v) for v in values if v is not None and not math.isnan(float(v))]
        if not clean:
            return cls(math.nan, math.nan, 0)
        mean = sum(clean) / len(clean)
        var = sum((v - mean) ** 2 for v in clean) / (len(clean) - 1) if len(clean) > 1 else 0.0
        return cls(mean, math.sqrt(var), len(clean))


@dataclass(frozen=True)
class Delta:
    """A difference from a reference with its confidence interval `[low, high]`."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval `[low, high]` (a bootstrap interval)."""

    value: float
    low: float
    high: float


Cell = float | int | str | Stat | Interval | Delta | None


@dataclass
class Table:
    """A titled grid: `row_header` names the first column, `columns` the others; `notes` are
    footnotes printed under it (Markdown, LaTeX)."""

    row_header: str
    columns: list[str]
    rows: list[tuple[str, list[Cell]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, label: str, cells: Sequence[Cell]) -> None:
        """Append one row; it must have one cell per column."""
        if len(cells) != len(self.columns):
            raise ValueError(
                f"row {label!r} has {len(cells)} cells for {len(self.columns)} columns"
            )
        self.rows.append((label, list(cells)))


def _fmt(value: float, digits: int, percent: bool = False, signed: bool = False) -> str:
    if value is None or math.isnan(value):
        return "–"
    value = value * 100 if percent else value
    digits = max(digits - 2, 1) if percent else digits
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _text(cell: Cell, digits: int, percent: bool = False, pm: str = " ± ") -> str:
    if cell is None:
        return ""
    if isinstance(cell, Stat):
        if cell.n <= 1:
            return _fmt(cell.mean, digits, percent)
        return f"{_fmt(cell.mean, digits, percent)}{pm}{_fmt(cell.std, digits, percent)}"
    if isinstance(cell, Interval):
        if math.isnan(cell.low):
            return _fmt(cell.value, digits, percent)
        return (
            f"{_fmt(cell.value, digits, percent)} "
            f"[{_fmt(cell.low, digits, percent)}, {_fmt(cell.high, digits, percent)}]"
        )
    if isinstance(cell, Delta):
        return (
            f"{_fmt(cell.value, digits, percent, signed=True)} "
            f"[{_fmt(cell.low, digits, percent, signed=True)}, "
            f"{_fmt(cell.high, digits, percent, signed=True)}]"
        )
    if isinstance(cell, bool | str):
        return str(cell)
    if isinstance(cell, int):
        return str(cell)
    return _fmt(float(cell), digits, percent)


def to_markdown(table: Table, digits: int = 4) -> str:
    """A GitHub Markdown table; numbers to `digits` decimals, mean ± std, Δ [CI]."""
    header = [table.row_header, *table.columns]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * len(table.columns)) + "|",
    ]
    for label, cells in table.rows:
        lines.append("| " + " | ".join([label, *(_text(c, digits) for c in cells)]) + " |")
    if table.notes:
        lines += ["", *table.notes]
    return "\n".join(lines)


def to_csv(table: Table) -> str:
    """CSV with full precision: a Stat column becomes `<col>`, `<col>_std`, `<col>_n`; a Delta
    column `<col>`, `<col>_low`, `<col>_high`; an Interval column `<col>`, `<col>_ci_low`,
    `<col>_ci_high` (the names its bounds are logged under). Notes are not data: left out."""
    kinds: dict[str, type | None] = {}
    for i, col in enumerate(table.columns):
        kinds[col] = next(
            (type(r[1][i]) for r in table.rows if isinstance(r[1][i], Stat | Delta | Interval)),
            None,
        )
    header = [table.row_header]
    for col, kind in kinds.items():
        header += (
            [col, f"{col}_std", f"{col}_n"]
            if kind is Stat
            else [col, f"{col}_low", f"{col}_high"]
            if kind is Delta
            else [col, f"{col}_ci_low", f"{col}_ci_high"]
            if kind is Interval
            else [col]
        )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for label, cells in table.rows:
        row: list = [label]
        for (_col, kind), cell in zip(kinds.items(), cells, strict=True):
            if kind is Stat:
                s = cell if isinstance(cell, Stat) else Stat.of([] if cell is None else [cell])
                row += [_num(s.mean), _num(s.std), s.n]
            elif kind is Delta or kind is Interval:
                d = cell if isinstance(cell, Delta | Interval) else None
                if d is None and isinstance(cell, float):
                    d = Interval(cell, math.nan, math.nan)  # a value without its interval
                row += [_num(d.value), _num(d.low), _num(d.high)] if d else ["", "", ""]
            else:
                row.append(_num(cell) if isinstance(cell, float) else "" if cell is None else cell)
        writer.writerow(row)
    return out.getvalue()


def _num(value: float) -> str:
    return "" if value is None or math.isnan(value) else repr(float(value))


_LATEX_ESCAPES = {
    "†": r"$^\dagger$",
    "&": r"\&",
    "%": r"\%",
    "_": r"\_",
    "#": r"\#",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text).replace("±", r"$\pm$")


def to_latex(table: Table, digits: int = 4, percent: bool = True, caption: str = "") -> str:
    """A booktabs `tabular` (needs `\\usepackage{booktabs}`); AUCs in percent when `percent`,
    the best mean of each numeric column in bold (higher is better)."""
    best: dict[int, float] = {}
    for i in range(len(table.columns)):
        values = [_mean(cells[i]) for _, cells in table.rows]
        values = [v for v in values if v is not None and not math.isnan(v)]
        if len(values) > 1 and not all(isinstance(r[1][i], Delta) for r in table.rows):
            best[i] = max(values)
    lines = []
    if caption:
        lines += [r"\begin{table}[t]", r"\centering", rf"\caption{{{_latex_escape(caption)}}}"]
    lines += [
        r"\begin{tabular}{l" + "r" * len(table.columns) + "}",
        r"\toprule",
        " & ".join(_latex_escape(h) for h in [table.row_header, *table.columns]) + r" \\",
        r"\midrule",
    ]
    for label, cells in table.rows:
        texts = []
        for i, cell in enumerate(cells):
            text = _latex_escape(_text(cell, digits, percent, pm=" ± "))
            if i in best and _mean(cell) == best[i]:
                text = rf"\textbf{{{text}}}"
            texts.append(text)
        lines.append(" & ".join([_latex_escape(label), *texts]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [rf"\par\footnotesize {_latex_escape(note)}" for note in table.notes]
    if caption:
        lines.append(r"\end{table}")
    return "\n".join(lines)


def _mean(cell: Cell) -> float | None:
    if isinstance(cell, Stat):
        return cell.mean
    if isinstance(cell, Delta | Interval):
        return cell.value
    # counts (ints) are not results: they are never ranked
    if isinstance(cell, float):
        return cell
    return None


def leaky_note(selected_on: str) -> str:
    """The footnote of a number whose checkpoint was selected on a test set."""
    return (
        f"{LEAKY_MARK} leaky: the checkpoint was selected on test target {selected_on} "
        f"(selection=test_set), so these numbers are optimistic; compare them only with "
        f"numbers selected the same way."
    )


def results_table(results: Mapping[str, Mapping], columns: Sequence[str] = RESULT_COLUMNS) -> Table:
    """A run's Results (`{"test": {target: metrics}, "mean": {...}, "pooled": {...}}`) as one
    row per target plus the mean over targets and the pooled row (all targets' videos
    together); a metric a row does not hold stays empty. ``video_auc`` shows its bootstrap
    interval where the row holds one (``video_auc_ci_low`` / ``_high``). A run selected on a
    test target (``protocol.selection.leaky``) marks that target, the mean and the pooled
    row with a dagger and says why in a note."""
    selection = (results.get("protocol") or {}).get("selection") or {}
    leaky_target = selection.get("target") if selection.get("leaky") else None
    mark = f" {LEAKY_MARK}"
    table = Table("dataset", list(columns))
    for target, metrics in results["test"].items():
        label = target + (mark if target == leaky_target else "")
        table.add(label, [_cell(metrics, c) for c in columns])
    mean = results.get("mean") or {}
    table.add("mean" + (mark if leaky_target else ""), [_cell(mean, c) for c in columns])
    pooled = results.get("pooled")
    if pooled:
        table.add("pooled" + (mark if leaky_target else ""), [_cell(pooled, c) for c in columns])
    if leaky_target:
        table.notes.append(leaky_note(leaky_target))
    return table


def _cell(metrics: Mapping, column: str) -> Cell:
    value = _float_or_none(metrics.get(column))
    low, high = metrics.get(f"{column}_ci_low"), metrics.get(f"{column}_ci_high")
    if value is not None and low is not None and high is not None:
        return Interval(value, float(low), float(high))
    return value


def _float_or_none(value) -> float | None:
    return None if value is None else float(value)


def results_markdown_csv(
    results: Mapping[str, Mapping], columns: Sequence[str] = RESULT_COLUMNS
) -> tuple[str, str]:
    """A run's results table as (Markdown, CSV) strings: the run's results artifact."""
    table = results_table(results, columns)
    return to_markdown(table), to_csv(table)
