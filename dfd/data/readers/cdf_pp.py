"""Celeb-DF++ (Li et al. 2025): 22 forgery methods in three scenarios over Celeb-DF's real videos.

Release layout, from the official README (OUC-VAS/Celeb-DF-PP, "Dataset Structure")::

    Celeb-DF++/Celeb-real/  YouTube-real/
               Celeb-synthesis/FaceSwap/{Celeb-DF,BlendFace,GHOST,HifiFace,InSwapper,
                                         MobileFaceSwap,SimSwap,UniFace}/
                               FaceReenact/{DaGAN,FSRT,HyperReenact,LIA,LivePortrait,MCNET,TPSMM}/
                               TalkingFace/{AniTalker,EchoMimic,EDTalk,FLOAT,IP_LAP,
                                            Real3DPortrait,SadTalker}/
               List_of_testing_videos.txt

Test split (README, "Training and Testing Split"): the 178 real test videos of Celeb-DF, and
200 fakes per face-swap and face-reenactment method and 300 per talking-face method,
"The split details can be found in List_of_testing_videos.txt". Labels: the real folders are
real, everything under ``Celeb-synthesis`` is fake.

Not established from a public source (the list ships only with the data, behind a form):
the list's line format. This reader takes Celeb-DF's ``"<flag> <path>.mp4"`` (flag 1 = real,
``real_flag``) and also a bare ``<path>.mp4``; the label always comes from the folder (which
the README establishes) and a flag that contradicts it is a bad item ``label_conflict``, so
a list in the other convention is caught, not silently inverted. File names inside a method
folder are not documented either; video ids are ``<method or real folder>/<stem>``.

Frames: ``dfd.preprocess`` names each video by its parent folder, so the crops are
``<root>/<method or real folder>/<stem>/<NNN>.png`` (method names are unique across the
scenarios, so no nesting is needed).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from dfd.data.index import FAKE, REAL, FrameIndex
from dfd.data.readers._common import (
    DataError,
    Plan,
    Reading,
    frame_dir_key,
    reader,
    require_dir,
    require_file,
    wanted_splits,
)

SPLITS = ("train", "test")
REAL_FOLDERS = ("Celeb-real", "YouTube-real")
# scenario -> its methods, verbatim from the release's folder tree
SCENARIOS: dict[str, tuple[str, ...]] = {
    "FaceSwap": (
        "Celeb-DF",
        "BlendFace",
        "GHOST",
        "HifiFace",
        "InSwapper",
        "MobileFaceSwap",
        "SimSwap",
        "UniFace",
    ),
    "FaceReenact": ("DaGAN", "FSRT", "HyperReenact", "LIA", "LivePortrait", "MCNET", "TPSMM"),
    "TalkingFace": (
        "AniTalker",
        "EchoMimic",
        "EDTalk",
        "FLOAT",
        "IP_LAP",
        "Real3DPortrait",
        "SadTalker",
    ),
}
SCENARIO_OF = {m: s for s, methods in SCENARIOS.items() for m in methods}
FLAGS = ("0", "1")


def _choose(name: str, what: str, wanted: Sequence[str] | None, valid: Sequence[str]) -> list[str]:
    chosen = list(valid) if wanted is None else list(wanted)
    bad = [x for x in chosen if x not in valid]
    if bad:
        raise DataError(
            f"dataset {name!r}: unknown Celeb-DF++ {what} {bad}; valid: {list(valid)}. "
            f"Fix: correct {what}"
        )
    return chosen


@reader("cdf_pp")
def read_cdf_pp(
    root: str | os.PathLike,
    test_list: str | os.PathLike,
    name: str = "cdf_pp",
    split: str | Sequence[str] | None = "test",
    scenarios: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    reals: Sequence[str] = REAL_FOLDERS,
    real_flag: str = "1",
) -> Plan:
    """Celeb-DF++ frames: ``test`` = the videos of `test_list`, ``train`` = every other video under `root`.

    `scenarios` (FaceSwap, FaceReenact, TalkingFace; null = all) and `methods` (null = every
    method of those scenarios) pick the fakes, `reals` the real folders: GenD's per-scenario
    targets are one scenario with both real folders. A list line that is not
    ``[<0|1>] <path>.mp4``, names a folder that is no Celeb-DF++ method or real folder, or
    whose flag contradicts the folder's label under `real_flag` (the flag that marks a real
    video, Celeb-DF's convention: 1), or a listed video without frames, is a bad item. Video
    ids are ``<folder>/<stem>``; the source is the folder (the method or the real folder).
    """
    splits = wanted_splits(name, split, SPLITS)
    chosen_scenarios = _choose(name, "scenarios", scenarios, list(SCENARIOS))
    in_scenarios = [m for s in chosen_scenarios for m in SCENARIOS[s]]
    chosen_methods = _choose(name, "methods", methods, in_scenarios)
    chosen_reals = _choose(name, "reals", reals, REAL_FOLDERS)
    if real_flag not in FLAGS:
        raise DataError(
            f"dataset {name!r}: real_flag must be '1' or '0' (the list flag of a real video), "
            f"got {real_flag!r}"
        )
    flag_label = {real_flag: REAL, FLAGS[1 - FLAGS.index(real_flag)]: FAKE}
    wanted = {f: REAL for f in chosen_reals} | {m: FAKE for m in chosen_methods}
    known = {**{f: REAL for f in REAL_FOLDERS}, **{m: FAKE for m in SCENARIO_OF}}

    def build(reading: Reading) -> FrameIndex:
        require_dir(name, root, "Celeb-DF++ frame root", "root")
        require_file(name, test_list, "Celeb-DF++ test list", "test_list")
        problems = reading.problems
        test_videos: set[str] = set()
        with open(test_list) as f:
            lines = f.read().splitlines()
        for lineno, line in enumerate(lines, 1):
            where = f"{test_list} line {lineno}"
            parts = line.split()
            if not parts:
                continue
            if (
                len(parts) > 2
                or not parts[-1].lower().endswith(".mp4")
                or (len(parts) == 2 and parts[0] not in FLAGS)
            ):
                problems(
                    "bad_line",
                    where,
                    f'expected "[<0|1>] <folder>/<file>.mp4", got {line!r}',
                    "restore the official List_of_testing_videos.txt",
                )
                continue
            folder, video = frame_dir_key(parts[-1])
            if folder not in known:
                problems(
                    "unknown_source",
                    where,
                    f"folder {folder!r} is neither a Celeb-DF++ method nor a real folder "
                    f"{list(REAL_FOLDERS)}",
                    "correct the line (the video's parent folder names its method)",
                )
                continue
            label = known[folder]
            if len(parts) == 2 and flag_label[parts[0]] != label:
                problems(
                    "label_conflict",
                    where,
                    f"flag {parts[0]} means {'real' if flag_label[parts[0]] == REAL else 'fake'} "
                    f"with real_flag={real_flag}, but folder {folder!r} is "
                    f"{'real' if label == REAL else 'fake'}",
                    f"use the official list; if it marks real videos with "
                    f"{FLAGS[1 - FLAGS.index(real_flag)]}, set real_flag to that",
                )
                continue
            video_id = f"{folder}/{video}"
            test_videos.add(video_id)
            if "test" in splits and folder in wanted:
                reading.video_folder(
                    f"{root}/{folder}/{video}",
                    label=label,
                    video_id=video_id,
                    source=folder,
                    split="test",
                    where=where,
                )
        if "train" in splits:
            reading.labelled_sources(
                root,
                {f: (f, y, "train") for f, y in wanted.items()},
                skip_videos=test_videos,
            )
        return reading.index(root)

    return Plan(build, [test_list], root)
