"""Changing any argument of any reader rebuilds its cached index.

The cache key is the reader's bound arguments (`dfd.data.readers._common.reader`), so this
holds by construction; the test proves it on real reads: for every reader of the family and
every argument of its signature, a read with one other valid value of that argument misses
the cache that the base read filled. The table must name every argument, so a reader or an
argument added without a row here fails `test_the_table_covers_every_reader_and_argument`.
"""

from __future__ import annotations

import inspect
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import dfd.data.readers as readers_module
from dfd.data.demo import DemoSpec, demo_index
from dfd.data.readers import (
    read_cdf_pp,
    read_cdf_v2,
    read_deeperforensics,
    read_deepfakebench,
    read_dfd,
    read_dfdc,
    read_dfdcp,
    read_dfdm,
    read_fakeavceleb,
    read_ff,
    read_ffiw,
    read_filelist,
    read_folder,
    read_hf,
    read_idforge,
)
from tests.test_readers import frames, make_cdf, make_ff, make_lists
from tests.test_readers_hf import write_imagefolder

TINY_DEMO = DemoSpec(frames_per_video=1, source_identities=5, target_identities=2)


def _copy(path: Path, to: str) -> Path:
    """A copy of a file or folder beside it: the same content under another path."""
    target = path.parent / f"{path.name}-{to}"
    if path.is_dir():
        shutil.copytree(path, target)
    else:
        shutil.copy(path, target)
    return target


# Each case: tmp -> (base keyword arguments, {argument: another valid value}). Every read
# uses on_error=skip (so that alternatives which leave an item out stay valid reads) except
# the on_error row itself; the fixtures hold no bad item, so raise is valid too.


def ff_case(tmp: Path) -> tuple[dict, dict]:
    root, splits = make_ff(tmp, manipulations=("DF", "F2F"))
    base = {"root": root, "splits_dir": splits, "split": "train", "manipulations": ["DF", "F2F"]}
    return base, {
        "root": _copy(root, "copy"),
        "splits_dir": _copy(splits, "copy"),
        "name": "ff2",
        "split": "val",
        "compression": "c40",
        "manipulations": ["DF"],
        "include_real": False,
        "source_dirs": {"F2F": "DF"},
    }


def deepfakebench_case(tmp: Path) -> tuple[dict, dict]:
    rgb = tmp / "rgb"
    tree: dict = {}
    for key, folder in [("FF-real", "youtube"), ("FF-DF", "Deepfakes")]:
        for split in ("train", "val"):
            for comp in ("c23", "c40"):
                paths = frames(rgb / folder / comp / f"{split}_000")
                tree.setdefault(key, {}).setdefault(split, {}).setdefault(comp, {})[
                    f"{split}_000"
                ] = {"label": key, "frames": [f"x/{p.relative_to(rgb)}" for p in paths]}
    js = tmp / "FaceForensics++.json"
    js.write_text(json.dumps({"FaceForensics++": tree}))
    base = {"json_path": js, "root": rgb, "split": "train", "strip_prefix": "x/"}
    return base, {
        "json_path": _copy(js, "copy"),
        "root": _copy(rgb, "copy"),
        "name": "ff2",
        "split": "val",
        "dataset": "FaceForensics++",
        "label_keys": ["FF-DF"],
        "compression": "c40",
        "label_dict": {"FF-real": 1, "FF-DF": 0},
        "strip_prefix": "x",
        "check_files": False,
    }


def filelist_case(tmp: Path) -> tuple[dict, dict]:
    lists = make_lists(tmp)
    lists_by_split = {"test": "config/datasets/FF/test", "val": "config/datasets/FF/test"}
    base = {"lists": lists_by_split, "root": tmp}
    return base, {
        "lists": {"test": [str(lists / "real.txt"), str(lists / "DF.txt")], "val": str(lists)},
        "root": _copy(tmp, "copy"),
        "name": "ff2",
        "split": "val",
        "real_sources": ["DF"],
        "check_files": False,
    }


def folder_case(tmp: Path) -> tuple[dict, dict]:
    root = tmp / "custom"
    for rel in ["real/000", "DF/000_003"]:
        frames(root / rel)
    return {"root": root}, {
        "root": _copy(root, "copy"),
        "name": "custom",
        "split": "val",
        "real_sources": ["DF"],
        "fake_sources": ["DF"],
    }


