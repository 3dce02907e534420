"""`python -m dfd.report`: the paper's table from an MLflow store."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from mlflow import MlflowClient
from omegaconf import open_dict

from dfd.report import write_report
from dfd.report.compare import Selection, comparison_table, select_runs
from tests.conftest import CONF_DIR, fresh_mlflow_uri

TARGETS = {"mouth": 0.0, "eyes": 0.05, "swap": -0.1}


def log_run(client, experiment_id, name, tags, auc, status="FINISHED", parent=None):
    tags = dict(tags)
    if parent:
        tags["mlflow.parentRunId"] = parent
    run = client.create_run(experiment_id, run_name=name, tags=tags)
    for target, shift in TARGETS.items():
        client.log_metric(run.info.run_id, f"test/{target}/video_auc", auc + shift)
        client.log_metric(run.info.run_id, f"test/{target}/frame_auc", auc + shift - 0.02)
    client.log_metric(run.info.run_id, "test/mean/video_auc", auc - 0.05 / 3)
    client.set_terminated(run.info.run_id, status)
    return run.info.run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """An MLflow store holding a demo-ablation-like sweep (2 rows x 2 seeds and its parent run),
    a plain run and a failed run."""
    uri = fresh_mlflow_uri(tmp_path_factory.mktemp("store"))
    client = MlflowClient(uri)
    exp = client.create_experiment("demo_ablation")
    parent = log_run(client, exp, "sweep demo_ablation", {"dfd.role": "sweep"}, 0.5)
    for row, auc in [("full_method", 0.8), ("ln", 0.7)]:
        for seed in (0, 1):
            log_run(
                client,
                exp,
                f"{row} · seed={seed}",
                {
                    "optuna.study_name": "demo_ablation",
                    "dfd.sweep.row": row,
                    "dfd.overrides": f"experiment=ablation_{row} seed={seed}",
                },
                auc + 0.02 * seed,
                parent=parent,
            )
    other = client.create_experiment("dfd")
    log_run(client, other, "lora", {"dfd.overrides": "peft=lora"}, 0.75)
    log_run(client, other, "full", {"dfd.overrides": "peft=full"}, 0.6, status="FAILED")
    return uri


def report_cfg(uri, tmp_path, overrides=()):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("report", overrides=[f"tracking.uri={uri}", *overrides])
    with open_dict(cfg):
        cfg.output_dir = str(tmp_path / "report")
    return cfg


def test_the_demo_ablation_gets_one_row_per_row_with_mean_and_std(store, tmp_path):
    cfg = report_cfg(store, tmp_path, ["select.sweep=demo_ablation", "group_seeds=true"])
    table, written = write_report(cfg)
    assert table.columns == ["runs", "mouth", "eyes", "swap", "mean"]
    assert [label for label, _ in table.rows] == ["full_method", "ln"]  # no parent run
    runs, mouth, *_, mean = table.rows[0][1]
    assert runs == 2 and mouth.n == 2 and mouth.mean == pytest.approx(0.81)
    assert mouth.std == pytest.approx(0.0141421, rel=1e-4)
    assert mean.mean == pytest.approx(0.81 - 0.05 / 3)
    names = sorted(p.name for p in written)
    assert names == ["report.csv", "report.md", "report.png", "report.tex"]
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| full_method | 2 | 0.8100 ± 0.0141 |" in md
    rows = list(csv.DictReader(io.StringIO((tmp_path / "report" / "report.csv").read_text())))
    assert rows[1]["configuration"] == "ln" and float(rows[1]["mouth"]) == pytest.approx(0.71)
    assert r"\toprule" in (tmp_path / "report" / "report.tex").read_text()


def test_one_row_per_run_by_default_with_frame_auc_on_request(store, tmp_path):
    client = MlflowClient(store)
    runs = select_runs(client, Selection(experiments=["demo_ablation"]))
    assert len(runs) == 4  # the trials, never the sweep's parent
    table = comparison_table(runs, ["video_auc", "frame_auc"])
    assert [label for label, _ in table.rows][:2] == [
        "full_method · seed=0",
        "full_method · seed=1",
    ]
    assert table.columns[-1] == "mean frame_auc" and "swap frame_auc" in table.columns
    # failed runs are left out unless asked for
    assert [r.info.run_name for r in select_runs(client, Selection(experiments=["dfd"]))] == [
        "lora"
    ]
    both = select_runs(client, Selection(experiments=["dfd"], status=None))
    assert len(both) == 2
    tagged = select_runs(client, Selection(tags={"dfd.overrides": "peft=lora"}))
    assert [r.info.run_name for r in tagged] == ["lora"]
    by_id = select_runs(client, Selection(run_ids=[tagged[0].info.run_id]))
    assert by_id[0].info.run_id == tagged[0].info.run_id


def test_a_bad_selection_fails_naming_what_exists(store, tmp_path):
    with pytest.raises(ValueError, match=r"no experiment \['nope'\].*demo_ablation"):
        write_report(report_cfg(store, tmp_path, ["select.experiments=[nope]"]))
    with pytest.raises(ValueError, match="no run matches"):
        write_report(report_cfg(store, tmp_path, ["select.sweep=other"]))
    with pytest.raises(ValueError, match="formats"):
        write_report(report_cfg(store, tmp_path, ["formats=[word]"]))


def test_the_entry_point_prints_the_table(store, tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "dfd.report",
            f"tracking.uri={store}",
            "select.experiments=[dfd]",
            f"output_dir={tmp_path}",
            "plot=heatmap",
            "hydra.run.dir=" + str(tmp_path / "hydra"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert "| run | mouth | eyes | swap | mean |" in out and "| lora |" in out
    assert (tmp_path / "report.png").is_file()


def test_robustness_columns_hold_each_severitys_auc_averaged_over_targets(tmp_path):
    uri = fresh_mlflow_uri(tmp_path / "store")
    client = MlflowClient(uri)
    exp = client.create_experiment("peers")
    for name, auc in [
        ("evaluate · GenD pe_core_l14_336 (released)", 0.9),
        ("evaluate · ln (dfd)", 0.8),
    ]:
        run_id = log_run(client, exp, name, {}, auc)
        for target, shift in TARGETS.items():
            for severity, drop in (("0", 0.0), ("1", 0.1), ("2", 0.2)):
                key = f"robust/jpeg/{severity}/{target}/video_auc"
                client.log_metric(run_id, key, auc + shift - drop)
    cfg = report_cfg(
        uri, tmp_path, ["select.experiments=[peers]", "robustness_grid=true", "plot=null"]
    )
    table, _ = write_report(cfg)
    assert table.columns[-2:] == ["jpeg 1", "jpeg 2"]  # severity 0 is the clean column
    mean_shift = sum(TARGETS.values()) / len(TARGETS)
    row = dict(zip(table.columns, table.rows[0][1], strict=True))
    assert row["jpeg 2"] == pytest.approx(0.9 + mean_shift - 0.2)
    clean_only = client.get_run(log_run(client, exp, "clean only", {}, 0.5))
    with pytest.raises(ValueError, match="robustness=deepfakebench"):
        comparison_table([clean_only], robustness=True)
