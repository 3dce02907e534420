"""Benchmark readers on tiny fixtures written in each dataset's exact format.

Every test writes its own files under `tmp_path`: PNG frames in the preprocessed layout,
FF++ split JSONs, a Celeb-DF test list (1 = real!), a DFDC labels.csv, a DFDCP
dataset.json, DeepfakeBench JSONs (FF++ with its compression level) and the paper's file
lists. They check labels, splits and video ids, each bad-input case under ``raise`` (the
message names the file) and ``skip`` (counts by reason), the cache, and the configs.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from PIL import Image

from dfd.data.index import FrameIndex
from dfd.data.readers import (
    DataError,
    read_cdf_v2,
    read_deepfakebench,
    read_dfd,
    read_dfdc,
    read_dfdcp,
    read_ff,
    read_ffiw,
    read_filelist,
    read_folder,
)
from tests.conftest import compose_train

_PNG = None


def frames(folder: Path, n: int = 2) -> list[Path]:
    """`n` tiny PNG frames 000.png... in `folder` (one encoded image, copied: fast)."""
    global _PNG
    if _PNG is None:
        import io

        buf = io.BytesIO()
        Image.new("RGB", (4, 4), (200, 150, 120)).save(buf, format="PNG")
        _PNG = buf.getvalue()
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        (folder / f"{i:03d}.png").write_bytes(_PNG)
        out.append(folder / f"{i:03d}.png")
    return out


def videos(index: FrameIndex) -> dict[str, int]:
    return index.video_labels()


# ---------------------------------------------------------------- FaceForensics++


def make_ff(tmp: Path, manipulations=("DF", "F2F")) -> tuple[Path, Path]:
    splits = tmp / "FF++" / "splits"
    splits.mkdir(parents=True)
    pairs = {
        "train": [["000", "003"], ["001", "002"]],
        "val": [["004", "005"]],
        "test": [["006", "007"]],
    }
    for name, p in pairs.items():
        (splits / f"{name}.json").write_text(json.dumps(p))
    root = tmp / "frames" / "FF++_c23"
    for ids in pairs.values():
        for a, b in ids:
            frames(root / "real" / a)
            frames(root / "real" / b)
            for m in manipulations:
                frames(root / m / f"{a}_{b}")
                frames(root / m / f"{b}_{a}")
    return root, splits


def test_ff_official_splits_and_shared_folder_names(tmp_path):
    root, splits = make_ff(tmp_path)
    idx = read_ff(root, splits, split="train", manipulations=["DF", "F2F"])
    vids = videos(idx)
    # DF/000_003 and F2F/000_003 share a folder name: two videos, not one
    assert vids["DF/000_003"] == 1 and vids["F2F/000_003"] == 1 and vids["DF/003_000"] == 1
    assert {v for v, y in vids.items() if y == 0} == {
        "real/000",
        "real/003",
        "real/001",
        "real/002",
    }
    assert len(vids) == 4 + 4 + 4 and len(idx) == 2 * len(vids)
    assert set(idx.splits) == {"train"} and set(idx.sources) == {"real", "DF", "F2F"}
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in idx.paths)

    test = read_ff(root, splits, split="test", manipulations=["DF"])
    assert set(videos(test)) == {"real/006", "real/007", "DF/006_007", "DF/007_006"}
    both = read_ff(root, splits, split=["val", "test"], manipulations=["F2F"], include_real=False)
    assert dict(zip(both.video_ids, both.splits, strict=True))["F2F/005_004"] == "val"
    assert set(both.labels.tolist()) == {1}


def test_ff_rejects_unknown_split_and_manipulation(tmp_path):
    root, splits = make_ff(tmp_path)
    with pytest.raises(DataError, match=r"unknown split \['valid'\].*'train', 'val', 'test'"):
        read_ff(root, splits, split="valid")
    with pytest.raises(DataError, match="DeepFakes.*valid: \\['DF'"):
        read_ff(root, splits, manipulations=["DeepFakes"])
    with pytest.raises(DataError, match="compression"):
        read_ff(root, splits, compression="c30")


def test_ff_bad_input_raise_and_skip(tmp_path):
    root, splits = make_ff(tmp_path)
    for f in (root / "DF" / "006_007").iterdir():
        f.unlink()  # an empty video folder
    (root / "DF" / "007_006").rename(tmp_path / "gone")  # a missing video folder
    frames(root / "DF" / "998_999")  # a folder in no split
    with pytest.raises(DataError, match=r"splits/test\.json pair \['006', '007'\].*no_frames"):
        read_ff(root, splits, split="test", manipulations=["DF"])
    idx = read_ff(root, splits, split="test", manipulations=["DF"], on_error="skip")
    assert idx.skipped == {"no_frames": 1, "missing_video": 1, "not_in_splits": 1}
    assert set(videos(idx)) == {"real/006", "real/007"}
    with pytest.raises(DataError, match="998_999.*none of the official splits"):
        read_ff(root, splits, split="train", manipulations=["DF"])


def test_ff_broken_split_file_names_it(tmp_path):
    root, splits = make_ff(tmp_path)
    (splits / "val.json").write_text(json.dumps([["004", "005"], ["000"]]))
    with pytest.raises(DataError, match=r"val\.json entry 1.*pair of video ids"):
        read_ff(root, splits, split="train", on_error="skip")
    (splits / "val.json").write_text(json.dumps([["004", "000"]]))
    with pytest.raises(DataError, match=r"val\.json.*'000' is already in a pair of train\.json"):
        read_ff(root, splits)


# ---------------------------------------------------------------- Celeb-DF-v2


def make_cdf(tmp: Path) -> tuple[Path, Path]:
    root = tmp / "frames" / "Celeb-DF-v2"
    for rel in [
        "YouTube-real/00000",
        "Celeb-real/id0_0000",
        "Celeb-synthesis/id0_id1_0000",
        "Celeb-real/id1_0001",
        "Celeb-synthesis/id1_id0_0001",
    ]:
        frames(root / rel)
    test_list = tmp / "List_of_testing_videos.txt"
    # the official convention: 1 = REAL, 0 = fake
    test_list.write_text(
        "1 YouTube-real/00000.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4\n1 Celeb-real/id0_0000.mp4\n"
    )
    return root, test_list


def test_cdf_v2_list_labels_are_inverted_to_dfd(tmp_path):
    root, test_list = make_cdf(tmp_path)
    test = read_cdf_v2(root, test_list)
    assert videos(test) == {
        "YouTube-real/00000": 0,
        "Celeb-synthesis/id0_id1_0000": 1,
        "Celeb-real/id0_0000": 0,
    }
    train = read_cdf_v2(root, test_list, split="train")
    assert videos(train) == {"Celeb-real/id1_0001": 0, "Celeb-synthesis/id1_id0_0001": 1}
    assert set(train.splits) == {"train"}
    with pytest.raises(
        DataError, match=r"unknown split \['val'\]; valid splits: \['train', 'test'\]"
    ):
        read_cdf_v2(root, test_list, split="val")


def test_cdf_v2_bad_lines(tmp_path):
    root, test_list = make_cdf(tmp_path)
    lines = [
        "1 YouTube-real/00000.mp4",
        "1 Celeb-synthesis/id1_id0_0001.mp4",  # 1 means real: contradicts the fake folder
        "2 Celeb-real/id1_0001.mp4",  # not a label
        "1 Celeb-real/id9_0009.mp4",  # no frames on disk
        "YouTube-real/00000.mp4",  # no label
        "1 YouTube-real/00000.mp4",  # repeated
        "0 Other/x.mp4",  # unknown source folder
    ]
    test_list.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"List_of_testing_videos\.txt line 2: .*label_conflict"):
        read_cdf_v2(root, test_list)
    idx = read_cdf_v2(root, test_list, on_error="skip")
    assert idx.skipped == {
        "label_conflict": 1,
        "bad_label": 1,
        "missing_video": 1,
        "bad_line": 1,
        "duplicate": 1,
        "unknown_source": 1,
    }
    assert videos(idx) == {"YouTube-real/00000": 0}


# ---------------------------------------------------------------- DFDC / DFDCP


def test_dfdc_labels_csv_and_training_metadata(tmp_path):
    root = tmp_path / "frames" / "DFDC"
    for v in ["aaa", "bbb"]:
        frames(root / "test" / v)
    for v in ["ccc", "ddd"]:
        frames(root / "dfdc_train_part_0" / v)
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("filename,label\naaa.mp4,1\nbbb.mp4,0\n")  # 1 = fake
    part = tmp_path / "raw" / "dfdc_train_part_0"
    part.mkdir(parents=True)
    meta = {
        "ccc.mp4": {"label": "FAKE", "split": "train", "original": "ddd.mp4"},
        "ddd.mp4": {"label": "REAL", "split": "train"},
    }
    (part / "metadata.json").write_text(json.dumps(meta))

    test = read_dfdc(root, csv_path)
    assert videos(test) == {"test/aaa": 1, "test/bbb": 0}
    both = read_dfdc(
        root, csv_path, split=None, train_metadata=[str(tmp_path / "raw" / "*" / "metadata.json")]
    )
    assert videos(both) == {
        "test/aaa": 1,
        "test/bbb": 0,
        "dfdc_train_part_0/ccc": 1,
        "dfdc_train_part_0/ddd": 0,
    }
    assert set(both.split("train").video_ids) == {"dfdc_train_part_0/ccc", "dfdc_train_part_0/ddd"}
    # a training fake's metadata names the real video it was made from
    linked = dict(zip(both.video_ids, both.source_videos, strict=True))
    assert linked["dfdc_train_part_0/ccc"] == "dfdc_train_part_0/ddd" and linked["test/aaa"] == ""
    with pytest.raises(DataError, match="train_metadata"):
        read_dfdc(root, csv_path, split="train")

    csv_path.write_text("filename,label\naaa.mp4,FAKE\nbbb.mp4,0\nzzz.mp4,1\n")
    with pytest.raises(DataError, match=r"labels\.csv line 2: .*neither 1 \(fake\) nor 0"):
        read_dfdc(root, csv_path)
    idx = read_dfdc(root, csv_path, on_error="skip")
    assert idx.skipped == {"bad_label": 1, "missing_video": 1} and videos(idx) == {"test/bbb": 0}


def test_dfdcp_dataset_json(tmp_path):
    root = tmp_path / "frames" / "DFDCP"
    entries = {
        "method_A/1224068/1224068_A/1917022_B_003.mp4": {"label": "fake", "set": "test"},
        "original_videos/1224068/1224068_B_002.mp4": {"label": "real", "set": "test"},
        "method_B/555/555_B/1_A_001.mp4": {"label": "fake", "set": "train"},
    }
    for key in entries:
        parent, stem = key.split("/")[-2], key.split("/")[-1][:-4]
        frames(root / parent / stem)
    js = tmp_path / "dataset.json"
    js.write_text(json.dumps(entries))
    test = read_dfdcp(root, js)
    assert videos(test) == {
        "method_A/1224068/1224068_A/1917022_B_003": 1,
        "original_videos/1224068/1224068_B_002": 0,
    }
    assert set(test.sources) == {"method_A", "original_videos"}
    assert videos(read_dfdcp(root, js, split="train")) == {"method_B/555/555_B/1_A_001": 1}

    entries["method_A/9/9_A/x.mp4"] = {"label": "FAKE?", "set": "test"}
    entries["method_A/9/9_A/y.mp4"] = {"label": "fake", "set": "validation"}
    entries["method_A/9/9_A/z.mp4"] = {"label": "fake", "set": "test"}  # no frames
    js.write_text(json.dumps(entries))
    with pytest.raises(DataError, match=r"dataset\.json key 'method_A/9/9_A/x\.mp4'.*bad_label"):
        read_dfdcp(root, js)
    idx = read_dfdcp(root, js, on_error="skip")
    assert idx.skipped == {"bad_label": 1, "unknown_split": 1, "missing_video": 1}


# ---------------------------------------------------------------- FFIW / DFD / folder


def test_ffiw_val_keeps_real_and_fake_of_the_same_name_apart(tmp_path):
    root = tmp_path / "ffiw"
    for d in ["real_val/00001", "fake_val/00001", "real_train/00002", "fake_train/00002"]:
        frames(root / d)
    idx = read_ffiw(root)
    assert videos(idx) == {"real_val/00001": 0, "fake_val/00001": 1}
    assert set(idx.splits) == {"val"}
    with pytest.raises(
        DataError, match=r"unknown split \['test'\]; valid splits: \['train', 'val'\]"
    ):
        read_ffiw(root, split="test")
    (root / "fake_val" / "00009").mkdir()  # a video folder with no frames
    with pytest.raises(DataError, match=r"fake_val/00009 .*no frames"):
        read_ffiw(root)
    assert read_ffiw(root, on_error="skip").skipped == {"no_frames": 1}


def test_ffiw_mirrored_raw_layout(tmp_path):
    root = tmp_path / "FFIW10K"
    for d in ["source/val/00001", "target/val/00001"]:
        frames(root / d)
    idx = read_ffiw(root, real_dirs={"val": "source/val"}, fake_dirs={"val": "target/val"})
    assert videos(idx) == {"source/val/00001": 0, "target/val/00001": 1}
    assert set(idx.sources) == {"source", "target"}


def test_dfd_real_fake_folders_all_test(tmp_path):
    root = tmp_path / "DFD"
    frames(root / "real" / "01__exit_phone_room")
    frames(root / "fake" / "01_02__exit_phone_room__YVGY8LOK")
    idx = read_dfd(root)
    assert videos(idx) == {
        "real/01__exit_phone_room": 0,
        "fake/01_02__exit_phone_room__YVGY8LOK": 1,
    }
    assert set(idx.splits) == {"test"}
    with pytest.raises(DataError, match=r"valid splits: \['test'\]"):
        read_dfd(root, split="train")
    frames(root / "masks" / "x")
    with pytest.raises(DataError, match=r"DFD/masks: .*label cannot be derived.*unknown_source"):
        read_dfd(root)
    assert read_dfd(root, on_error="skip").skipped == {"unknown_source": 1}


def test_folder_reader_labels_by_source_name(tmp_path):
    root = tmp_path / "custom"
    for rel in ["Real/a", "YouTube-real/b", "fakes/c", "NT/a"]:
        frames(root / rel)
    idx = read_folder(root, name="custom")
    assert videos(idx) == {"Real/a": 0, "YouTube-real/b": 0, "fakes/c": 1, "NT/a": 1}
    named = read_folder(root, split="train", real_sources=["fakes"])
    assert videos(named)["fakes/c"] == 0 and videos(named)["Real/a"] == 1
    assert set(named.splits) == {"train"}
    with pytest.raises(DataError, match="one split"):
        read_folder(root, split=["train", "test"])


# ---------------------------------------------------------------- DeepfakeBench JSON


def make_deepfakebench(tmp: Path) -> tuple[Path, Path]:
    rgb = tmp / "rgb"
    tree: dict = {"FF-real": {}, "FF-DF": {}, "FF-F2F": {}}
    for key, source, vids in [
        ("FF-real", "original_sequences/youtube", ["000", "003"]),
        ("FF-DF", "manipulated_sequences/Deepfakes", ["000_003", "003_000"]),
        ("FF-F2F", "manipulated_sequences/Face2Face", ["000_003"]),
    ]:
        for split, vs in [("train", vids), ("test", vids[:1])]:
            node = tree[key].setdefault(split, {"c23": {}, "c40": {}})
            for v in vs:
                rel = f"FaceForensics++/{source}/c23/frames/{v}"
                paths = frames(rgb / rel)
                # DeepfakeBench's JSONs carry Windows separators on some machines
                node["c23"][v] = {
                    "label": key,
                    "frames": [str(p.relative_to(rgb)).replace("/", "\\") for p in paths],
                    "masks": [],
                }
    js = tmp / "FaceForensics++.json"
    js.write_text(json.dumps({"FaceForensics++": tree}))
    return js, rgb


def test_deepfakebench_ff_json_with_compression_level(tmp_path):
    js, rgb = make_deepfakebench(tmp_path)
    idx = read_deepfakebench(js, rgb, name="ff", split="train")
    assert videos(idx) == {
        "FF-real/000": 0,
        "FF-real/003": 0,
        "FF-DF/000_003": 1,
        "FF-DF/003_000": 1,
        "FF-F2F/000_003": 1,  # same folder name as FF-DF/000_003, another video
    }
    assert all(p.startswith(str(rgb) + "/") and os.path.isfile(p) for p in idx.paths)
    one = read_deepfakebench(js, rgb, split="test", label_keys=["FF-real", "FF-DF"])
    assert videos(one) == {"FF-real/000": 0, "FF-DF/000_003": 1}
    with pytest.raises(
        DataError, match=r"unknown split \['val'\]; valid splits: \['test', 'train'\]"
    ):
        read_deepfakebench(js, rgb, split="val")
    with pytest.raises(DataError, match="compression levels \\['c23', 'c40'\\], not 'raw'"):
        read_deepfakebench(js, rgb, split="train", compression="raw")
    with pytest.raises(DataError, match="no label key\\(s\\) \\['FF-NT'\\]"):
        read_deepfakebench(js, rgb, label_keys=["FF-NT"])


def test_deepfakebench_label_dict_and_bad_input(tmp_path):
    rgb = tmp_path / "rgb"
    cdf = {
        "CelebDFv2_real": {
            "test": {
                "id0_0000": {
                    "label": "CelebDFv2_real",
                    "frames": [str(p) for p in frames(rgb / "Celeb-real/id0_0000")],
                }
            }
        },
        "CelebDFv2_fake": {
            "test": {
                "id0_id1_0000": {
                    "label": "CelebDFv2_fake",
                    "frames": ["Celeb-synthesis/id0_id1_0000/000.png"],
                },
                "gone": {"label": "CelebDFv2_fake", "frames": ["Celeb-synthesis/gone/000.png"]},
                "empty": {"label": "CelebDFv2_fake", "frames": []},
            }
        },
    }
    frames(rgb / "Celeb-synthesis/id0_id1_0000", n=1)
    js = tmp_path / "Celeb-DF-v2.json"
    js.write_text(json.dumps({"Celeb-DF-v2": cdf}))
    with pytest.raises(
        DataError,
        match=r"Celeb-DF-v2\.json \['Celeb-DF-v2'\]\['CelebDFv2_fake'\]\['test'\]\['gone'\] frame 0.*missing_frame",
    ):
        read_deepfakebench(js, rgb)
    idx = read_deepfakebench(js, rgb, on_error="skip")
    assert idx.skipped == {"missing_frame": 1, "no_frames": 1}
    assert videos(idx) == {"CelebDFv2_real/id0_0000": 0, "CelebDFv2_fake/id0_id1_0000": 1}
    # the frames are not checked without check_files
    assert (
        "CelebDFv2_fake/gone"
        in read_deepfakebench(js, rgb, on_error="skip", check_files=False).video_ids
    )
    # a label_dict that does not know a key cannot label its videos
    with pytest.raises(DataError, match="label 'CelebDFv2_fake' is not in label_dict"):
        read_deepfakebench(js, rgb, label_dict={"CelebDFv2_real": 0})
    flipped = read_deepfakebench(
        js, rgb, on_error="skip", label_dict={"CelebDFv2_real": 1, "CelebDFv2_fake": 0}
    )
    assert videos(flipped)["CelebDFv2_real/id0_0000"] == 1


def test_deepfakebench_a_video_listed_twice_in_a_split_is_refused_naming_it(tmp_path):
    rgb = tmp_path / "rgb"
    first = [str(p) for p in frames(rgb / "real/a", n=2)]
    second = [str(p) for p in frames(rgb / "real/b", n=2)]
    # JSON keeps only the last of a repeated key: the first entry's frames would vanish
    text = (
        '{"X": {"X_real": {"test": {'
        f'"v0": {{"label": "X_real", "frames": {json.dumps(first)}}}, '
        f'"v0": {{"label": "X_real", "frames": {json.dumps(second)}}}'
        "}}}}"
    )
    js = tmp_path / "X.json"
    js.write_text(text)
    with pytest.raises(DataError, match=r"X\.json: key 'v0' appears twice in one object"):
        read_deepfakebench(js, rgb)


def test_deepfakebench_frames_under_a_real_and_a_fake_video_are_refused(tmp_path):
    rgb = tmp_path / "rgb"
    shared = [str(p.relative_to(rgb)) for p in frames(rgb / "real/v0", n=2)]
    tree = {
        "X_real": {"test": {"v0": {"label": "X_real", "frames": shared}}},
        "X_fake": {"test": {"v0_x": {"label": "X_fake", "frames": shared}}},
    }
    js = tmp_path / "X.json"
    js.write_text(json.dumps({"X": tree}))
    with pytest.raises(
        DataError,
        match=r"frame .*real/v0/000\.png: is listed under a real and a fake video: "
        r"X_real/v0 \(real\), X_fake/v0_x \(fake\).*conflicting_label",
    ):
        read_deepfakebench(js, rgb)
    with pytest.raises(DataError, match=r"no frame left"):  # neither label can be trusted
        read_deepfakebench(js, rgb, on_error="skip")


def test_deepfakebench_a_frame_path_through_dotdot_is_the_frame_it_names(tmp_path):
    rgb = tmp_path / "rgb"
    frames(rgb / "real/v1", n=1)
    tree = {"X_real": {"test": {"v1": {"label": "X_real", "frames": ["real/v0/../v1/000.png"]}}}}
    js = tmp_path / "X.json"
    js.write_text(json.dumps({"X": tree}))
    assert read_deepfakebench(js, rgb).paths == [f"{rgb}/real/v1/000.png"]
    tree["X_real"]["test"]["v1"]["frames"] = ["../../etc/passwd"]
    js.write_text(json.dumps({"X": tree}))
    with pytest.raises(DataError, match=r"\['v1'\] frame 0: '../../etc/passwd' leaves"):
        read_deepfakebench(js, rgb)


# ---------------------------------------------------------------- the paper's file lists


def make_lists(tmp: Path) -> Path:
    for rel in ["real/000", "DF/000_003", "F2F/000_003", "real/003"]:
        frames(tmp / "datasets" / "FF" / rel)
    lists = tmp / "config" / "datasets" / "FF" / "test"
    lists.mkdir(parents=True)
    for source in ["real", "DF", "F2F"]:
        lines = [
            str(p.relative_to(tmp))
            for p in sorted((tmp / "datasets" / "FF" / source).glob("*/*.png"))
        ]
        (lists / f"{source}.txt").write_text("\n".join(lines) + "\n")
    return lists


def test_filelist_labels_from_source_and_ids_with_source(tmp_path):
    make_lists(tmp_path)
    idx = read_filelist({"test": "config/datasets/FF/test"}, tmp_path, name="ff")
    assert videos(idx) == {"real/000": 0, "real/003": 0, "DF/000_003": 1, "F2F/000_003": 1}
    assert len(idx) == 8 and all(os.path.isfile(p) for p in idx.paths)
    with pytest.raises(DataError, match=r"unknown split \['train'\]; valid splits: \['test'\]"):
        read_filelist({"test": "config/datasets/FF/test"}, tmp_path, split="train")
    with pytest.raises(DataError, match="file list .*nope.txt.*does not exist"):
        read_filelist({"test": "nope.txt"}, tmp_path)


def test_filelist_qualifies_ids_when_datasets_share_a_video_name(tmp_path):
    a = frames(tmp_path / "datasets" / "FF" / "real" / "000", 1)
    b = frames(tmp_path / "datasets" / "DFD" / "real" / "000", 1)
    lst = tmp_path / "mixed.txt"
    lst.write_text(f"{a[0]}\n{b[0]}\n")  # absolute paths are kept as they are
    idx = read_filelist({"test": str(lst)}, tmp_path / "elsewhere", check_files=True)
    assert sorted(idx.video_ids) == ["DFD/real/000", "FF/real/000"]


def test_filelist_bad_lines_raise_naming_file_and_line_or_are_counted(tmp_path):
    make_lists(tmp_path)
    lst = tmp_path / "bad.txt"
    lst.write_text(
        "datasets/FF/real/000/000.png\n"
        "datasets/FF/real/000/999.png\n"  # missing frame
        "000.png\n"  # no source/video
        "\n"
        "datasets/FF/real/000/000.png\n"  # repeated
        "datasets/FF/NT/000_003/000.png\n"  # missing video folder
    )
    with pytest.raises(
        DataError, match=r"bad\.txt line 2: frame .*999\.png does not exist.*missing_frame"
    ):
        read_filelist({"test": "bad.txt"}, tmp_path)
    idx = read_filelist({"test": "bad.txt"}, tmp_path, on_error="skip")
    assert idx.skipped == {"missing_frame": 2, "bad_line": 1, "duplicate": 1}
    assert len(idx) == 1 and idx.video_ids == ["real/000"]
    lst.write_text("datasets/FF/real/000/000.png\ndatasets/FF/DF/000_003/000.png\n" * 2)
    with pytest.raises(DataError, match=r"bad\.txt line 3: frame .* repeats .*bad\.txt line 1"):
        read_filelist({"test": "bad.txt"}, tmp_path, check_files=False)
    lst.write_text("datasets/FF/real/000/999.png\n")
    with pytest.raises(DataError, match=r"no frames .*all items skipped: \{'missing_frame': 1\}"):
        read_filelist({"test": "bad.txt"}, tmp_path, on_error="skip")


def test_on_error_must_be_raise_or_skip(tmp_path):
    make_lists(tmp_path)
    with pytest.raises(DataError, match="on_error must be one of \\['raise', 'skip'\\]"):
        read_filelist({"test": "config/datasets/FF/test"}, tmp_path, on_error="ignore")


# ---------------------------------------------------------------- cache


def _cache_events(caplog) -> list[str]:
    return [r.getMessage().split(":")[0] for r in caplog.records if r.name == "dfd.data.cache"]


def test_cache_hit_miss_and_rebuild_on_a_changed_list(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="dfd.data.cache")
    make_lists(tmp_path)
    cache = tmp_path / "cache"
    args = dict(
        lists={"test": "config/datasets/FF/test"}, root=tmp_path, name="ff", cache_dir=cache
    )
    first = read_filelist(**args)
    second = read_filelist(**args)
    assert _cache_events(caplog) == ["index cache miss", "index cache hit"]
    assert second.paths == first.paths and second.video_ids == first.video_ids
    assert np.array_equal(second.labels, first.labels) and second.splits == first.splits
    assert second.name == "ff" and len(list(cache.glob("*.parquet"))) == 1

    # another argument is another index
    read_filelist(**args, real_sources=["DF"])
    assert _cache_events(caplog)[-1] == "index cache miss"

    # an edited list (same size and second: only its content differs) rebuilds
    df_list = tmp_path / "config/datasets/FF/test/DF.txt"
    st = df_list.stat()
    frames(tmp_path / "datasets/FF/DF/000_003", n=3)
    df_list.write_text(df_list.read_text().replace("001.png", "002.png"))
    os.utime(df_list, ns=(st.st_atime_ns, st.st_mtime_ns))
    third = read_filelist(**args)
    assert _cache_events(caplog)[-1] == "index cache miss"
    assert len(third) == len(first) and any(p.endswith("DF/000_003/002.png") for p in third.paths)


def test_cache_rebuilds_when_a_scanned_folder_changes_and_keeps_skip_counts(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="dfd.data.cache")
    root, test_list = make_cdf(tmp_path)
    cache = tmp_path / "cache"
    (root / "Celeb-real" / "id0_0000").rename(tmp_path / "later")
    first = read_cdf_v2(root, test_list, on_error="skip", cache_dir=cache)
    again = read_cdf_v2(root, test_list, on_error="skip", cache_dir=cache)
    assert first.skipped == again.skipped == {"missing_video": 1}
    assert _cache_events(caplog) == ["index cache miss", "index cache hit"]

    # the preprocessing writes the missing video: the Celeb-real folder's mtime changes
    (tmp_path / "later").rename(root / "Celeb-real" / "id0_0000")
    folder = root / "Celeb-real"
    # coarse file-system clocks can leave the mtime unchanged within one tick: make it visible
    st = folder.stat()
    os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    fixed = read_cdf_v2(root, test_list, on_error="skip", cache_dir=cache)
    assert _cache_events(caplog)[-1] == "index cache stale (a scanned folder changed)"
    assert fixed.skipped == {} and "Celeb-real/id0_0000" in fixed.video_ids


def test_a_failed_build_caches_nothing(tmp_path):
    root, test_list = make_cdf(tmp_path)
    cache = tmp_path / "cache"
    test_list.write_text("2 YouTube-real/00000.mp4\n")
    with pytest.raises(DataError):
        read_cdf_v2(root, test_list, cache_dir=cache)
    assert not cache.exists() or not list(cache.glob("*.parquet"))


def test_arrow_round_trip_keeps_every_column():
    idx = FrameIndex(
        name="x",
        paths=["/a/0.png", "/a/1.png", "/b/0.png"],
        labels=np.array([0, 0, 1]),
        video_ids=["real/a", "real/a", "DF/b"],
        sources=["real", "real", "DF"],
        splits=["test"] * 3,
        skipped={"missing_frame": 2},
    )
    back = FrameIndex.from_arrow(idx.to_arrow())
    assert back.name == idx.name and back.paths == idx.paths
    assert np.array_equal(back.labels, idx.labels) and back.labels.dtype == np.int64
    assert back.video_ids == idx.video_ids and back.sources == idx.sources
    assert back.splits == idx.splits and back.skipped == idx.skipped


# ---------------------------------------------------------------- configs


def test_dataset_configs_instantiate_the_readers(tmp_path):
    root, test_list = make_cdf(tmp_path)
    cfg = compose_train(
        [
            "+dataset@data.test.cdf=cdf_v2",
            f"data.test.cdf.root={root}",
            f"data.test.cdf.test_list={test_list}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            "data.on_error=skip",
        ],
        tmp_path,
    )
    idx = instantiate(cfg.data.test.cdf)
    assert idx.name == "cdf_v2" and videos(idx)["YouTube-real/00000"] == 0
    assert list((tmp_path / "cache" / "index").glob("cdf_v2-cdf_v2-*.parquet"))


@pytest.mark.parametrize(
    ("protocol", "targets"),
    [
        ("ff_cross", ["cdf_v2", "dfd", "dfdc", "ffiw"]),
        ("ff_cross_all", ["cdf_v2", "dfd", "dfdc", "ffiw", "dfdcp"]),
        ("ff_cross_manipulation", ["ff_DF", "ff_F2F", "ff_FS", "ff_NT"]),
        ("deepfakebench", ["cdf_v2", "dfd", "dfdc", "dfdcp"]),
        ("filelist", ["cdf_v2"]),
    ],
)
def test_protocols_compose_with_source_val_and_targets(protocol, targets, tmp_path):
    cfg = compose_train([f"data={protocol}"], tmp_path)
    assert list(cfg.data.test) == targets
    assert cfg.data.train.split == "train" and cfg.data.val.split == "val"
    assert cfg.data.val._target_ == cfg.data.train._target_  # selection stays in the source domain
    assert cfg.data.on_error == "raise" and cfg.data.test[targets[0]].on_error == "raise"


def test_protocol_overrides_add_drop_and_change_targets(tmp_path):
    cfg = compose_train(
        [
            "data=ff_cross",
            "~data.test.dfdc",
            "+dataset@data.test.ffiw_train=ffiw",
            "data.test.ffiw_train.split=train",
            "data.test.cdf_v2.root=/fast/cdf",
            "data.train.compression=c40",
            "data.on_error=skip",
        ],
        tmp_path,
    )
    assert list(cfg.data.test) == ["cdf_v2", "dfd", "ffiw", "ffiw_train"]
    assert cfg.data.test.ffiw_train.split == "train" and cfg.data.test.ffiw.split == "val"
    assert cfg.data.test.cdf_v2.root == "/fast/cdf"
    assert cfg.data.train.root.endswith("ff_c40") and cfg.data.val.root.endswith("ff_c40")
    assert cfg.data.test.dfd.on_error == "skip"
    demo = compose_train(["+dataset@data.test.ffiw=ffiw"], tmp_path)
    assert "ffiw" in demo.data.test and demo.data.test.ffiw.split == "val"
    one = compose_train(["data=ff_cross_manipulation", "data.train.manipulations=[DF]"], tmp_path)
    assert list(one.data.val.manipulations) == ["DF"] and list(
        one.data.test.ff_NT.manipulations
    ) == ["NT"]


def test_ff_cross_train_and_val_read_the_official_splits(tmp_path):
    root, splits = make_ff(tmp_path, manipulations=("DF", "F2F", "FS", "NT"))
    cfg = compose_train(
        [
            "data=ff_cross",
            f"data.train.root={root}",
            f"data.train.splits_dir={splits}",
            f"paths.cache_dir={tmp_path / 'cache'}",
        ],
        tmp_path,
    )
    train, val = instantiate(cfg.data.train), instantiate(cfg.data.val)
    assert train.name == val.name == "ff"
    assert set(train.splits) == {"train"} and set(val.splits) == {"val"}
    assert not set(train.video_ids) & set(val.video_ids)
    assert set(train.sources) == {"real", "DF", "F2F", "FS", "NT"}


# ---------------------------------------------------------------- data.verify=decode


def test_verify_decode_finds_bad_frames_when_the_index_is_built(tmp_path, caplog):
    make_lists(tmp_path)
    good = sorted((tmp_path / "datasets" / "FF").rglob("*.png"))
    zero, truncated, text = good[1], good[3], good[6]
    zero.write_bytes(b"")
    truncated.write_bytes(good[0].read_bytes()[:40])
    text.write_text("not a png")
    args = ({"test": "config/datasets/FF/test"}, tmp_path)
    # without verification the index holds them (they fail only when loaded)
    assert len(read_filelist(*args)) == 8
    with pytest.raises(
        DataError, match=rf"frame {zero}: cannot be decoded.*unreadable.*Fix: re-run"
    ):
        read_filelist(*args, verify="decode")
    cache = tmp_path / "cache"
    caplog.set_level(logging.INFO, logger="dfd.data.cache")
    idx = read_filelist(*args, verify="decode", on_error="skip", cache_dir=cache)
    assert idx.skipped == {"unreadable": 3} and len(idx) == 5
    assert {str(zero), str(truncated), str(text)}.isdisjoint(idx.paths)
    # cached with the index: the second read neither decodes again nor loses the counts
    again = read_filelist(*args, verify="decode", on_error="skip", cache_dir=cache)
    assert _cache_events(caplog)[-1] == "index cache hit" and again.skipped == {"unreadable": 3}
    with pytest.raises(DataError, match="verify must be one of"):
        read_filelist(*args, verify="yes")


def test_verify_decode_through_the_config(tmp_path):
    make_lists(tmp_path)
    (tmp_path / "datasets" / "FF" / "real" / "000" / "000.png").write_bytes(b"")
    cfg = compose_train(
        [
            "data=filelist",
            "data.verify=decode",
            "data.on_error=skip",
            f"paths.data_dir={tmp_path}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            "data.test.cdf_v2.lists.test=config/datasets/FF/test",
        ]
    )
    assert instantiate(cfg.data.test.cdf_v2).skipped == {"unreadable": 1}


def test_filelist_a_path_through_dotdot_gets_the_label_of_the_folder_it_resolves_to(tmp_path):
    real = frames(tmp_path / "datasets" / "X" / "real" / "v1", 1)
    frames(tmp_path / "datasets" / "X" / "fake" / "v2", 1)
    lst = tmp_path / "list.txt"
    # a real frame listed through another folder: its text says source "..", video "v1"
    lst.write_text("datasets/X/real/v0/../v1/000.png\ndatasets/X/fake/v2/../../real/v1/000.png\n")
    idx = read_filelist({"test": "list.txt"}, tmp_path, on_error="skip")
    assert idx.paths == [str(real[0])] and idx.video_ids == ["real/v1"]
    assert idx.labels.tolist() == [0] and idx.skipped == {"duplicate": 1}
    lst.write_text("datasets/X/real/v0/../v1/000.png\n../../etc/passwd/x/000.png\n")
    with pytest.raises(DataError, match=r"list\.txt line 2: '../../etc/passwd/x/000.png' leaves"):
        read_filelist({"test": "list.txt"}, tmp_path)


def test_every_reader_refuses_a_frame_path_that_is_not_normalized(tmp_path):
    # the shared check behind every reader, present and future: a reader that derived a
    # label from a path's text without normalizing it fails, naming the path
    from dfd.data.readers._common import Problems, check_index

    index = FrameIndex(
        name="x",
        paths=["/d/real/v0/../v1/000.png"],
        labels=np.array([0]),
        video_ids=["../v1"],
        sources=[".."],
        splits=["test"],
    )
    with pytest.raises(DataError, match=r"frame path /d/real/v0/../v1/000.png holds"):
        check_index(index, Problems("x", "raise"))
    mixed = FrameIndex(
        name="x",
        paths=["/d/a/000.png", "/d/a/001.png", "/d/b/000.png"],
        labels=np.array([0, 1, 0]),
        video_ids=["a", "a", "b"],
        sources=["s"] * 3,
        splits=["test"] * 3,
    )
    with pytest.raises(DataError, match=r"video 'a': holds frames labelled real and .*fake"):
        check_index(mixed, Problems("x", "raise"))
    assert check_index(mixed, Problems("x", "skip")).video_ids == ["b"]
