"""Selection protocols (source_val, heldout, test_set) and protocol identity: the rule and the
set that select a checkpoint, held-out sets checked against the test lists, leaky selection
marked wherever its numbers go, and the data config's hash."""

from __future__ import annotations

import json
import os

import mlflow
import pytest
from hydra import compose, initialize_config_dir
from mlflow import MlflowClient
from omegaconf import open_dict

from dfd.data.index import FrameIndex
from dfd.data.selection import check_disjoint, pool
from dfd.evaluate import evaluate_checkpoint
from dfd.report.compare import comparison_table
from dfd.report.tables import to_csv, to_latex, to_markdown
from dfd.runtime.protocol import data_hash, protocol_record, selection_rule
from dfd.sweep.compose import check_grid, train_config_source
from dfd.sweep.run import run_sweep
from dfd.sweep.space import parse_grid
from dfd.train import train
from tests.conftest import CONF_DIR, compose_train, fresh_mlflow_uri, small_run_overrides

LEAKY = ["selection=test_set", "selection.target=swap"]


# ---- the rule, from the config alone ----------------------------------------------------------
def test_each_rule_names_its_sets_and_only_test_set_is_leaky(tmp_path):
    rules = {
        name: selection_rule(compose_train(overrides, tmp_path))
        for name, overrides in [
            ("default", []),
            ("heldout", ["selection=heldout"]),
            ("test_set", LEAKY),
        ]
    }
    assert rules["default"].describe() == "source_val (data.val)"
    assert rules["heldout"].describe() == "heldout (data.heldout.mouth, data.heldout.swap)"
    assert rules["test_set"].describe() == "test_set (data.test.swap)"
    assert [r.leaky for r in rules.values()] == [False, False, True]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["selection=test_set"], r"selection.target=<one of \['mouth', 'eyes', 'swap', 'jpeg'\]>"),
        (["selection=test_set", "selection.target=cdf"], "selection.target=cdf: not a test target"),
        (["selection=heldout", "~data.heldout"], "no data.heldout sets"),
        (["selection.name=best"], "selection.name=best: unknown rule"),
    ],
)
def test_a_bad_selection_fails_naming_the_key(overrides, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        selection_rule(compose_train(overrides, tmp_path))


# ---- protocol identity ----------------------------------------------------------------------
def test_the_data_hash_names_the_protocol_not_the_machine(tmp_path):
    base = data_hash(compose_train([], tmp_path))
    assert len(base) == 12 and int(base, 16) >= 0
    same = [
        ["paths.data_dir=/other/machine", "paths.cache_dir=/scratch/cache"],
        ["data/sampler=paired", "data/store=eval", "data.verify=decode"],
        ["selection=heldout", "trainer.max_epochs=3"],  # not the data config
    ]
    for overrides in same:
        assert data_hash(compose_train(overrides, tmp_path)) == base, overrides
    different = [
        ["data.frames_per_video.eval=1"],
        ["~data.test.eyes"],
        ["data.heldout.swap.split=test"],
        ["data.root=/somewhere/else"],  # a location given by hand may hold other data
        ["data=ff_cross"],
    ]
    for overrides in different:
        assert data_hash(compose_train(overrides, tmp_path)) != base, overrides
    record = protocol_record(compose_train(LEAKY, tmp_path))
    assert record == {
        "data": "demo",
        "data_hash": base,
        "selection": {
            "rule": "test_set",
            "sets": ["data.test.swap"],
            "leaky": True,
            "target": "swap",
        },
    }


# ---- held-out sets against the test lists --------------------------------------------------
def _index(name, root, videos, frames=2, flat=False):
    rows = []
    for v in videos:
        label = int(v.startswith("fake"))
        for f in range(frames):
            folder = root if flat else root / v
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / (f"{v.replace('/', '_')}_{f}.png" if flat else f"{f:03d}.png")
            path.touch()
            rows.append(
                {
                    "path": str(path),
                    "label": label,
                    "video_id": v,
                    "source": v.split("/")[0],
                    "split": "x",
                }
            )
    return FrameIndex.from_rows(name, rows)


def test_a_held_out_video_found_in_a_test_list_is_refused_naming_both(tmp_path):
    test = _index("cdf", tmp_path / "cdf", ["real/000", "fake/001"])
    # the same folder reached through a symlink, under another dataset name and video id
    os.symlink(tmp_path / "cdf", tmp_path / "link")
    heldout = _index("cdf_val", tmp_path / "link", ["real/000"])
    with pytest.raises(ValueError) as err:
        check_disjoint({"data.heldout.cdf": heldout}, {"data.test.cdf": test})
    message = str(err.value)
    assert "\n" not in message
    assert (
        "video 'real/000' of data.heldout.cdf is also video 'real/000' of data.test.cdf" in message
    )
    assert "same frame file" in message and str(tmp_path / "cdf" / "real" / "000") in message


def test_other_frames_of_a_test_videos_folder_are_the_same_video(tmp_path):
    test = _index("ffiw", tmp_path / "ffiw", ["real/007"], frames=2)
    # a held-out list sampling other frames (e.g. random-32 beside uniform-32) of that video
    (tmp_path / "ffiw" / "real" / "007" / "031.png").touch()
    rows = [
        {
            "path": str(tmp_path / "ffiw/real/007/031.png"),
            "label": 0,
            "video_id": "v7",
            "source": "real",
            "split": "val",
        }
    ]
    heldout = FrameIndex.from_rows("ffiw_val", rows)
    with pytest.raises(ValueError, match=r"'v7' of data.heldout.ffiw .*same frame folder"):
        check_disjoint({"data.heldout.ffiw": heldout}, {"data.test.ffiw": test})


def test_same_id_of_the_same_dataset_is_the_same_video(tmp_path):
    test = _index("deepspeak", tmp_path / "a", ["fake/abc"])
    heldout = _index("deepspeak", tmp_path / "b", ["fake/abc"])  # re-cropped elsewhere
    with pytest.raises(ValueError, match="same video id in dataset 'deepspeak'"):
        check_disjoint({"data.heldout.ds": heldout}, {"data.test.ds": test})


def test_distinct_videos_pass_even_with_equal_ids_or_a_shared_flat_folder(tmp_path):
    # an id is unique per dataset only: another dataset's `real/000` is another video
    test = _index("cdf", tmp_path / "cdf", ["real/000", "fake/001"])
    other = _index("dfdc", tmp_path / "dfdc", ["real/000"])
    # images of many one-frame videos in one flat folder: the folder identifies none of them
    flat_test = _index("imgs", tmp_path / "flat", ["real/a", "fake/b"], frames=1, flat=True)
    flat_held = _index("imgs_val", tmp_path / "flat", ["real/c"], frames=1, flat=True)
    check_disjoint(
        {"data.heldout.dfdc": other, "data.heldout.imgs": flat_held},
        {"data.test.cdf": test, "data.test.imgs": flat_test},
    )
    pooled = pool({"data.heldout.dfdc": other, "data.heldout.imgs": flat_held}, "heldout")
    assert pooled.video_ids == ["dfdc/real/000"] * 2 + ["imgs/real/c"]
    assert pooled.name == "heldout" and len(pooled) == 3


def test_the_demo_refuses_a_held_out_set_that_reaches_into_a_test_list(tmp_path, demo_cache):
    # the held-out swap set given the swap test split too: refused at start, before any run,
    # in one line (what `dfd.runtime.cli.entry_point` prints) naming the video and both sets
    overrides = ["selection=heldout", "data.heldout.swap.split=[val,test]"]
    cfg = compose_train([*overrides, *small_run_overrides(tmp_path, demo_cache)], tmp_path)
    with pytest.raises(ValueError) as err:
        train(cfg)
    message = str(err.value)
    assert "\n" not in message and not getattr(err.value, "__notes__", None)
    assert "video 'real/000' of data.heldout.swap is also video 'real/000' of data.test.swap" in (
        message
    )
    assert mlflow.MlflowClient(cfg.tracking.uri).search_runs(["0"]) == []


# ---- end to end on the demo -----------------------------------------------------------------
def _only_run(uri):
    runs = mlflow.MlflowClient(uri).search_runs(
        [mlflow.MlflowClient(uri).get_experiment_by_name("dfd").experiment_id]
    )
    assert len(runs) == 1
    return runs[0]


def test_selecting_on_a_test_target_runs_and_is_marked_leaky_everywhere(tmp_path, demo_cache):
    cfg = compose_train([*LEAKY, *small_run_overrides(tmp_path, demo_cache)], tmp_path)
    results = train(cfg)
    # the selection set IS the swap target: the selected epoch's value is its test AUC
    assert results["val"]["video_auc"] == pytest.approx(results["test"]["swap"]["video_auc"])
    assert results["protocol"]["selection"]["leaky"] is True
    assert json.loads((tmp_path / "metrics.json").read_text())["protocol"] == results["protocol"]

    run = _only_run(cfg.tracking.uri)
    tags = run.data.tags
    assert tags["dfd.selection.leaky"] == "true" and tags["dfd.selection"] == "test_set"
    assert tags["dfd.selection.split"] == "test_set (data.test.swap)"
    assert tags["dfd.data.hash"] == results["protocol"]["data_hash"]
    assert tags["mlflow.note.content"].startswith("† LEAKY")

    markdown = (tmp_path / "results" / "results.md").read_text()
    assert "| swap † |" in markdown and "| mean † |" in markdown and "| pooled † |" in markdown
    assert "| mouth |" in markdown  # another target: its row is not marked
    assert "† leaky: the checkpoint was selected on test target swap" in markdown

    # dfd.report: the run's row carries the dagger and the footnote in every format
    table = comparison_table([run])
    label = table.rows[0][0]
    assert label.endswith(" †")
    assert "selected on test target swap" in to_markdown(table)
    assert r"$^\dagger$" in to_latex(table) and "selected on test target swap" in to_latex(table)
    assert label in to_csv(table)

    # its checkpoint stays leaky wherever it is scored; the val threshold travels with it
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        ecfg = compose(
            config_name="evaluate",
            overrides=[f"checkpoint={tmp_path / 'checkpoint'}", "tracking=none"],
        )
    with open_dict(ecfg):
        ecfg.paths.output_dir = str(tmp_path / "eval")
    evaluated = evaluate_checkpoint(ecfg)
    assert evaluated["protocol"] == results["protocol"]
    for target, metrics in results["test"].items():
        for key in ("video_acc_at_val_eer", "frame_acc_at_val_eer", "video_auc_ci_low"):
            assert evaluated["test"][target][key] == pytest.approx(metrics[key]), (target, key)


def test_selecting_on_the_pooled_held_out_sets_runs(tmp_path, demo_cache):
    cfg = compose_train(["selection=heldout", *small_run_overrides(tmp_path, demo_cache)], tmp_path)
    results = train(cfg)
    run = _only_run(cfg.tracking.uri)
    assert run.data.tags["dfd.selection.split"] == "heldout (data.heldout.mouth, data.heldout.swap)"
    assert run.data.tags["dfd.selection.leaky"] == "false"
    # the selection set: 10 held-out identities of mouth and of swap, a real and a fake each
    assert int(run.data.params["data/val/videos"]) == 40
    assert results["val"]["n_videos"] == 40
    assert "†" not in (tmp_path / "results" / "results.md").read_text()


# ---- a sweep never optimizes a test set -------------------------------------------------------
def test_a_sweep_refuses_test_set_selection_as_its_objective(tmp_path, demo_cache):
    with initialize_sweep(tmp_path, demo_cache) as cfg:
        with open_dict(cfg):
            cfg.overrides = LEAKY
        with pytest.raises(ValueError, match="dfd.sweep refuses it as its objective"):
            run_sweep(cfg)
    assert not (tmp_path / "trials").exists()
    # nor may a grid row set it
    points = parse_grid({"fair": [], "leak": LEAKY}, [0])
    with train_config_source(), pytest.raises(ValueError, match="sweep.rows.leak cannot train"):
        check_grid(points, [f"paths.output_dir={tmp_path}"])


class initialize_sweep:
    """The composed sweep config of `demo_ablation` with outputs under `tmp`."""

    def __init__(self, tmp, cache):
        self.tmp, self.cache = tmp, cache

    def __enter__(self):
        from hydra import compose, initialize_config_dir

        self._ctx = initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3")
        self._ctx.__enter__()
        cfg = compose(
            config_name="sweep",
            overrides=[f"paths.output_root={self.tmp}", f"paths.cache_dir={self.cache}"],
        )
        with open_dict(cfg):
            cfg.paths.output_dir = str(self.tmp)
        return cfg

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def test_the_report_shows_each_targets_interval_and_the_pooled_column(tmp_path):
    uri = fresh_mlflow_uri(tmp_path)
    client = MlflowClient(uri)
    exp = client.create_experiment("dfd")
    run = client.create_run(exp, run_name="ln").info.run_id
    for key, value in {
        "test/mouth/video_auc": 0.6,
        "test/mouth/video_auc_ci_low": 0.5,
        "test/mouth/video_auc_ci_high": 0.7,
        "test/mean/video_auc": 0.6,
        "test/pooled/video_auc": 0.65,
        "test/pooled/video_auc_ci_low": 0.6,
        "test/pooled/video_auc_ci_high": 0.7,
    }.items():
        client.log_metric(run, key, value)
    client.set_terminated(run)
    table = comparison_table([client.get_run(run)])
    assert table.columns == ["mouth", "mean", "pooled"]
    markdown = to_markdown(table)
    assert "| ln | 0.6000 [0.5000, 0.7000] | 0.6000 | 0.6500 [0.6000, 0.7000] |" in markdown
    assert to_csv(table).splitlines()[0] == (
        "run,mouth,mouth_ci_low,mouth_ci_high,mean,pooled,pooled_ci_low,pooled_ci_high"
    )
    assert not table.notes
