"""Train on a tiny DeepfakeBench-format dataset, evaluate on a tiny file-list one, through `dfd.train`.

Both datasets are written by the test in their exact formats (FF++'s JSON with its
compression level; the paper's one-path-a-line list); the run is the real composed
config (`data=deepfakebench` with its targets swapped by command-line overrides) and the
real `train(cfg)`; MLflow must then hold the target's video AUC.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import mlflow
import numpy as np
from PIL import Image

from dfd.train import train
from tests.conftest import compose_train, small_run_overrides


def _frame(path: Path, fake: bool, seed: int) -> str:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    if fake:  # a visible cue, so that the classes differ
        img[8:24, 8:24] = (255, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return str(path)


def write_deepfakebench(tmp: Path) -> tuple[Path, Path]:
    """FaceForensics++.json over rgb/: 6 real + 6 fake train videos, 2 + 2 val, 2 frames each."""
    rgb = tmp / "rgb"
    tree: dict = {"FF-real": {}, "FF-DF": {}}
    seed = 0
    for split, n in [("train", 6), ("val", 2)]:
        for key, folder in [("FF-real", "youtube"), ("FF-DF", "Deepfakes")]:
            videos = tree[key].setdefault(split, {}).setdefault("c23", {})
            for v in range(n):
                name = f"{split}{v:02d}" if key == "FF-real" else f"{split}{v:02d}_x"
                rels = []
                for f in range(2):
                    rel = f"FaceForensics++/{folder}/c23/frames/{name}/{f:03d}.png"
                    seed += 1
                    _frame(rgb / rel, key == "FF-DF", seed)
                    rels.append(rel)
                videos[name] = {"label": key, "frames": rels, "masks": []}
    js = tmp / "FaceForensics++.json"
    js.write_text(json.dumps({"FaceForensics++": tree}))
    return js, rgb


def write_filelist(tmp: Path) -> Path:
    """lists/test.txt in the paper's format: 3 real and 3 fake videos of 2 frames under datasets/T/."""
    lines = []
    for source in ["real", "NT"]:
        for v in range(3):
            for f in range(2):
                rel = f"datasets/T/{source}/{v:03d}/{f:03d}.png"
                _frame(tmp / rel, source != "real", 1000 + len(lines))
                lines.append(rel)
    (tmp / "lists").mkdir()
    (tmp / "lists" / "test.txt").write_text("\n".join(lines) + "\n")
    return tmp / "lists" / "test.txt"


def test_deepfakebench_train_filelist_target_end_to_end(tmp_path):
    js, rgb = write_deepfakebench(tmp_path / "dfb")
    write_filelist(tmp_path / "fl")
    overrides = [
        "data=deepfakebench",
        f"data.train.json_path={js}",
        f"data.train.root={rgb}",
        "~data.test.cdf_v2",
        "~data.test.dfd",
        "~data.test.dfdc",
        "~data.test.dfdcp",
        "+dataset@data.test.tiny=filelist",
        "data.test.tiny.name=tiny",
        f"data.test.tiny.root={tmp_path / 'fl'}",
        "data.test.tiny.lists.test=lists/test.txt",
        "backbone=tiny_clip",
        "backbone.pretrained=false",
        *small_run_overrides(tmp_path, tmp_path / "cache"),
        "trainer.max_steps=2",
    ]
    cfg = compose_train(overrides, tmp_path / "run")
    assert list(cfg.data.test) == ["tiny"]
    results = train(cfg)

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = mlflow.search_runs(experiment_names=["dfd"], output_format="list")
    assert run.info.status == "FINISHED"
    auc = run.data.metrics["test/tiny/video_auc"]
    assert math.isfinite(auc) and auc == results["test"]["tiny"]["video_auc"]
    # the readers' indexes went to the configured cache, one per dataset spec
    assert len(list((tmp_path / "cache" / "index").glob("*.parquet"))) == 3
