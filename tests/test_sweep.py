"""Optuna sweeps: real short studies on the demo (a grid ablation, a search with an invalid
pair), pruning through a training callback, shipped sweeps, documented overrides."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import mlflow
import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from dfd.runtime.redact import redact
from dfd.sweep.compose import check_grid, check_space, path_overrides, train_config_source
from dfd.sweep.run import is_grid, run_sweep
from dfd.sweep.space import override_value, parse_grid, parse_space
from tests.conftest import CONF_DIR, fresh_mlflow_uri

SWEEPS = sorted(p.stem for p in (CONF_DIR.parent / "sweeps").glob("*.yaml"))
ROOT = CONF_DIR.parent


def compose_sweep(overrides: list[str], output_dir: Path) -> DictConfig:
    """The composed `conf/sweep.yaml`, as `python -m dfd.sweep <overrides>` would see it."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="sweep", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """The Optuna and MLflow sqlite stores (`paths.output_root`) of the module's studies, each
    test its own study and experiment; the MLflow store starts as the session's initialized copy."""
    folder = tmp_path_factory.mktemp("store")
    fresh_mlflow_uri(folder)  # the sweep's default tracking.uri: <output_root>/mlflow.db
    return folder


def tiny_sweep(tmp: Path, cache: Path, store: Path, sweep: dict) -> DictConfig:
    """A seconds-long sweep config: study and MLflow runs in `store` under experiment and study
    `sweep["study_name"]`, the sweep's and trials' folders under `tmp`."""
    cfg = compose_sweep([f"paths.output_root={store}", f"paths.cache_dir={cache}"], tmp)
    base = [
        "trainer.max_epochs=1",
        "trainer.max_steps=2",
        "trainer.batch_size=8",
        "trainer.eval_batch_size=128",
        "data.frames_per_video.train=1",
        "data.frames_per_video.eval=1",
        "~data.test.eyes",  # two targets still make a mean
        "~data.test.jpeg",
        "tracking.log_plots=false",
        "tracking.log_model=none",
        f"tracking.experiment={sweep['study_name']}",
    ]
    with open_dict(cfg):
        search = {
            "sampler": {"_target_": "optuna.samplers.TPESampler", "seed": 0},
            "pruner": {"_target_": "optuna.pruners.NopPruner"},
        }
        cfg.sweep = OmegaConf.create(
            {
                "direction": "maximize",
                # a grid fixes its points and never prunes: no sampler, no pruner
                **({} if "rows" in sweep else search),
                "base_overrides": base,
                **sweep,
            }
        )
    return cfg


def _runs(store: Path, experiment: str) -> dict[str, mlflow.entities.Run]:
    mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
    runs = mlflow.search_runs(experiment_names=[experiment], output_format="list")
    return {r.info.run_id: r for r in runs}


