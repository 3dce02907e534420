"""Run names and tags: what tells two runs apart in MLflow."""

from __future__ import annotations

import random

import pytest

import dfd
from dfd.runtime.protocol import data_hash
from dfd.runtime.run_info import experiment_of, git_commit, run_name, run_tags
from tests.conftest import compose_train


@pytest.mark.parametrize(
    ("overrides", "experiment", "name"),
    [
        (["peft=ln", "loss=hypersphere", "data=demo"], None, "ln · hypersphere · demo"),
        ([], None, "defaults"),
        (["experiment=ablation_lora", "seed=1"], None, "ablation_lora · seed=1"),
        (["seed=1", "peft=lora"], "ablation_ln", "ablation_ln · seed=1 · lora"),
        (["trainer.optimizer.lr=1e-3", "loss.slerp=false"], None, "lr=1e-3 · slerp=false"),
        (["~data.test.eyes", "+head.scale=8"], None, "~eyes · scale=8"),
        # where a run writes and how it is tracked never names it
        (["paths.output_root=/tmp/x", "tracking.uri=sqlite:///a.db", "peft=full"], None, "full"),
        # a later value of the same key replaces the earlier one
        (["peft=lora", "peft=full"], None, "full"),
    ],
)
def test_a_run_is_named_by_what_its_overrides_change(overrides, experiment, name):
    assert run_name(overrides, experiment) == name


def test_two_runs_with_different_overrides_get_different_names_whatever_the_rng():
    random.seed(0)
    a = run_name(["peft=ln"])
    random.seed(0)
    b = run_name(["peft=lora"])
    assert a != b and run_name(["peft=ln"]) == a  # deterministic, not drawn


def test_a_long_name_is_cut_short():
    name = run_name(["peft=lora", "data=" + "x" * 200])
    assert len(name) == 80 and name.endswith("…")


def test_a_malformed_override_fails_naming_it():
    with pytest.raises(ValueError, match="peft=="):
        run_name(["peft=="])


def test_the_tags_say_what_made_the_run(tmp_path):
    overrides = ["experiment=ablation_ln", "backbone=tiny_clip", "data=demo", "trainer=default"]
    tags = run_tags(compose_train(overrides, tmp_path), overrides)
    assert tags["dfd.overrides"] == " ".join(overrides)
    assert tags["dfd.experiment"] == "ablation_ln" == experiment_of(overrides)
    assert tags["dfd.data"] == "demo" and tags["dfd.data.source"] == "source"
    assert tags["dfd.data.targets"] == "mouth,eyes,swap,jpeg"
    # the rule and the set that select (issue 19: the tag names both, no longer just "val")
    assert tags["dfd.selection.split"] == "source_val (data.val)"
    assert tags["dfd.selection"] == "source_val" and tags["dfd.selection.leaky"] == "false"
    assert tags["dfd.selection.monitor"] == "video_auc"
    assert tags["dfd.data.hash"] == data_hash(compose_train(overrides, tmp_path))
    assert tags["dfd.version"] == dfd.__version__
    assert all(isinstance(v, str) for v in tags.values())
    commit = git_commit()
    if commit is not None:  # this checkout is a git worktree
        assert tags["dfd.git_commit"] == commit and len(commit.split("-")[0]) == 40


def test_a_plain_run_is_tagged_with_no_experiment(tmp_path):
    tags = run_tags(compose_train([], tmp_path), [])
    assert tags["dfd.experiment"] == "none" and tags["dfd.overrides"] == ""


def test_an_evaluation_is_named_by_its_checkpoint_and_what_it_measures(tmp_path):
    from dfd.evaluate import evaluation_name

    ckpt = tmp_path / "runs" / "2026-12-06" / "06-13-23" / "checkpoint"
    overrides = [
        f"checkpoint={ckpt}",
        "robustness=deepfakebench",
        "data=ff_cross",
        "paths.data_dir=/data",  # where, not what: left out
        "num_workers=4",
        "store.roles=[test]",
        "threads=1",
        "precision=bf16",
        "robustness.perturbations.jpeg.levels=[50]",
    ]
    assert evaluation_name(ckpt, overrides) == (
        "evaluate · 2026-12-06/06-13-23 · robustness=deepfakebench · data=ff_cross · "
        "precision=bf16 · levels=[50]"
    )
    # a folder that is not a run's checkpoint/ (dfd.convert's output) by its name; nothing
    # changed: just the checkpoint
    assert evaluation_name(tmp_path / "authors", ["checkpoint=x"]) == "evaluate · authors"
    assert evaluation_name(ckpt, []) == "evaluate · 2026-12-06/06-13-23"