def cdf_v2_case(tmp: Path) -> tuple[dict, dict]:
    root, test_list = make_cdf(tmp)
    return {"root": root, "test_list": test_list}, {
        "root": _copy(root, "copy"),
        "test_list": _copy(test_list, "copy"),
        "name": "cdf2",
        "split": "train",
        "sources": {"Celeb-real": 0, "YouTube-real": 0, "Celeb-synthesis": 0},
    }


def dfdc_case(tmp: Path) -> tuple[dict, dict]:
    root = tmp / "frames"
    for source in ("test", "test2"):
        for v in ("aaa", "bbb"):
            frames(root / source / v)
    frames(root / "dfdc_train_part_0" / "ccc")
    labels = tmp / "labels.csv"
    labels.write_text("filename,label\naaa.mp4,1\nbbb.mp4,0\n")
    meta = tmp / "raw" / "dfdc_train_part_0" / "metadata.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"ccc.mp4": {"label": "REAL"}}))
    other = tmp / "raw2" / "dfdc_train_part_0" / "metadata.json"
    other.parent.mkdir(parents=True)
    other.write_text(json.dumps({"ccc.mp4": {"label": "FAKE"}}))
    return {"root": root, "labels_csv": labels, "train_metadata": [str(meta)]}, {
        "root": _copy(root, "copy"),
        "labels_csv": _copy(labels, "copy"),
        "name": "dfdc2",
        "split": "train",
        "test_source": "test2",
        "train_metadata": [str(other)],
    }


def dfdcp_case(tmp: Path) -> tuple[dict, dict]:
    root = tmp / "frames"
    entries = {}
    for key, label, split in [
        ("original_videos/a/a.mp4", "real", "test"),
        ("method_A/a/a_A/b.mp4", "fake", "test"),
        ("method_B/a/a_B/c.mp4", "fake", "train"),
        ("original_videos/d/d.mp4", "real", "train"),
    ]:
        parts = key.split("/")
        frames(root / parts[-2] / parts[-1][:-4])
        entries[key] = {"label": label, "set": split}
    js = tmp / "dataset.json"
    js.write_text(json.dumps(entries))
    return {"root": root, "dataset_json": js}, {
        "root": _copy(root, "copy"),
        "dataset_json": _copy(js, "copy"),
        "name": "dfdcp2",
        "split": "train",
    }


def dfd_case(tmp: Path) -> tuple[dict, dict]:
    root = tmp / "DFD"
    for rel in ["real/01__a", "real2/02__b", "fake/01_02__a__X"]:
        frames(root / rel)
    return {"root": root, "real_dirs": ["real", "real2"]}, {
        "root": _copy(root, "copy"),
        "name": "dfd2",
        "split": ["test"],  # the only split DFD has, as a list: still another argument value
        "real_dirs": ["real"],
        "fake_dirs": ["fake", "real2"],
    }


def ffiw_case(tmp: Path) -> tuple[dict, dict]:
    root = tmp / "ffiw"
    for d in ["real_val/1", "fake_val/1", "real_train/2", "fake_train/2", "other/3"]:
        frames(root / d)
    return {"root": root}, {
        "root": _copy(root, "copy"),
        "name": "ffiw2",
        "split": "train",
        "real_dirs": {"val": "other", "train": "real_train"},
        "fake_dirs": {"val": "fake_val"},
    }


def cdf_pp_case(tmp: Path) -> tuple[dict, dict]:
    root = tmp / "crops"
    for rel in [
        "Celeb-real/a",
        "YouTube-real/b",
        "SimSwap/c",
        "LIA/d",
        "Celeb-real/e",
        "SimSwap/f",
    ]:
        frames(root / rel)
    test_list = tmp / "List_of_testing_videos.txt"
    test_list.write_text(
        # two lines without a flag, so that real_flag=0 leaves a valid (skip) read
        "1 Celeb-real/a.mp4\nYouTube-real/b.mp4\nCeleb-synthesis/FaceSwap/SimSwap/c.mp4\n"
        "0 Celeb-synthesis/FaceReenact/LIA/d.mp4\n"
    )
    shorter = tmp / "shorter.txt"  # the list without its last line
    shorter.write_text("".join(f"{x}\n" for x in test_list.read_text().splitlines()[:3]))
    return {"root": root, "test_list": test_list}, {
        "root": _copy(root, "copy"),
        "test_list": shorter,
        "name": "cdfpp2",
        "split": "train",
        "scenarios": ["FaceSwap"],
        "methods": ["SimSwap"],
        "reals": ["Celeb-real"],
        "real_flag": "0",
    }


