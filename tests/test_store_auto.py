"""Evaluation without the decode by default: data/store=auto (stores where the disk holds them,
decoding otherwise, the size printed first), predictions written as each target is scored, and
robustness reusing the clean evaluation."""

from __future__ import annotations

from collections import namedtuple

import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from dfd.data.frames import FrameTransform
from dfd.data.store import FrameStoreError, StoreOptions, fits_on_disk, open_store, store_for
from dfd.engine.accelerator import make_accelerator
from dfd.engine.task import DetectionTask
from dfd.evaluate import _store_options
from dfd.models.build import build_detector
from dfd.report.plots import plot_results
from dfd.report.results import PredictionWriter
from dfd.scoring import robustness
from dfd.scoring.targets import TargetScoring, score_targets
from dfd.train import train
from tests.conftest import CONF_DIR, compose_train
from tests.test_bad_frames import _cfg
from tests.test_store import SPEC, _frames

Usage = namedtuple("Usage", "total used free")
GIB = 1 << 30


def test_every_protocol_defaults_to_auto_and_evaluate_to_its_targets_store():
    for data in ("demo", "ff_cross", "deepfakebench", "filelist"):
        store = compose_train([f"data={data}"]).data.store
        assert list(store.roles) == ["val", "test"] and store.when_full == "decode", data
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=["checkpoint=x"])
    # an old checkpoint trained without stores is still scored from one
    options = _store_options(cfg, OmegaConf.create({"store": {"roles": []}}))
    assert options.roles == ("test",) and options.when_full == "decode"


def test_auto_prints_the_size_then_builds_where_the_disk_holds_it(tmp_path, capsys):
    index = _frames(tmp_path / "frames")
    store = open_store(index, FrameTransform(SPEC), tmp_path / "stores", when_full="decode")
    assert store is not None and len(store) == len(index)
    printed = capsys.readouterr().out
    # 6 frames of 28 x 28 x 3 bytes, named before the build starts
    assert f"frame store of tiny ({FrameTransform(SPEC).stored_form}): 6 frames, about" in printed
    assert f"MiB, building in {tmp_path / 'stores'}" in printed


def test_auto_decodes_what_the_disk_cannot_hold_and_eval_refuses_it(tmp_path, monkeypatch, capsys):
    index = _frames(tmp_path / "frames")
    transform = FrameTransform(SPEC)
    # 1 GiB + 1 KiB free: the margin leaves nothing for a store of 6 x 2.3 KiB
    monkeypatch.setattr(
        "dfd.data.store.shutil.disk_usage", lambda p: Usage(100 * GIB, 99 * GIB, GIB + 1024)
    )
    assert not fits_on_disk(tmp_path, 6 * 28 * 28 * 3)
    auto = StoreOptions(("test",), tmp_path / "stores", "decode")
    assert store_for("test", index, transform, auto) is None
    note = capsys.readouterr().out
    assert "frame store of tiny not built: it needs about 0.0 MiB" in note
    assert "its frames are decoded from the files" in note
    assert not [p for p in (tmp_path / "stores").iterdir() if not p.name.startswith(".")]
    refuse = StoreOptions(("test",), tmp_path / "stores", "refuse")
    with pytest.raises(FrameStoreError, match=r"needs about .* MiB .*data/store=auto"):
        store_for("test", index, transform, refuse)


def test_when_full_must_be_refuse_or_decode(tmp_path):
    with pytest.raises(FrameStoreError, match=r"when_full='maybe'"):
        StoreOptions.from_config({"roles": ["test"], "folder": str(tmp_path), "when_full": "maybe"})
    options = StoreOptions.from_config({"roles": ["val"], "folder": str(tmp_path)})
    assert options.when_full == "refuse"  # an explicit store (data/store=eval, all) refuses


def test_the_default_run_reads_stores_and_equals_the_run_that_decodes(tmp_path):
    default_cfg, _ = _cfg(tmp_path / "auto", "skip")
    decoding_cfg, _ = _cfg(tmp_path / "none", "skip")
    with open_dict(decoding_cfg):
        decoding_cfg.data.store.roles = []
    assert train(default_cfg) == train(decoding_cfg)
    stores = sorted(p.name.split("-")[0] for p in (tmp_path / "auto/cache/frames").iterdir())
    assert [s for s in stores if not s.startswith(".")] == ["cdf_v2", "ff"]  # val and target
    assert not (tmp_path / "none" / "cache" / "frames").exists()
    # the per-frame predictions were written by the run, one file per target
    table = pq.read_table(tmp_path / "auto" / "run" / "predictions" / "cdf_v2.parquet")
    assert table.num_rows == 8


def test_each_target_is_written_when_it_is_scored_and_plotted_from_its_file(tmp_path):
    cfg = compose_train(["backbone.pretrained=false"])
    model, _ = build_detector(cfg)
    accelerator = make_accelerator("no", cpu=True)
    task = DetectionTask(model, objective=None)
    transform = FrameTransform(model.backbone.input_spec)
    targets = {
        name: _frames(tmp_path / name).select([True] * 6, name=name) for name in ("one", "two")
    }
    writer = PredictionWriter(tmp_path / "predictions")
    seen = []

    def sink(name, table):
        # the earlier targets' files exist already: nothing waits for the end of the run
        assert all((tmp_path / "predictions" / f"{n}.parquet").is_file() for n in seen)
        seen.append(name)
        return writer(name, table)

    setup = TargetScoring(batch_size=4, on_error="skip")
    results, predictions, lost = score_targets(task, targets, transform, accelerator, setup, sink)
    assert seen == ["one", "two"] and lost == {"one": 1, "two": 1}
    assert predictions == {n: tmp_path / "predictions" / f"{n}.parquet" for n in seen}
    assert pq.read_table(predictions["two"]).num_rows == 6
    paths = plot_results(predictions, results, tmp_path / "plots")
    assert sorted(p.name for p in paths) == ["hist_one.png", "hist_two.png", "roc_targets.png"]


def test_robustness_reuses_the_clean_evaluation(monkeypatch):
    passes = []

    def score_pass(task, targets, transform, accelerator, setup, desc):
        passes.append(desc)
        return {t: {"video_auc": 0.5} for t in targets}

    monkeypatch.setattr(robustness, "score_pass", score_pass)
    perturbations = robustness.build_perturbations(
        OmegaConf.create(
            {
                "perturbations": {
                    "jpeg": {
                        "perturbation": {
                            "_target_": "dfd.data.perturb.JpegCompression",
                            "_partial_": True,
                        },
                        "parameter": "quality",
                        "levels": [90, 50],
                    }
                }
            }
        )
    )
    targets = {"a": None, "b": None}
    clean = {"a": {"video_auc": 0.9}, "b": {"video_auc": 0.8}}
    setup = TargetScoring(batch_size=4)
    res = robustness.evaluate_robustness(None, targets, None, None, perturbations, setup, clean)
    assert passes == ["jpeg 1", "jpeg 2"]  # no clean pass: severity 0 is the evaluation's
    assert res.results["jpeg"]["0"] == clean
    robustness.evaluate_robustness(None, targets, None, None, perturbations, setup)
    assert passes[2:] == ["clean", "jpeg 1", "jpeg 2"]
