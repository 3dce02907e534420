"""`python -m dfd.datasets`, the data doctor: what it prints for found, missing and broken
datasets, the commands it gives, its exit status, and its one-screen report on an empty folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from dfd.datasets.doctor import run_doctor
from dfd.preprocess.manifest import FORMAT
from dfd.runtime.errors import UserError
from tests.conftest import CONF_DIR
from tests.test_readers import frames, make_cdf, make_ff

PROJECT = Path(__file__).resolve().parents[1]


def compose_doctor(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="datasets", overrides=overrides)


def manifest(folder: Path, detector: str) -> None:
    settings = {
        "mode": "fixed_num_frames",
        "num_frames": 32,
        "size": 256,
        "scale": 1.3,
        "redetect": True,
        "detector": {"_target_": detector, "model": "full_range"},
    }
    data = {"format": FORMAT, "dfd": "0.1.0", "settings": settings, "videos": {}}
    (folder / "manifest.json").write_text(json.dumps(data))


def test_empty_folder_lists_every_dataset_missing_with_its_command_in_one_screen(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dfd.datasets",
            "data=gend_suite",
            f"paths.data_dir={empty}",
            f"paths.cache_dir={tmp_path / 'cache'}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    out = done.stdout.splitlines()
    assert len(out) + len(done.stderr.splitlines()) <= 42  # one screen
    rows = {tuple(line.split()[:3]) for line in out[1:] if not line.startswith("[")}
    targets = [
        "cdf_v2",
        "dfd",
        "dfdc",
        "faceshifter",
        "uadfv",
        "dfdm",
        "ffiw",
        "deepspeak_v1_1",
        "deepspeak_v2",
        "kodf",
        "fakeavceleb",
        "polyglotfake",
        "idforge",
        "cdfpp_fs",
        "cdfpp_fr",
        "cdfpp_tf",
    ]
    expected = {("train", "ff", "missing"), ("val", "ff", "missing")}
    expected |= {("test", t, "missing") for t in targets}
    expected |= {
        ("heldout", h, "missing") for h in ["deepspeak_v2", "deepspeak_v1_1", "cdfpp", "ffiw"]
    }
    assert rows == expected
    commands = [line for line in out if line.startswith("[")]
    assert all(f"python -m dfd.preprocess input_dir={empty}/" in c for c in commands)
    for line in out[1:]:
        if not line.startswith("["):  # every missing row names the commands that make it
            refs = line.split("make: [")[1].rstrip("]").split(",")
            assert all(any(c.startswith(f"[{r}] ") for c in commands) for r in refs)
    assert "22 of 22 datasets of data=gend_suite are not usable (22 missing" in done.stderr
    assert (
        not list(tmp_path.glob("*.log")) and not (tmp_path / "outputs").exists()
    )  # writes nothing


def test_demo_everything_found_with_counts_by_label_and_source(demo_cache, capsys):
    cfg = compose_doctor([f"paths.cache_dir={demo_cache}"])
    entries = run_doctor(cfg)
    out = capsys.readouterr().out.splitlines()
    # train, val, 4 targets, 2 held-out sets (selection=heldout)
    assert [e.status for e in entries] == ["found"] * 8
    assert [(e.role, e.key) for e in entries][:3] == [
        ("train", "source"),
        ("val", "source"),
        ("test", "mouth"),
    ]
    assert out[-1] == "all 8 datasets of data=demo found"
    mouth = out.index(next(line for line in out if line.startswith("test    mouth")))
    assert "real 50v/200f  fake 50v/200f  skipped: none" in out[mouth]
    assert out[mouth + 1].split() == [
        "sources",
        "real:",
        "real",
        "50v/200f;",
        "fake:",
        "mouth",
        "50v/200f",
    ]


def test_found_broken_and_missing_rows_with_problems_and_pipelines(tmp_path, capsys):
    ff_root, splits = make_ff(tmp_path, manipulations=("DF", "F2F", "FS", "NT"))
    manifest(ff_root, "x.BlazeFaceMeshDetector")
    cdf_root, cdf_list = make_cdf(tmp_path)
    manifest(cdf_root, "x.DlibDetector")
    (cdf_root / "Celeb-real" / "id0_0000" / "000.png").unlink()  # a listed video lost a frame
    for f in (cdf_root / "YouTube-real" / "00000").iterdir():
        f.unlink()  # ... and one lost all of them
    ffiw = tmp_path / "data" / "faces" / "ffiw"
    for d in ("real_val/1", "fake_val/1"):
        frames(ffiw / d)
    (tmp_path / "data" / "faces" / "dfdc").mkdir()  # its frames exist, its labels.csv does not
    cfg = compose_doctor(
        [
            "data=ff_cross",
            f"paths.data_dir={tmp_path / 'data'}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"data.train.root={ff_root}",
            f"data.train.splits_dir={splits}",
            f"data.test.cdf_v2.root={cdf_root}",
            f"data.test.cdf_v2.test_list={cdf_list}",
        ]
    )
    with pytest.raises(UserError, match="2 of 6 datasets of data=ff_cross are not usable"):
        run_doctor(cfg)
    out = {
        line.split()[1] if line.startswith("test") else line.split()[0]: line
        for line in capsys.readouterr().out.splitlines()[1:]
        if line.startswith(("train", "val", "test"))
    }
    assert (
        "found" in out["train"] and "crops: dfd.preprocess, BlazeFaceMeshDetector" in out["train"]
    )
    assert "real 2v/4f  fake 8v/16f" in out["val"] and "same pipeline as train" in out["val"]
    assert "skipped: no_frames 1" in out["cdf_v2"]  # counted by reason, not raised
    assert (
        "crops: differ from train (detector DlibDetector vs BlazeFaceMeshDetector" in out["cdf_v2"]
    )
    assert "real 1v/1f" in out["cdf_v2"]  # the one real video left, one frame short
    assert "missing  no " in out["dfd"] and "make: [" in out["dfd"]
    assert "missing  no " in out["dfdc"] and "labels.csv" in out["dfdc"]
    assert "found" in out["ffiw"] and "crops: no dfd.preprocess manifest" in out["ffiw"]