@pytest.mark.slow
def test_a_demo_study_scores_source_val_and_prunes_an_invalid_pair(tmp_path, demo_cache, store):
    cfg = tiny_sweep(
        tmp_path,
        demo_cache,
        store,
        {
            "study_name": "tiny",
            "n_trials": 3,
            # head x loss unconstrained on purpose: hypersphere with a linear head cannot train
            "space": {"head": ["linear", "linear_norm"], "loss": ["ce", "hypersphere"]},
            "enqueue": [
                {"head": "linear_norm", "loss": "hypersphere"},
                {"head": "linear", "loss": "hypersphere"},
                {"head": "linear", "loss": "ce"},
            ],
        },
    )
    run_sweep(cfg)

    assert cfg.storage == f"sqlite:///{store}/optuna.db"
    study = optuna.load_study(study_name="tiny", storage=cfg.storage)
    by_state = {s: study.get_trials(states=(s,)) for s in optuna.trial.TrialState}
    complete, pruned = (
        by_state[optuna.trial.TrialState.COMPLETE],
        by_state[optuna.trial.TrialState.PRUNED],
    )
    assert len(complete) == 2 and len(pruned) == 1 and len(study.trials) == 3

    # the invalid pair is reported with its reason and no value, and never trained
    bad = pruned[0]
    assert bad.params == {"head": "linear", "loss": "hypersphere"} and bad.value is None
    assert "invalid combination" in bad.user_attrs["reason"]
    assert "head=linear_norm" in bad.user_attrs["reason"]
    assert "mlflow_run_id" not in bad.user_attrs

    runs = _runs(store, "tiny")
    (parent,) = [r for r in runs.values() if r.data.tags.get("dfd.role") == "sweep"]
    for trial in complete:
        run = runs[trial.user_attrs["mlflow_run_id"]]
        # the value that drove the search is the source-val metric the run selected on
        selected = int(run.data.params["selected_epoch"])
        history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val/video_auc")
        assert trial.value == pytest.approx(next(m.value for m in history if m.step == selected))
        # the target AUC is recorded beside it, from the same run
        assert trial.user_attrs["test/mean/video_auc"] == pytest.approx(
            run.data.metrics["test/mean/video_auc"]
        )
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["optuna.study_name"] == "tiny"
        assert run.data.tags["optuna.trial_number"] == str(trial.number)
        # named by its configuration, never by MLflow's seeded random words
        assert (
            run.info.run_name
            == f"tiny #{trial.number} · {trial.params['head']} · {trial.params['loss']}"
        )
        assert trial.user_attrs["label"] == f"{trial.params['head']} · {trial.params['loss']}"
        assert run.data.params["head._target_"].endswith(
            {"linear": "LinearHead", "linear_norm": "LinearNormHead"}[trial.params["head"]]
        )
        assert (tmp_path / "trials" / f"{trial.number:03d}" / "checkpoint").is_dir()
    assert len(runs) == 3  # the parent and one run per trained trial

    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_trial/val/video_auc"] == pytest.approx(study.best_value)
    assert parent.data.params["best_trial/number"] == str(study.best_trial.number)
    client = mlflow.MlflowClient()
    logged = {a.path for a in client.list_artifacts(parent.info.run_id)}
    logged |= {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    for name in ["trials.csv", "plots/optimization_history.png", "plots/val_vs_target.png"]:
        assert name in logged
    # two complete trials say nothing about importances: no such plot
    assert "plots/param_importances.png" not in logged
    assert study.metric_names == ["val/video_auc"]

    with (tmp_path / "trials.csv").open() as f:
        rows = {int(r["trial"]): r for r in csv.DictReader(f)}
    assert rows[bad.number]["state"] == "PRUNED" and rows[bad.number]["val/video_auc"] == ""
    for trial in complete:
        assert float(rows[trial.number]["val/video_auc"]) == pytest.approx(trial.value)
        assert float(rows[trial.number]["test/mean/video_auc"]) == pytest.approx(
            trial.user_attrs["test/mean/video_auc"]
        )


@pytest.mark.slow
def test_a_grid_ablation_trains_every_row_over_seeds_and_tables_them(tmp_path, demo_cache, store):
    cfg = tiny_sweep(
        tmp_path,
        demo_cache,
        store,
        {
            "study_name": "grid",
            "rows": {"ln": ["peft=ln"], "probe": ["peft=linear_probe", "head=linear", "loss=ce"]},
            "seeds": [0, 1],
            "reference": "ln",
            "bootstrap": 100,
        },
    )
    run_sweep(cfg)
    study = optuna.load_study(study_name="grid", storage=cfg.storage)
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert sorted(t.user_attrs["point"] for t in done) == [
        "ln/seed=0",
        "ln/seed=1",
        "probe/seed=0",
        "probe/seed=1",
    ]
    runs = _runs(store, "grid")
    for trial in done:
        run = runs[trial.user_attrs["mlflow_run_id"]]
        row, seed = trial.params["row"], trial.params["seed"]
        assert run.info.run_name == f"{row} · seed={seed}"
        assert run.data.tags["dfd.sweep.row"] == row and run.data.params["seed"] == str(seed)
        assert run.info.status == "FINISHED"
    # seeds differ: the two runs of a row are two measurements
    ln = [t for t in done if t.params["row"] == "ln"]
    assert ln[0].user_attrs["test/mouth/video_auc"] != ln[1].user_attrs["test/mouth/video_auc"]

    summary = (tmp_path / "ablation.md").read_text().splitlines()
    assert summary[0].startswith(
        "| row | seeds | val video_auc | mouth | swap | mean | Δ mean vs ln"
    )
    assert summary[2].startswith("| ln (reference) | 2 | ") and " ± " in summary[2]
    probe = summary[3]
    assert probe.startswith("| probe | 2 | ")
    assert re.search(r"\| [+-]\d\.\d{4} \[[+-]\d\.\d{4}, [+-]\d\.\d{4}\] \|$", probe), probe
    (parent,) = [r for r in runs.values() if r.data.tags.get("dfd.role") == "sweep"]
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id)}
    logged |= {a.path for a in mlflow.MlflowClient().list_artifacts(parent.info.run_id, "plots")}
    assert {"ablation.md", "ablation.csv", "ablation.tex", "plots/ablation.png"} <= logged
    # rerunning the finished grid trains nothing more
    run_sweep(cfg)
    assert len(optuna.load_study(study_name="grid", storage=cfg.storage).trials) == 4


