"""The 2026 benchmarks, each from a fixture in its official release layout, through its own config.

Every test writes a tiny raw release under ``<data_dir>`` (empty ``.mp4`` files named and placed
as released, plus the release's list, split or metadata files), then runs the dataset's own
``preprocess`` command from its ``conf/dataset/<name>.yaml``: the command is composed as
``python -m dfd.preprocess`` would compose it (so a wrong key fails here), its inputs are
discovered and named by `discover_videos` exactly as the real run names them, and two tiny
PNG crops are written per video where that run would write them (no video is decoded).
Then the dataset's config is instantiated (its reader, through the index cache) and the
videos, frames, labels, sources and ids are checked, and each label rule is checked against
its opposite.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import tarfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from dfd.data.index import FrameIndex
from dfd.data.readers import DataError, read_cdf_pp, read_folder
from dfd.data.splits import read_dataset
from dfd.datasets.doctor import preprocess_commands
from dfd.preprocess.inputs import discover_videos
from dfd.preprocess.pipeline import FaceSettings
from tests.conftest import CONF_DIR, compose_train
from tests.test_readers import frames

PREPROCESS = "python -m dfd.preprocess"


# ---------------------------------------------------------------- helpers


def touch(root: Path, *rels: str) -> None:
    """Empty files at `rels` under `root` (a raw video only needs its name here)."""
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")


def run_preprocess_command(command: str) -> list[str]:
    """Compose one ``python -m dfd.preprocess`` command and write 2 crops per video it would crop.

    Returns the ``<source>/<video>`` ids it made. A shell step (WildDeepfake's unpacking) is
    run with bash.
    """
    if not command.startswith(PREPROCESS):
        subprocess.run(["bash", "-c", command], check=True)
        return []
    overrides = shlex.split(command)[len(PREPROCESS.split()) :]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="preprocess_faces", overrides=overrides)
    settings = FaceSettings()
    jobs = discover_videos(
        Path(cfg.input_dir),
        settings.video_extensions,
        settings.image_extensions,
        int(cfg.source_part),
        OmegaConf.to_container(cfg.source_rename) if cfg.source_rename is not None else None,
        list(cfg.include) if cfg.include is not None else None,
        str(cfg.video_name),
    )
    assert jobs, f"{command} finds no input"
    for job in jobs:
        frames(Path(cfg.output_dir) / cfg.dataset_name / job.source / job.video)
    return [job.video_id for job in jobs]


def datasets(data_dir: Path, *entries: tuple[str, dict]) -> list[DictConfig]:
    """The composed specs of ``conf/dataset/<option>.yaml`` files as targets, each with its
    changes (one composition for all: composing takes most of these tests' time)."""
    overrides = [f"paths.data_dir={data_dir}", f"paths.cache_dir={data_dir.parent / 'cache'}"]
    for i, (option, changes) in enumerate(entries):
        overrides.append(f"+dataset@data.test.x{i}={option}")
        overrides += [f"data.test.x{i}.{k}={v}" for k, v in changes.items()]
    cfg = compose_train(overrides)
    return [cfg.data.test[f"x{i}"] for i in range(len(entries))]


def dataset(data_dir: Path, option: str, **changes) -> DictConfig:
    """The composed spec of ``conf/dataset/<option>.yaml`` as a target, with `changes`."""
    return datasets(data_dir, (option, changes))[0]


def crop(spec: DictConfig) -> None:
    """Run every preprocess command of `spec` (see `run_preprocess_command`)."""
    commands = preprocess_commands(spec)
    assert commands, "the dataset config has no preprocess command"
    for command in commands:
        run_preprocess_command(command)


def read(spec: DictConfig) -> FrameIndex:
    return read_dataset(spec, "data.test.x")


def videos(index: FrameIndex) -> dict[str, int]:
    labels = index.video_labels()
    assert len(labels) == len(set(index.video_ids))
    return labels


def by_source(index: FrameIndex) -> dict[str, int]:
    out: dict[str, set[str]] = {}
    for s, v in zip(index.sources, index.video_ids, strict=True):
        out.setdefault(s, set()).add(v)
    return {s: len(v) for s, v in out.items()}


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return tmp_path / "data"


# ---------------------------------------------------------------- Celeb-DF++


CDFPP_TEST = [
    "1 Celeb-real/id0_0000.mp4",
    "1 YouTube-real/00000.mp4",
    "0 Celeb-synthesis/FaceSwap/SimSwap/id0_id1_0000.mp4",
    "0 Celeb-synthesis/FaceSwap/Celeb-DF/id0_id1_0000.mp4",
    "0 Celeb-synthesis/FaceReenact/LIA/id1_id0_0001.mp4",
    "0 Celeb-synthesis/TalkingFace/SadTalker/id0_0000.mp4",
]
CDFPP_TRAIN = [
    "Celeb-real/id1_0001.mp4",
    "YouTube-real/00001.mp4",
    "Celeb-synthesis/FaceSwap/SimSwap/id1_id0_0001.mp4",
    "Celeb-synthesis/FaceSwap/Celeb-DF/id1_id0_0001.mp4",
    "Celeb-synthesis/TalkingFace/SadTalker/id1_0001.mp4",
]


def make_cdfpp(data_dir: Path, lines: list[str] = CDFPP_TEST) -> Path:
    raw = data_dir / "Celeb-DF++"
    touch(raw, *(line.split()[-1] for line in CDFPP_TEST), *CDFPP_TRAIN)
    (raw / "List_of_testing_videos.txt").write_text("\n".join(lines) + "\n")
    return raw


def test_cdfpp_scenarios_and_whole_from_the_official_layout(data_dir):
    make_cdfpp(data_dir)
    methods = "[SimSwap,Celeb-DF,SadTalker]"  # the fixture has these (a missing method is an error)
    whole, fs, fr, tf, train_spec = datasets(
        data_dir,
        ("cdfpp", {}),
        ("cdfpp_fs", {}),
        ("cdfpp_fr", {}),
        ("cdfpp_tf", {}),
        ("cdfpp", {"split": "train", "methods": methods}),
    )
    crop(whole)
    idx = read(whole)
    assert videos(idx) == {
        "Celeb-real/id0_0000": 0,
        "YouTube-real/00000": 0,
        "SimSwap/id0_id1_0000": 1,
        "Celeb-DF/id0_id1_0000": 1,  # the same file name in two methods: two videos
        "LIA/id1_id0_0001": 1,
        "SadTalker/id0_0000": 1,
    }
    assert len(idx) == 12 and set(idx.splits) == {"test"}
    scenario = {
        "cdfpp_fs": (fs, {"SimSwap", "Celeb-DF"}),
        "cdfpp_fr": (fr, {"LIA"}),
        "cdfpp_tf": (tf, {"SadTalker"}),
    }
    for option, (spec, names) in scenario.items():
        part = read(spec)
        assert part.name == option
        assert by_source(part) == {"Celeb-real": 1, "YouTube-real": 1, **dict.fromkeys(names, 1)}
    train = read(train_spec)
    assert len(videos(train)) == 5 and set(train.splits) == {"train"}
    assert not set(train.video_ids) & set(idx.video_ids)


def test_cdfpp_label_comes_from_the_folder_and_a_contrary_flag_fails(data_dir):
    root, test_list = data_dir / "crops", data_dir / "list.txt"
    for line in CDFPP_TEST:
        frames(root / Path(line.split()[-1]).parent.name / Path(line).stem)
    # the opposite convention (1 = fake) contradicts the folders: refused, never inverted
    test_list.write_text("\n".join(f"{1 - int(x[0])}{x[1:]}" for x in CDFPP_TEST))
    with pytest.raises(DataError, match=r"line 1: flag 0 means fake .*Celeb-real.*real_flag"):
        read_cdf_pp(root, test_list)
    with pytest.raises(DataError, match=r"all items skipped: \{'label_conflict': 6\}"):
        read_cdf_pp(root, test_list, on_error="skip")
    # ... unless the list says so (real_flag), and then the labels are the same as the folders'
    inverted = read_cdf_pp(root, test_list, real_flag="0")
    test_list.write_text("\n".join(CDFPP_TEST))
    assert videos(inverted) == videos(read_cdf_pp(root, test_list))
    # a bare path (no flag) is read with its folder's label
    test_list.write_text("\n".join(x.split()[1] for x in CDFPP_TEST))
    assert videos(read_cdf_pp(root, test_list))["SadTalker/id0_0000"] == 1
    test_list.write_text("1 Celeb-synthesis/FaceSwap/NewSwap/a.mp4\n")
    with pytest.raises(DataError, match="'NewSwap' is neither a Celeb-DF\\+\\+ method"):
        read_cdf_pp(root, test_list)
    with pytest.raises(DataError, match="unknown Celeb-DF\\+\\+ scenarios"):
        read_cdf_pp(root, test_list, scenarios=["FaceSwapping"])


# ---------------------------------------------------------------- Celeb-DF-v1


def test_cdf_v1_official_layout_and_its_list_convention(data_dir):
    raw = data_dir / "Celeb-DF-v1"
    touch(
        raw, "Celeb-real/id0_0000.mp4", "YouTube-real/00000.mp4", "Celeb-synthesis/id0_id1_0000.mp4"
    )
    touch(raw, "Celeb-real/id1_0001.mp4")
    lines = [
        "1 Celeb-real/id0_0000.mp4",
        "1 YouTube-real/00000.mp4",
        "0 Celeb-synthesis/id0_id1_0000.mp4",
    ]
    (raw / "List_of_testing_videos.txt").write_text("\n".join(lines))
    spec = dataset(data_dir, "cdf_v1")
    crop(spec)
    idx = read(spec)
    assert idx.name == "cdf_v1" and len(idx) == 6
    assert videos(idx) == {
        "Celeb-real/id0_0000": 0,
        "YouTube-real/00000": 0,
        "Celeb-synthesis/id0_id1_0000": 1,
    }
    (raw / "List_of_testing_videos.txt").write_text("0 Celeb-real/id0_0000.mp4\n")
    with pytest.raises(DataError, match="label_conflict"):
        read(dataset(data_dir, "cdf_v1"))


# ---------------------------------------------------------------- FF++ FaceShifter


def test_faceshifter_from_the_ff_release_on_ffs_official_split(data_dir):
    raw = data_dir / "FaceForensics++"
    pairs = {"train": [["000", "003"]], "val": [["001", "002"]], "test": [["004", "005"]]}
    (raw / "splits").mkdir(parents=True)
    for split, p in pairs.items():
        (raw / "splits" / f"{split}.json").write_text(json.dumps(p))
    ids = [x for p in pairs.values() for x in p[0]]
    touch(raw, *(f"original_sequences/youtube/c23/videos/{i}.mp4" for i in ids))
    fakes = [f"{a}_{b}" for p in pairs.values() for a, b in [p[0], p[0][::-1]]]
    touch(raw, *(f"manipulated_sequences/FaceShifter/c23/videos/{f}.mp4" for f in fakes))
    touch(raw, *(f"manipulated_sequences/Deepfakes/c23/videos/{f}.mp4" for f in fakes))
    touch(raw, "original_sequences/actors/c23/videos/01__talking.mp4")  # DFD: not FF++'s
    spec = dataset(data_dir, "faceshifter")
    crop(spec)
    idx = read(spec)
    assert idx.name == "faceshifter" and len(idx) == 8
    assert videos(idx) == {"real/004": 0, "real/005": 0, "FSh/004_005": 1, "FSh/005_004": 1}
    assert set(dict(zip(idx.video_ids, idx.source_videos, strict=True)).values()) == {
        "",
        "real/004",
        "real/005",
    }
    # the same command made the FF++ training crops the other configs read
    train = read(dataset(data_dir, "ff", split="train", manipulations="[DF]"))
    assert videos(train) == {"real/000": 0, "real/003": 0, "DF/000_003": 1, "DF/003_000": 1}


# ---------------------------------------------------------------- DeepSpeak, KoDF, PolyGlotFake, UADFV


@pytest.mark.parametrize(
    ("option", "release", "engines"),
    [
        ("deepspeak_v2", "DeepSpeak-2.0", ["diff2lip", "latentsync", "memo"]),
        ("deepspeak_v1_1", "DeepSpeak-1.1", ["facefusion_gan", "retalking", "wav2lip"]),
    ],
)
def test_deepspeak_layout_by_split_and_engine(data_dir, option, release, engines):
    raw = data_dir / release
    for split in ("train", "test"):
        touch(raw, *(f"{split}/real/{split}_r{k}.mp4" for k in range(2)))
        touch(raw, *(f"{split}/{e}/{split}_f{k}.mp4" for e in engines for k in range(2)))
    specs = datasets(data_dir, (option, {"split": "test"}), (option, {"split": "train"}))
    for split, spec in zip(("test", "train"), specs, strict=True):
        crop(spec)
        idx = read(spec)
        assert by_source(idx) == {"real": 2, **dict.fromkeys(engines, 2)}
        assert len(idx) == 2 * 2 * (1 + len(engines)) and set(idx.splits) == {split}
        assert all(y == (s != "real") for s, y in zip(idx.sources, idx.labels, strict=True))
    # a folder that is neither real nor a known engine has no derivable label: refused
    frames(data_dir / "faces" / f"{option}_test" / "Real" / "x")
    with pytest.raises(DataError, match="Real: is in neither real_sources"):
        read(specs[0])


def test_kodf_and_uadfv_labelled_folders(data_dir):
    touch(data_dir / "KoDF", "real/a.mp4", "fake-dfl/a.mp4", "fake-audio-driven/b.mp4")
    spec = dataset(data_dir, "kodf")
    crop(spec)
    assert videos(read(spec)) == {"real/a": 0, "fake-dfl/a": 1, "fake-audio-driven/b": 1}
    touch(data_dir / "UADFV", "real/0000.mp4", "real/0001.mp4", "fake/0000_fake.mp4")
    spec = dataset(data_dir, "uadfv")
    crop(spec)
    idx = read(spec)
    assert videos(idx) == {"real/0000": 0, "real/0001": 0, "fake/0000_fake": 1}
    # the opposite assignment of the folders gives the opposite labels: the rule is the folders'
    swapped = read_folder(
        data_dir / "faces" / "uadfv", real_sources=["fake"], fake_sources=["real"]
    )
    assert all(videos(swapped)[v] != y for v, y in videos(idx).items())


def test_polyglotfake_real_language_folders_and_lip_sync_fakes(data_dir):
    touch(
        data_dir / "PolyGlotFake",
        "real-en/0001.mp4",
        "real-zh/0001.mp4",
        "en2fr_Wav2Lip/0001.mp4",
        "zh2en_video_retalking/0001.mp4",
    )
    spec = dataset(data_dir, "polyglotfake")
    crop(spec)
    idx = read(spec)
    assert videos(idx) == {
        "real-en/0001": 0,
        "real-zh/0001": 0,
        "en2fr_Wav2Lip/0001": 1,
        "zh2en_video_retalking/0001": 1,
    }
    none_real = read_folder(data_dir / "faces" / "polyglotfake", real_sources=[])
    assert set(videos(none_real).values()) == {1}  # another rule disagrees with the dataset's


# ---------------------------------------------------------------- FakeAVCeleb


FAVC_ROWS = [
    # source,target1,target2,method,category,type,race,gender,file,folder
    "id00076,-,-,real,A,RealVideo-RealAudio,African,men,00109.mp4,FakeAVCeleb/RealVideo-RealAudio/African/men/id00076",
    "id00080,-,-,real,A,RealVideo-RealAudio,Asian,women,00109.mp4,FakeAVCeleb/RealVideo-RealAudio/Asian/women/id00080",
    "id00076,-,-,rtvc,B,RealVideo-FakeAudio,African,men,00109_fake.mp4,FakeAVCeleb/RealVideo-FakeAudio/African/men/id00076",
    "id00076,id00080,-,wav2lip,C,FakeVideo-RealAudio,African,men,00109_id00080_wavtolip.mp4,FakeAVCeleb/FakeVideo-RealAudio/African/men/id00076",
    "id00080,id00076,-,faceswap-wav2lip,D,FakeVideo-FakeAudio,Asian,women,00109_id00076_wavtolip.mp4,FakeAVCeleb/FakeVideo-FakeAudio/Asian/women/id00080",
]


def make_fakeavceleb(data_dir: Path, rows: list[str] = FAVC_ROWS) -> None:
    raw = data_dir / "FakeAVCeleb"
    for row in FAVC_ROWS:
        f = row.split(",")
        touch(raw, f"{f[9]}/{f[8]}")
    header = "source,target1,target2,method,category,type,race,gender,path,\n"
    (raw / "meta_data.csv").write_text(header + "\n".join(rows) + "\n")


def test_fakeavceleb_visual_categories_and_audio_only_fakes_left_out(data_dir, caplog):
    make_fakeavceleb(data_dir)
    spec, fvra_spec, only_spec, audio_spec = datasets(
        data_dir,
        ("fakeavceleb", {}),
        ("fakeavceleb_fvra", {}),
        ("fakeavceleb", {"methods": "[faceswap-wav2lip]"}),
        ("fakeavceleb", {"categories": "[RealVideo-FakeAudio]"}),
    )
    crop(spec)
    caplog.set_level("INFO", logger="dfd.data.readers")
    idx = read(spec)
    assert videos(idx) == {
        "RealVideo-RealAudio/African__men__id00076__00109": 0,
        "RealVideo-RealAudio/Asian__women__id00080__00109": 0,  # same file name, another id
        "FakeVideo-RealAudio/African__men__id00076__00109_id00080_wavtolip": 1,
        "FakeVideo-FakeAudio/Asian__women__id00080__00109_id00076_wavtolip": 1,
    }
    assert len(idx) == 8 and "left out 1 RealVideo-FakeAudio" in caplog.text
    assert not (data_dir / "faces" / "fakeavceleb" / "RealVideo-FakeAudio").exists()
    fvra = read(fvra_spec)
    assert by_source(fvra) == {"RealVideo-RealAudio": 2, "FakeVideo-RealAudio": 1}
    only = read(only_spec)
    assert by_source(only) == {"RealVideo-RealAudio": 2, "FakeVideo-FakeAudio": 1}
    with pytest.raises(DataError, match="audio-only fakes"):
        read(audio_spec)


def test_fakeavceleb_a_category_letter_against_its_folder_fails(data_dir):
    rows = [
        FAVC_ROWS[0].replace(",A,RealVideo-RealAudio,", ",A,FakeVideo-RealAudio,"),
        *FAVC_ROWS[1:],
    ]
    make_fakeavceleb(data_dir, rows)
    spec = dataset(data_dir, "fakeavceleb")
    crop(spec)
    with pytest.raises(
        DataError, match=r"meta_data.csv line 2: category 'A' and type 'FakeVideo-RealAudio'"
    ):
        read(spec)


# ---------------------------------------------------------------- IDForge


def test_idforge_official_split_csv_face_swaps_against_pristine(data_dir):
    raw = data_dir / "IDForge"
    files = [
        "pristine/id00/id00_03/id00_scene_0010-0.mp4",
        "face_tts/id00/id00_00/id00_scene_0015_0_roop.mp4",
        "face_tts/id00/id00_01/id00_scene_0015_0_roop.mp4",  # same name, other source video
        "face_tts/id01/id01_00/id01_scene_0002_0_simswap.mp4",
        "lip_tts_textgen/id00/id00_00/id00_scene_0015_0.mp4",
        "tts_textgen/id00/id00_03/id00_scene_0010-0.mp4",
    ]
    touch(raw / "main", *files)
    (raw / "IDForge_v1").mkdir(parents=True)
    (raw / "IDForge_v1" / "test.csv").write_text("\n".join(files) + "\n")
    (raw / "IDForge_v1" / "train.csv").write_text(files[1] + "\n")
    spec, simswap, audio, train = datasets(
        data_dir,
        ("idforge", {}),
        ("idforge", {"swappers": "[simswap]"}),
        ("idforge", {"types": "[pristine,tts_textgen]"}),
        ("idforge", {"split": "train"}),
    )
    crop(spec)
    idx = read(spec)
    assert videos(idx) == {
        "pristine/id00__id00_03__id00_scene_0010-0": 0,
        "face_tts/id00__id00_00__id00_scene_0015_0_roop": 1,
        "face_tts/id00__id00_01__id00_scene_0015_0_roop": 1,
        "face_tts/id01__id01_00__id01_scene_0002_0_simswap": 1,
    }
    assert by_source(idx) == {"pristine": 1, "face_tts_roop": 2, "face_tts_simswap": 1}
    assert by_source(read(simswap)) == {
        "pristine": 1,
        "face_tts_simswap": 1,
    }
    # IDForge calls the audio/text-only types fake; nothing visual is forged in them: refused
    with pytest.raises(DataError, match=r"types \['tts_textgen'\] forge only the audio"):
        read(audio)
    assert set(read(train).splits) == {"train"}


# ---------------------------------------------------------------- DFDM


def test_dfdm_fakes_of_one_crf_with_celeb_df_reals(data_dir):
    touch(
        data_dir / "DFDM",
        "DFDM_crf23/a/id0_id1_0000_faceswap.mp4",
        "DFDM_crf23/a/id0_id1_0000_dfaker.mp4",
        "DFDM_crf23/b/id2_id3_0001_lightweight.mp4",
        "DFDM_crf0/a/id0_id1_0000_faceswap.mp4",
    )
    cdf = data_dir / "Celeb-DF-v2"
    touch(cdf, "Celeb-real/id0_0000.mp4", "Celeb-real/id1_0001.mp4", "YouTube-real/00000.mp4")
    touch(cdf, "Celeb-synthesis/id0_id1_0000.mp4")
    spec, picked_spec, dfl = datasets(
        data_dir,
        ("dfdm", {}),
        ("dfdm", {"models": "[Dfaker,lightweight]"}),
        ("dfdm", {"models": "[dfl]"}),
    )
    crop(spec)
    idx = read(spec)
    assert videos(idx) == {
        "DFDM_crf23/id0_id1_0000_faceswap": 1,
        "DFDM_crf23/id0_id1_0000_dfaker": 1,
        "DFDM_crf23/id2_id3_0001_lightweight": 1,
        "Celeb-real/id0_0000": 0,  # named as the Celeb-DF-v2 reader names them
        "Celeb-real/id1_0001": 0,
    }
    assert by_source(idx) == {"faceswap": 1, "dfaker": 1, "lightweight": 1, "Celeb-real": 2}
    picked = read(picked_spec)
    assert by_source(picked) == {"dfaker": 1, "lightweight": 1, "Celeb-real": 2}
    with pytest.raises(DataError, match=r"models \['dfl'\] name no video.*\['dfaker', 'faceswap'"):
        read(dfl)


# ---------------------------------------------------------------- DeeperForensics-1.0


def test_deeperforensics_reals_are_the_ff_targets_not_the_source_videos(data_dir):
    raw = data_dir / "DeeperForensics-1.0"
    touch(
        raw / "manipulated_videos",
        "end_to_end/000_M101.mp4",
        "end_to_end/001_W102.mp4",
        "end_to_end/002_M103.mp4",
        "reenact_postprocess/000_M101.mp4",
    )
    touch(raw / "source_videos", "M101/M101/light_uniform/neutral/camera_front/x.mp4")
    (raw / "lists" / "splits").mkdir(parents=True)
    for split, names in {
        "train": ["002_M103.mp4"],
        "val": [],
        "test": ["000_M101.mp4", "001_W102.mp4"],
    }.items():
        (raw / "lists" / "splits" / f"{split}.txt").write_text("\n".join(names))
    ff = data_dir / "FaceForensics++" / "original_sequences" / "youtube" / "c23" / "videos"
    touch(ff, "000.mp4", "001.mp4", "002.mp4")
    spec = dataset(data_dir, "deeperforensics")
    crop(spec)
    idx = read(spec)
    assert videos(idx) == {
        "end_to_end/000_M101": 1,
        "end_to_end/001_W102": 1,
        "real/000": 0,
        "real/001": 0,
    }
    assert not any("M101/" in p for p in idx.paths if "end_to_end" not in p)  # no source video
    assert (
        dict(zip(idx.video_ids, idx.source_videos, strict=True))["end_to_end/001_W102"]
        == "real/001"
    )
    (raw / "lists" / "splits" / "test.txt").write_text("M101_000.mp4\n")
    with pytest.raises(DataError, match="not <three-digit target id>_<source id>"):
        read(dataset(data_dir, "deeperforensics"))


# ---------------------------------------------------------------- WildDeepfake


def test_wilddeepfake_archives_unpacked_and_sequences_kept_apart(data_dir, tmp_path):
    raw = data_dir / "deepfake_in_the_wild"
    for top, archives in {"real test": 2, "fake test": 1, "real train": 1}.items():
        (raw / top).mkdir(parents=True)
        for k in range(archives):
            seq = tmp_path / "seqs" / top / str(k) / "1"  # sequence folder "1" in every archive
            frames(seq, n=3)
            with tarfile.open(raw / top / f"{k}.tar.gz", "w:gz") as tar:
                tar.add(seq, arcname="1")
    spec = dataset(data_dir, "wilddeepfake")
    crop(spec)
    idx = read(spec)
    assert videos(idx) == {"real/0__1": 0, "real/1__1": 0, "fake/0__1": 1}
    assert len(idx) == 6 and idx.name == "wilddeepfake"  # 2 crops per sequence (the emulation's)


# ---------------------------------------------------------------- DF40


def make_df40_json(data_dir: Path, name: str, method: str, n: int = 1, split: str = "test") -> None:
    """A DF40 set in DeepfakeBench's JSON form, with frames under ${paths.data_dir}/DF40."""
    tree: dict = {}
    for key in (f"{method}_Real", f"{method}_Fake"):
        for k in range(n):
            rel = f"{name}/{key}/{k:03d}"
            frames(data_dir / "DF40" / rel)
            tree.setdefault(key, {}).setdefault(split, {})[f"{k:03d}"] = {
                "label": key,
                "frames": [f"{rel}/000.png", f"{rel}/001.png"],
            }
    out = data_dir / "DF40" / "dataset_json" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({name: tree}))


def test_df40_labels_by_its_label_dict_not_by_a_real_substring(data_dir):
    make_df40_json(data_dir, "whichisreal", "whichisreal")
    spec, naive_spec = datasets(
        data_dir,
        ("df40", {"dataset": "whichisreal"}),
        ("df40", {"dataset": "whichisreal", "label_dict": "null"}),
    )
    idx = read(spec)
    assert idx.name == "df40_whichisreal"
    assert videos(idx) == {"whichisreal_Real/000": 0, "whichisreal_Fake/000": 1}
    # DeepfakeBench's "contains real" default would call whichisreal's fakes real
    naive = read(naive_spec)
    assert set(videos(naive).values()) == {0}
    assert preprocess_commands(spec)[0].startswith("none: download DF40")


def test_df40_protocols_carve_val_from_train_and_compose(data_dir):
    make_df40_json(data_dir, "FSAll_ff", "FSAll", n=10, split="train")
    cfg = compose_train(
        ["data=df40_protocol1", f"paths.data_dir={data_dir}", f"paths.cache_dir={data_dir}/c"]
    )
    train, val = read_dataset(cfg.data.train, "t"), read_dataset(cfg.data.val, "v")
    assert train.name == val.name == "df40_FSAll_ff"
    assert len(videos(val)) == 2 and len(videos(train)) == 18  # 10% of each source, the rest
    assert not set(train.video_ids) & set(val.video_ids)
    assert set(val.labels.tolist()) == {0, 1}
    assert list(cfg.data.test) == ["df40_FSAll_ff", "df40_FRAll_ff", "df40_EFSAll_ff"]
    # (every protocol composes in test_config); protocol 4 trains on one method, val follows
    four = compose_train(["data=df40_protocol4", "data.train.index.dataset=blendface_ff"])
    assert len(four.data.test) == 29 and four.data.val.index.json_path.endswith("blendface_ff.json")


# ---------------------------------------------------------------- the subset and gend_suite


def test_video_subset_sample_and_rest_partition_each_source(data_dir):
    from dfd.data.subset import video_subset

    root = data_dir / "f"
    for source in ("real", "fake_a", "fake_b"):
        for k in range(10):
            frames(root / source / f"{k}")
    index = read_folder(root)
    sample = video_subset(index, videos_per_source=3, seed=1)
    rest = video_subset(index, videos_per_source=3, seed=1, part="rest")
    assert by_source(sample) == {"real": 3, "fake_a": 3, "fake_b": 3}
    assert not set(sample.video_ids) & set(rest.video_ids)
    assert len(set(sample.video_ids) | set(rest.video_ids)) == 30
    assert sample.video_ids == video_subset(index, videos_per_source=3, seed=1).video_ids
    assert set(sample.video_ids) != set(video_subset(index, videos_per_source=3, seed=2).video_ids)
    assert by_source(video_subset(index, fraction=0.25)) == {"real": 2, "fake_a": 2, "fake_b": 2}
    with pytest.raises(DataError, match="exactly one of"):
        video_subset(index)
    with pytest.raises(DataError, match="holds no video"):
        video_subset(index, videos_per_source=10, part="rest")


def test_gend_suite_composes_with_its_targets_and_held_out_sets():
    cfg = compose_train(["data=gend_suite"])
    targets = list(cfg.data.test)
    assert len(targets) == 16 and {"cdfpp_fs", "cdfpp_fr", "cdfpp_tf", "uadfv"} <= set(targets)
    assert cfg.data.train.name == cfg.data.val.name == "ff" and cfg.data.val.split == "val"
    assert set(cfg.data.heldout) == {"deepspeak_v2", "deepspeak_v1_1", "cdfpp", "ffiw"}
    assert all(h.index.split == "train" for h in cfg.data.heldout.values())
    assert "Celeb-real" not in cfg.data.heldout.cdfpp.index.reals
    assert "Celeb-DF" not in cfg.data.heldout.cdfpp.index.methods
    resolved = OmegaConf.to_container(cfg.data, resolve=True)
    assert all(resolved["test"][t]["preprocess"] for t in targets)


def test_gend_suite_held_out_sets_are_samples_of_train_folders_disjoint_from_the_targets(
    data_dir,
):
    make_cdfpp(data_dir)
    for split in ("train", "test"):  # DeepSpeak's official splits
        names = [f"{split}/{e}/{split}{k}.mp4" for e in ("real", "memo") for k in range(3)]
        touch(data_dir / "DeepSpeak-2.0", *names)
    for split in ("train", "val"):  # FFIW's
        touch(
            data_dir / "FFIW10K",
            *(f"{d}/{split}/{k:05d}.mp4" for d in ("source", "target") for k in range(3)),
        )
    cfg = compose_train(
        [
            "data=gend_suite",
            "data.on_error=skip",  # the fixture holds only some of Celeb-DF++'s methods
            f"paths.data_dir={data_dir}",
            f"paths.cache_dir={data_dir.parent / 'cache'}",
            "data.heldout.deepspeak_v2.videos_per_source=2",
        ]
    )
    for key in ("deepspeak_v2", "cdfpp", "ffiw"):
        crop(cfg.data.heldout[key])
    crop(cfg.data.test.deepspeak_v2)
    crop(cfg.data.test.ffiw)
    held = {k: read_dataset(cfg.data.heldout[k], k) for k in ("deepspeak_v2", "cdfpp", "ffiw")}
    assert held["deepspeak_v2"].name == "deepspeak_v2_heldout"
    assert by_source(held["deepspeak_v2"]) == {"real": 2, "memo": 2}
    assert set(held["deepspeak_v2"].splits) == {"train"}
    # Celeb-DF++: its non-test videos, without Celeb-real (DFDM's test reals) and Celeb-DF
    assert by_source(held["cdfpp"]) == {"YouTube-real": 1, "SimSwap": 1, "SadTalker": 1}
    assert by_source(held["ffiw"]) == {"real_train": 3, "fake_train": 3}
    targets = {
        k: read_dataset(cfg.data.test[k], k)
        for k in ("deepspeak_v2", "ffiw", "cdfpp_fs", "cdfpp_fr", "cdfpp_tf")
    }
    for name, index in held.items():
        for target, test in targets.items():
            shared = set(index.paths) & set(test.paths)
            assert not shared, f"held-out {name} shares frames with target {target}"
