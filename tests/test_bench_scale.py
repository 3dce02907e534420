"""`python -m dfd.bench sections=[scale]`: every stage of a real run at every size; nothing here
is timed. The sizes are tiny (one FF++ pair, two target videos, one frame per video): the
tests check that the section measures what it says and reports it, not how fast anything is.
"""

from __future__ import annotations

import json
import math

import pytest
from mlflow import MlflowClient

from dfd.bench.memory import StageFailed, isolated
from dfd.bench.runner import run_bench
from dfd.bench.stages import STAGES
from dfd.bench.suite import SUITE_STAGES
from dfd.bench.synthetic import BenchmarkSize, write_benchmark
from dfd.data.readers import read_cdf_v2, read_dfdc, read_ff
from tests.conftest import fresh_mlflow_uri
from tests.memory_workers import allocate, fail
from tests.test_bench import compose_bench

TINY_SCALE = [
    "sections=[scale]",
    "scale.factors=[1,2]",
    "scale.base.train_pairs=1",
    "scale.base.eval_pairs=1",
    "scale.base.target_videos=2",
    "scale.base.frames=2",
    "scale.crop_size=48",
    "scale.isolate=false",
    "scale.suite.targets=2",
    "scale.suite.frames=256",
    "scale.suite.frames_per_video=8",
    "cpu=true",
]


@pytest.mark.slow
def test_the_scale_section_measures_every_stage_at_every_size(tmp_path, capsys):
    uri = fresh_mlflow_uri(tmp_path)
    # the bench's own run and the measured runs (an experiment per size) in one store
    overrides = [*TINY_SCALE, "tracking=mlflow", f"tracking.uri={uri}", f"scale.tracking_uri={uri}"]
    cfg = compose_bench(overrides, tmp_path / "run")
    # the measured run's batch: the smallest size has 20 training frames, fewer than 32; the
    # plots stage draws them, the logging stage need not draw them again
    cfg.scale.overrides += ["trainer.batch_size=4", "tracking.log_plots=false"]
    res = run_bench(cfg).scale

    expected = [s.key for s in STAGES if s.needs is None] + [
        s.key for s in STAGES if s.needs and s.key not in res.skipped
    ]
    assert sorted(res.stages) == sorted(expected)
    for key, by_size in res.stages.items():
        assert sorted(by_size) == [1, 2], key
        for record in by_size.values():
            # a stage run as a command of its own (dfd.datasets) has only its process's peak
            own_process = record["method"].startswith("ru_maxrss")
            for figure in ("seconds", "cpu_seconds", "peak_rss_mib", "growth_mib"):
                if figure == "growth_mib" and own_process:
                    assert math.isnan(record[figure]), key
                    continue
                assert math.isfinite(record[figure]) and record[figure] >= 0, (key, figure)
            assert record["seconds"] > 0 and record["peak_rss_mib"] > 0
        assert math.isfinite(res.exponent(key)) and math.isfinite(res.exponent(key, "cpu_seconds"))
    # the sizes are what the run read: twice the videos at x2
    assert res.frames[2]["train"] == 2 * res.frames[1]["train"] == 40
    assert {r["frames"] for r in res.stages["train_epoch"].values()} == {20, 40}
    assert set(res.savings()) == {
        "2nd evaluation / 1st (stores built)",
        "2nd evaluation / evaluation decoding PNGs",
        "2nd evaluation's frame loading / loading by decoding",
        "robustness pass 2 / pass 1",
    }
    assert sorted(res.suite) == sorted(s.key for s in SUITE_STAGES)
    assert res.suite["suite_predictions"]["frames"] == 256
    memory = res.suite_memory()
    assert memory["main"] >= memory["other"] > 0

    printed = capsys.readouterr().out
    assert "(e) scale" in printed
    for stage in STAGES:
        assert stage.label in printed
    assert "2nd evaluation / 1st (stores built): x1" in printed
    assert "memory beyond the model" in printed
    assert not (tmp_path / "run" / "scale").exists(), "the size folders are removed unless kept"

    record = json.loads((tmp_path / "run" / "bench.json").read_text())
    assert set(record["scale"]["stages"]) == set(res.stages)
    client = MlflowClient(uri)
    (run,) = client.search_runs(
        [client.get_experiment_by_name(cfg.tracking.experiment).experiment_id]
    )
    for size in ("x1", "x2", "suite"):
        experiment = client.get_experiment_by_name(f"scale-{size}")
        (measured,) = client.search_runs([experiment.experiment_id])
        assert "test/mean/video_auc" in measured.data.metrics, size
    logged = run.data.metrics
    assert logged["bench/scale/train_epoch/x2/seconds"] == pytest.approx(
        res.stages["train_epoch"][2]["seconds"]
    )
    assert "bench/scale/score_warm/exponent" in logged
    assert "bench/scale/suite/main_mib" in logged


def test_the_synthetic_benchmark_is_read_by_the_official_readers(tmp_path):
    size = BenchmarkSize(train_pairs=2, eval_pairs=1, target_videos=4, frames=3)
    written = write_benchmark(tmp_path, size, crop_size=32)
    counts = size.frame_counts()
    # FF++ test split too: (2 + 1 + 1) pairs x 10 videos, plus both targets
    assert written == 3 * (40 + 8)
    faces = tmp_path / "faces"
    splits = tmp_path / "FaceForensics++" / "splits"
    train = read_ff(faces / "ff_c23", splits, split="train")
    assert len(train) == counts["train"] and int(train.labels.sum()) == 4 * len(train) // 5
    assert len(read_ff(faces / "ff_c23", splits, split="val")) == counts["val"]
    cdf = read_cdf_v2(faces / "cdf_v2", tmp_path / "Celeb-DF-v2" / "List_of_testing_videos.txt")
    dfdc = read_dfdc(faces / "dfdc", tmp_path / "DFDC" / "test" / "labels.csv")
    for index in (cdf, dfdc):
        assert len(index) == counts[index.name]
        assert set(index.video_labels().values()) == {0, 1}


def test_a_stage_process_peak_is_its_own(tmp_path):
    # a child that allocated 150 MiB before its probe does not report them as the stage's
    big = isolated(allocate, (120, 150), log=tmp_path / "a.log")
    assert 110 < big["growth_mib"] < 140 and 110 < big["anon_growth_mib"] < 140
    assert big["peak_rss_mib"] > big["start_rss_mib"] + 110
    # the next stage starts from the server's state, not from what the last one held
    small = isolated(allocate, (1,), log=tmp_path / "b.log")
    assert small["growth_mib"] < 20 and small["start_rss_mib"] < big["start_rss_mib"] - 100
    with pytest.raises(StageFailed, match="fails on purpose"):
        isolated(fail, log=tmp_path / "c.log")
    assert "ValueError" in (tmp_path / "c.log").read_text()
