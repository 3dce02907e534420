"""Results tables: one Table, written as Markdown, CSV and LaTeX."""

from __future__ import annotations

import csv
import io
import math

import pytest

from dfd.report.tables import (
    Delta,
    Stat,
    Table,
    results_markdown_csv,
    to_csv,
    to_latex,
    to_markdown,
)

RESULTS = {
    "best_epoch": 3,
    "val": {"video_auc": 0.9},
    "test": {
        "cdf_v2": {"video_auc": 0.9512, "frame_auc": 0.9011, "video_eer": 0.1, "video_ap": 0.97},
        "dfdc": {"video_auc": 0.8123, "frame_auc": 0.7654, "video_eer": 0.25, "video_ap": 0.8},
    },
    "mean": {"video_auc": 0.88175, "frame_auc": 0.83325},
}


def test_a_runs_results_table_has_a_row_per_target_and_the_mean():
    markdown, text = results_markdown_csv(RESULTS)
    lines = markdown.splitlines()
    assert lines[0] == "| dataset | video_auc | frame_auc | video_eer | video_ap |"
    assert lines[2] == "| cdf_v2 | 0.9512 | 0.9011 | 0.1000 | 0.9700 |"
    assert lines[-1] == "| mean | 0.8818 | 0.8333 |  |  |"  # the mean holds no EER/AP
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["dataset"] for r in rows] == ["cdf_v2", "dfdc", "mean"]
    assert float(rows[2]["video_auc"]) == pytest.approx(0.88175)  # full precision in CSV
    assert rows[2]["video_eer"] == ""


def test_mean_and_std_over_seeds():
    s = Stat.of([0.8, 0.9, float("nan")])
    assert s.n == 2 and s.mean == pytest.approx(0.85) and s.std == pytest.approx(math.sqrt(0.005))
    assert Stat.of([0.7]).std == 0.0 and Stat.of([]).n == 0


def test_every_format_shows_stats_and_differences():
    table = Table("row", ["seeds", "cdf_v2", "Δ"])
    table.add("full", [2, Stat(0.9, 0.01, 2), None])
    table.add("ln", [2, Stat(0.85, 0.02, 2), Delta(-0.05, -0.08, -0.01)])
    md = to_markdown(table)
    assert "| full | 2 | 0.9000 ± 0.0100 |  |" in md
    assert "| ln | 2 | 0.8500 ± 0.0200 | -0.0500 [-0.0800, -0.0100] |" in md
    rows = list(csv.DictReader(io.StringIO(to_csv(table))))
    assert list(rows[0]) == [
        "row",
        "seeds",
        "cdf_v2",
        "cdf_v2_std",
        "cdf_v2_n",
        "Δ",
        "Δ_low",
        "Δ_high",
    ]
    assert float(rows[1]["Δ_low"]) == -0.08 and rows[0]["Δ"] == ""
    tex = to_latex(table, caption="demo_ablation: 50% of_it")
    # percent, the best mean bold, special characters escaped
    assert r"\textbf{90.00 $\pm$ 1.00}" in tex and r"85.00 $\pm$ 2.00" in tex
    assert r"-5.00 [-8.00, -1.00]" in tex and r"50\% of\_it" in tex
    assert tex.count(r"\\") == 3 and r"\toprule" in tex
    assert r"\textbf{2}" not in tex  # a count is never ranked


def test_a_row_of_the_wrong_width_is_refused():
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        Table("row", ["a", "b", "c"]).add("x", [1, 2])