def fakeavceleb_case(tmp: Path) -> tuple[dict, dict]:
    root = tmp / "crops"
    rows = [
        ("real", "A", "RealVideo-RealAudio", "00001.mp4"),
        ("wav2lip", "C", "FakeVideo-RealAudio", "00001_x_wavtolip.mp4"),
        ("fsgan", "D", "FakeVideo-FakeAudio", "00001_x_fsgan.mp4"),
    ]
    lines = ["source,target1,target2,method,category,type,race,gender,path,"]
    for method, letter, kind, name in rows:
        lines.append(
            f"id1,-,-,{method},{letter},{kind},Asian,men,{name},FakeAVCeleb/{kind}/Asian/men/id1"
        )
        frames(root / kind / f"Asian__men__id1__{name[:-4]}")
    meta = tmp / "meta_data.csv"
    meta.write_text("\n".join(lines) + "\n")
    return {"root": root, "metadata_csv": meta}, {
        "root": _copy(root, "copy"),
        "metadata_csv": _copy(meta, "copy"),
        "name": "favc2",
        "split": ["test"],  # the only split, as a list: still another argument value
        "categories": ["RealVideo-RealAudio", "FakeVideo-FakeAudio"],
        "methods": ["wav2lip"],
    }


def idforge_case(tmp: Path) -> tuple[dict, dict]:
    root, splits = tmp / "crops", tmp / "IDForge_v1"
    splits.mkdir(parents=True)
    files = [
        "pristine/id0/id0_0/id0_scene_0001-0.mp4",
        "face_tts/id0/id0_0/id0_scene_0001_0_roop.mp4",
        "lip_tts_textgen/id0/id0_0/id0_scene_0001_0.mp4",
    ]
    for split in ("train", "test"):
        (splits / f"{split}.csv").write_text("\n".join(files))
    for f in files:
        kind, person, video, name = f.split("/")
        frames(root / kind / f"{person}__{video}__{name[:-4]}")
    return {"root": root, "splits_dir": splits}, {
        "root": _copy(root, "copy"),
        "splits_dir": _copy(splits, "copy"),
        "name": "idforge2",
        "split": "train",
        "types": ["pristine", "lip_tts_textgen"],
        "swappers": ["simswap"],
    }


def dfdm_case(tmp: Path) -> tuple[dict, dict]:
    root, real_root = tmp / "dfdm", tmp / "cdf"
    for crf in ("DFDM_crf23", "DFDM_crf0"):
        for name in ("id0_id1_0000_dfaker", "id0_id1_0000_iae"):
            frames(root / crf / name)
    for rel in ("Celeb-real/id0_0000", "YouTube-real/00000"):
        frames(real_root / rel)
    return {"root": root, "real_root": real_root}, {
        "root": _copy(root, "copy"),
        "real_root": _copy(real_root, "copy"),
        "name": "dfdm2",
        "split": ["test"],  # the only split, as a list: still another argument value
        "crf": "DFDM_crf0",
        "models": ["iae"],
        "real_folders": ["YouTube-real"],
    }


def deeperforensics_case(tmp: Path) -> tuple[dict, dict]:
    root, ff, splits = tmp / "df", tmp / "ff_real", tmp / "splits"
    splits.mkdir(parents=True)
    for split, name in (("train", "000_M101"), ("val", "001_W102"), ("test", "002_M103")):
        (splits / f"{split}.txt").write_text(f"{name}.mp4\n")
        for variant in ("end_to_end", "reenact_postprocess"):
            frames(root / variant / name)
        frames(ff / name[:3])
    return {"root": root, "ff_real_root": ff, "splits_dir": splits}, {
        "root": _copy(root, "copy"),
        "ff_real_root": _copy(ff, "copy"),
        "splits_dir": _copy(splits, "copy"),
        "name": "df2",
        "split": "train",
        "variant": "reenact_postprocess",
    }


def demo_case(tmp: Path) -> tuple[dict, dict]:
    return {"root": tmp / "demo", "dataset": "mouth", "split": "test", "spec": TINY_DEMO}, {
        "root": tmp / "demo2",
        "dataset": "eyes",
        "split": ["test"],  # a target has only test, as a list: still another argument value
        "name": "m2",
        "spec": DemoSpec(seed=1, frames_per_video=1, source_identities=5, target_identities=2),
    }


