"""A grid ablation's per-row table: mean ± std over seeds, differences with bootstrap CIs over
videos, read from per-frame prediction files written here as the training runs write them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution

from dfd.report.ablation import ablation_tables, bootstrap_difference, read_predictions
from dfd.report.tables import Delta, Stat, to_markdown
from dfd.scoring.bootstrap import roc_auc_rows
from dfd.scoring.metrics import roc_auc

TARGETS = ("mouth", "swap")


def write_predictions(folder: Path, target: str, separation: float, seed: int) -> float:
    """Per-frame predictions of 60 videos (3 frames each) with p(fake) separated by
    `separation`; returns their video AUC."""
    rng = np.random.default_rng(seed)
    rows = []
    for v in range(60):
        label = v % 2
        base = rng.normal(separation * label, 1.0)
        for f in range(3):
            p = 1 / (1 + math.exp(-(base + rng.normal(0, 0.3))))
            rows.append((f"{target}/{v:03d}/{f}.png", f"{target}/{v:03d}", target, label, p))
    frame = pd.DataFrame(rows, columns=["path", "video_id", "source", "label", "p_fake"])
    (folder / "predictions").mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / "predictions" / f"{target}.parquet")
    scores = read_predictions(folder / "predictions" / f"{target}.parquet")
    return roc_auc(scores.labels, scores.scores)


def grid_trial(
    tmp: Path, number: int, row: str, seed: int, separation: float
) -> optuna.trial.FrozenTrial:
    folder = tmp / f"{number:03d}"
    aucs = {
        t: write_predictions(folder, t, separation, 100 * number + i) for i, t in enumerate(TARGETS)
    }
    return optuna.trial.create_trial(
        params={"row": row, "seed": seed},
        distributions={
            "row": CategoricalDistribution(["full", "ln", "probe"]),
            "seed": CategoricalDistribution([0, 1]),
        },
        value=0.9,
        user_attrs={
            "output_dir": str(folder),
            "val/video_auc": 0.9 - 0.01 * seed,
            "test/mean/video_auc": float(np.mean(list(aucs.values()))),
            **{f"test/{t}/video_auc": a for t, a in aucs.items()},
        },
    )


def test_auc_of_many_score_rows_equals_the_plain_auc():
    rng = np.random.default_rng(0)
    labels = np.array([0, 1] * 20)
    scores = rng.random((5, 40)).round(1)  # ties included
    expected = [roc_auc(labels, s) for s in scores]
    assert roc_auc_rows(labels, scores) == pytest.approx(expected)


def test_the_per_row_table_has_stats_over_seeds_and_differences_with_cis(tmp_path):
    trials = [
        grid_trial(tmp_path, 0, "full", 0, 2.0),
        grid_trial(tmp_path, 1, "full", 1, 2.0),
        grid_trial(tmp_path, 2, "ln", 0, 2.0),  # as good as the reference, other draws
        grid_trial(tmp_path, 3, "ln", 1, 2.0),
        grid_trial(tmp_path, 4, "probe", 0, 0.0),  # chance
        grid_trial(tmp_path, 5, "probe", 1, 0.0),
    ]
    result = ablation_tables(trials, ["full", "ln", "probe"], "video_auc", "full", None, n_boot=400)
    summary = result.summary
    assert summary.columns == [
        "seeds",
        "val video_auc",
        "mouth",
        "swap",
        "mean",
        "Δ mean vs full [95% CI]",
    ]
    labels = [label for label, _ in summary.rows]
    assert labels == ["full (reference)", "ln", "probe"]
    full, ln, probe = (cells for _, cells in summary.rows)
    assert full[0] == 2 and isinstance(full[2], Stat) and full[2].n == 2 and full[-1] is None
    assert full[1].mean == pytest.approx(0.895)
    mouth = [t.user_attrs["test/mouth/video_auc"] for t in trials[:2]]
    assert full[2].mean == pytest.approx(np.mean(mouth)) and full[2].std == pytest.approx(
        np.std(mouth, ddof=1)
    )
    # the difference is the mean-over-seeds difference, its CI from resampling the videos
    d_probe, d_ln = probe[-1], ln[-1]
    assert isinstance(d_probe, Delta)
    assert d_probe.value == pytest.approx(probe[4].mean - full[4].mean)
    assert d_probe.high < 0  # clearly worse than the reference
    assert d_ln.low < d_ln.value < d_ln.high and d_ln.low < 0.05  # no clear difference
    assert d_ln.high - d_ln.low > 0.01
    deltas = {label: cells for label, cells in result.deltas.rows}
    assert set(deltas) == {"ln", "probe"} and result.deltas.columns == ["mouth", "swap", "mean"]
    assert deltas["probe"][0].value == pytest.approx(probe[2].mean - full[2].mean)
    assert "± " in to_markdown(summary)


def test_a_row_against_itself_differs_by_zero_with_a_zero_ci(tmp_path):
    scores = read_predictions_for(tmp_path)
    estimate, reps = bootstrap_difference([scores], [scores], 200, np.random.default_rng(0))
    assert estimate == 0 and np.all(reps == 0)


def read_predictions_for(tmp: Path):
    write_predictions(tmp, "mouth", 1.0, 0)
    return read_predictions(tmp / "predictions" / "mouth.parquet")


def test_without_predictions_the_difference_has_no_ci(tmp_path):
    trials = [grid_trial(tmp_path, 0, "full", 0, 2.0), grid_trial(tmp_path, 1, "ln", 0, 1.0)]
    for t in trials:
        for f in (Path(t.user_attrs["output_dir"]) / "predictions").iterdir():
            f.unlink()
    result = ablation_tables(trials, ["full", "ln"], "video_auc", "full", None, n_boot=50)
    delta = result.summary.rows[1][1][-1]
    assert not math.isnan(delta.value) and math.isnan(delta.low) and math.isnan(delta.high)


def test_predictions_missing_a_column_fail_naming_it(tmp_path):
    pd.DataFrame({"video_id": ["a"], "p_fake": [0.5]}).to_parquet(tmp_path / "x.parquet")
    with pytest.raises(ValueError, match=r"missing \['label'\]"):
        read_predictions(tmp_path / "x.parquet")


def test_predictions_of_a_trial_on_another_machine_come_from_its_mlflow_run(tmp_path):
    from mlflow import MlflowClient

    from dfd.report.ablation import trial_predictions
    from tests.conftest import fresh_mlflow_uri

    uri = fresh_mlflow_uri(tmp_path / "store")
    client = MlflowClient(uri)
    experiment = client.create_experiment("x", artifact_location=(tmp_path / "art").as_uri())
    run = client.create_run(experiment)
    here = tmp_path / "elsewhere"
    aucs = {t: write_predictions(here, t, 1.5, i) for i, t in enumerate(TARGETS)}
    client.log_artifacts(run.info.run_id, str(here / "predictions"), "predictions")
    trial = optuna.trial.create_trial(
        value=0.5,
        user_attrs={"output_dir": str(tmp_path / "gone"), "mlflow_run_id": run.info.run_id},
    )
    scores = trial_predictions(trial, TARGETS, uri)
    assert scores is not None
    assert roc_auc(scores["swap"].labels, scores["swap"].scores) == pytest.approx(aucs["swap"])
    assert trial_predictions(trial, TARGETS, None) is None  # no folder, no store: no CI


def test_a_damaged_trial_parquet_is_named_in_one_line(tmp_path):
    import pandas as pd

    from dfd.report.ablation import read_predictions
    from dfd.runtime.errors import UserError

    path = tmp_path / "mouth.parquet"
    pd.DataFrame({"video_id": ["a", "b"], "label": [0, 1], "p_fake": [0.2, 0.9]}).to_parquet(path)
    data = bytearray(path.read_bytes())
    data[8:40] = b"\xff" * 32  # the column data, inside the file: size and footer intact
    path.write_bytes(bytes(data))
    with pytest.raises(
        UserError, match=r"mouth.parquet: not a readable predictions parquet"
    ) as err:
        read_predictions(path)
    assert "\n" not in str(err.value) and "delete it" in str(err.value)