def test_the_pruner_stops_a_trial_and_its_run_ends_killed(tmp_path, demo_cache, store):
    cfg = tiny_sweep(
        tmp_path,
        demo_cache,
        store,
        {
            "study_name": "pruned",
            "n_trials": 1,
            # an AUC never reaches 2: pruned at the first report, the untrained epoch 0
            "pruner": {"_target_": "optuna.pruners.ThresholdPruner", "lower": 2.0},
            "space": {"trainer.optimizer.lr": {"low": 1.0e-3, "high": 1.0e-2, "log": True}},
        },
    )
    run_sweep(cfg)
    (trial,) = optuna.load_study(study_name="pruned", storage=cfg.storage).trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert "after epoch 0" in trial.user_attrs["reason"]
    run = _runs(store, "pruned")[trial.user_attrs["mlflow_run_id"]]
    assert run.info.status == "KILLED" and "pruner" in run.data.tags["dfd.stopped"]


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("name", SWEEPS)
def test_every_shipped_sweep_composes_with_every_choice(name, tmp_path):
    cfg = compose_sweep([f"sweep={name}"], tmp_path)
    shared = [*path_overrides(cfg.paths, tmp_path), *cfg.sweep.base_overrides]
    assert cfg.sweep.direction == "maximize"
    with train_config_source():
        if is_grid(cfg.sweep):
            points = parse_grid(cfg.sweep.rows, cfg.sweep.seeds)
            assert len(cfg.sweep.seeds) >= 2 and cfg.sweep.reference in cfg.sweep.rows
            check_grid(points, shared)  # every row composes and can train
        else:
            params = parse_space(cfg.sweep.space)
            assert cfg.sweep.n_trials > 0 and params
            check_space(params, shared, cfg.sweep.get("enqueue") or [])
            assert isinstance(instantiate(cfg.sweep.sampler), optuna.samplers.TPESampler)
            assert isinstance(instantiate(cfg.sweep.pruner), optuna.pruners.BasePruner)


def test_the_ablations_are_the_papers_rows_from_experiments(tmp_path):
    files = {p.stem for p in (ROOT / "experiments").glob("*.yaml")}
    papers_rows = {
        "ablation_linear_probe",
        "ablation_ln",
        "ablation_ln_norm",
        "ablation_ln_norm_unif_align",
        "paper",
        "ablation_lora",
        "ablation_full_finetune",
    }
    for name in ["demo_ablation", "paper_ablation"]:
        cfg = compose_sweep([f"sweep={name}"], tmp_path)
        used = {o.split("=", 1)[1] for ovs in cfg.sweep.rows.values() for o in ovs}
        assert used == papers_rows and used <= files, name
        assert "pruner" not in cfg.sweep  # an ablation row is never pruned