def hf_case(tmp: Path) -> tuple[dict, dict]:
    import csv

    folder = write_imagefolder(tmp / "imf")
    # extra columns, so that each column argument has another valid column to name
    with open(folder / "test" / "metadata.csv") as f:
        rows = list(csv.DictReader(f))
    with open(folder / "test" / "metadata.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, [*rows[0], "part", "origin", "y", "pic"])
        writer.writeheader()
        for r in rows:
            writer.writerow(
                r
                | {
                    "part": "test",
                    "origin": f"{r['video']}_o",  # another valid video column
                    "y": r["label"],
                    "pic": f"test/{r['file_name']}",
                }
            )
    cache = tmp / "hfcache"
    base = {"path": str(folder), "hf_cache_dir": cache}
    return base, {
        "path": str(_copy(folder, "copy")),
        "name": "hf2",
        "split": ["test"],
        "loader": "load_dataset",
        "config_name": "default",
        "data_files": {"test": "test/**"},
        "revision": "main",
        "load_kwargs": {"keep_in_memory": True},
        "image_column": "pic",
        "label_column": "y",
        "video_column": "origin",
        "split_column": "part",
        "source_column": "label",
        "source_video_column": "source_video",
        "label_map": {"real": 1, "fake": 0},
        "image_root": str(folder),
        "frames_dir": tmp / "frames2",
        "hf_cache_dir": tmp / "hfcache2",
    }


CASES: dict[Callable, Callable[[Path], tuple[dict, dict]]] = {
    read_ff: ff_case,
    read_deepfakebench: deepfakebench_case,
    read_filelist: filelist_case,
    read_folder: folder_case,
    read_cdf_v2: cdf_v2_case,
    read_dfdc: dfdc_case,
    read_dfdcp: dfdcp_case,
    read_dfd: dfd_case,
    read_ffiw: ffiw_case,
    demo_index: demo_case,
    read_hf: hf_case,
    read_cdf_pp: cdf_pp_case,
    read_fakeavceleb: fakeavceleb_case,
    read_idforge: idforge_case,
    read_dfdm: dfdm_case,
    read_deeperforensics: deeperforensics_case,
}
COMMON = {"on_error": "raise", "verify": "decode"}  # alternatives to the base's skip / none


def test_the_table_covers_every_reader_and_argument(tmp_path):
    family = {
        obj for obj in vars(readers_module).values() if callable(obj) and hasattr(obj, "kind")
    } | {demo_index}
    assert family == set(CASES), "a reader of the family has no row in CASES"
    for read, case in CASES.items():
        _, alternatives = case(tmp_path / read.kind)
        # cache_dir and preprocess (the command that made the crops) change nothing read
        params = set(inspect.signature(read).parameters) - {"cache_dir", "preprocess"}
        assert set(alternatives) | set(COMMON) == params, read.kind


def _events(caplog) -> list[str]:
    return [r.getMessage().split(":")[0] for r in caplog.records if r.name == "dfd.data.cache"]


@pytest.mark.parametrize("read", CASES, ids=lambda r: r.kind)
def test_changing_any_argument_rebuilds_the_index(read, tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    caplog.set_level(logging.INFO, logger="dfd.data.cache")
    base, alternatives = CASES[read](tmp_path / "data")
    base = {"on_error": "skip", **base}
    cache = tmp_path / "cache"
    first = read(**base, cache_dir=cache)
    assert read(**base, cache_dir=cache).paths == first.paths
    assert _events(caplog)[-2:] == ["index cache miss", "index cache hit"], read.kind
    for arg, value in (alternatives | COMMON).items():
        read(**(base | {arg: value}), cache_dir=cache)
        assert _events(caplog)[-1] == "index cache miss", (
            f"{read.kind}: changing {arg} hit the cache"
        )
    # ... and the base read still finds its own entry
    read(**base, cache_dir=cache)
    assert _events(caplog)[-1] == "index cache hit"


def test_the_preprocess_command_is_not_in_the_cache_key(tmp_path, caplog):
    # documentation for `python -m dfd.datasets` (every reader takes it from @reader):
    # editing it must not rebuild an index
    caplog.set_level(logging.INFO, logger="dfd.data.cache")
    base, _ = folder_case(tmp_path / "data")
    cache = tmp_path / "cache"
    first = read_folder(**base, cache_dir=cache)
    again = read_folder(**base, cache_dir=cache, preprocess="python -m dfd.preprocess x")
    assert _events(caplog)[-1] == "index cache hit" and again.paths == first.paths
