"""Two processes (torchrun, gloo on CPU) report the same target metrics as one process for the
same checkpoint: every frame is scored exactly once whatever the process count."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dfd.train import train
from tests.conftest import compose_train, small_run_overrides


@pytest.mark.slow
def test_two_process_evaluation_equals_one_process(tmp_path, demo_cache):
    run = tmp_path / "train"
    overrides = [
        *small_run_overrides(run, demo_cache),
        "backbone.pretrained=false",
        "tracking=none",
    ]
    # an odd number of frames per target: the last batch is uneven across the two processes
    overrides += ["data.frames_per_video.eval=3", "trainer.eval_batch_size=37"]
    train(compose_train(overrides, run))
    one = json.loads((run / "metrics.json").read_text())["test"]

    two_dir = tmp_path / "two"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
        "-m", "dfd.evaluate", f"checkpoint={run / 'checkpoint'}", "tracking=none",
        f"hydra.run.dir={two_dir}", f"paths.cache_dir={demo_cache}", "eval_batch_size=37",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads((two_dir / "metrics.json").read_text())["test"]
    assert set(one) == set(two)
    for name in one:
        for key, value in one[name].items():
            assert two[name][key] == pytest.approx(value, abs=1e-6), (name, key)