def test_the_paper_search_runs_the_papers_protocol(tmp_path):
    cfg = compose_sweep(["sweep=paper_search"], tmp_path)
    assert "experiment=paper" in cfg.sweep.base_overrides
    assert set(parse_space(cfg.sweep.space)[0].choices) == {"ln", "lora", "full", "linear_probe"}


def test_the_documented_overrides_form_parses():
    # the `overrides=[...]` examples of the docs, as a shell passes them to Hydra
    docs = [ROOT / "sweeps" / "README.md", ROOT / "conf" / "sweep.yaml", ROOT / "README.md"]
    examples = [m for p in docs for m in re.findall(r"'(overrides=\[.*?\])'", p.read_text())]
    assert examples
    parser = OverridesParser.create()
    for example in examples:
        values = parser.parse_override(example).value()
        assert values and all("=" in v for v in values), example


def test_a_sweep_file_is_either_a_grid_or_a_search():
    with pytest.raises(ValueError, match="not both"):
        is_grid(OmegaConf.create({"study_name": "x", "rows": {"a": []}, "space": {"peft": ["ln"]}}))
    with pytest.raises(ValueError, match="not neither"):
        is_grid(OmegaConf.create({"study_name": "x"}))


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"loss.slerp": {"choices": [True], "when": {"loss": "hypersphere"}}}, "listed before"),
        (
            {"loss": ["ce"], "loss.slerp": {"choices": [True], "when": {"loss": "hyper"}}},
            "never takes",
        ),
        ({"lr": {"low": 0.0, "high": 1.0, "log": True}}, "sweep.space.lr"),
        ({"peft": {"options": ["ln"]}}, "unknown keys"),
        ({"peft": []}, "empty"),
    ],
)
def test_a_malformed_space_fails_naming_the_entry(space, message):
    with pytest.raises(ValueError, match=message):
        parse_space(space)


def test_a_misspelled_choice_fails_before_any_training(tmp_path):
    params = parse_space({"peft": ["ln", "lnn"]})
    with train_config_source(), pytest.raises(ValueError, match=r"sweep.space.peft='lnn'"):
        check_space(params, [f"paths.output_dir={tmp_path}"], [])


@pytest.mark.parametrize(
    "value", ["/data/my faces", "it's", "C:\\data\\", "a,b=c", "[x]", 1e-05, 0.1, 3, True, None]
)
def test_values_reach_the_train_config_unchanged(value):
    # sampled values and the sweep's paths become override strings: Hydra must read them back
    assert OverridesParser.create().parse_override("k=" + override_value(value)).value() == value


def test_a_shared_storage_password_is_never_logged():
    # the sweep's config, storage URL included, becomes the parent run's MLflow params
    assert (
        redact("postgresql://user:s3cret@db:5432/optuna") == "postgresql://user:***@db:5432/optuna"
    )
    assert redact("'tracking.uri=http://me:p@ss@host:5000/x'") == (
        "'tracking.uri=http://me:***@host:5000/x'"
    )
    assert redact("sqlite:////abs/optuna.db http://host:5000") == (
        "sqlite:////abs/optuna.db http://host:5000"
    )


def test_a_sweep_without_its_data_stops_before_any_trial(tmp_path):
    # paper_ablation's rows read FF++ and the other targets under paths.data_dir
    cfg = compose_sweep(
        ["sweep=paper_ablation", f"paths.output_root={tmp_path}", f"paths.data_dir={tmp_path}"],
        tmp_path / "sweep",
    )
    with pytest.raises(ValueError, match=r"^sweep.rows.linear_probe: .*ff_c23 does not exist"):
        run_sweep(cfg)
    assert not (tmp_path / "optuna.db").exists()  # no study, no trial
