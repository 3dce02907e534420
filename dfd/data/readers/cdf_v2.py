"""Celeb-DF-v2: the official test list (1 = REAL there) over preprocessed frames.

Raw dataset: ``Celeb-real/`` (590), ``YouTube-real/`` (300), ``Celeb-synthesis/`` (5,639)
videos and ``List_of_testing_videos.txt``: 518 lines ``"<label> <subdir>/<file>.mp4"``
where **1 = real and 0 = fake**, the opposite of dfd's 0 real / 1 fake.

Frames: ``<root>/<subdir>/<stem>/<frame>.png`` (``Celeb-synthesis/id0_id1_0000/000.png``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from dfd.data.index import FAKE, REAL, FrameIndex
from dfd.data.readers._common import (
    Plan,
    Reading,
    frame_dir_key,
    reader,
    require_dir,
    require_file,
    wanted_splits,
)

SPLITS = ("train", "test")
# The label of each source folder, as the dataset defines it.
DEFAULT_SOURCES = {"Celeb-real": REAL, "YouTube-real": REAL, "Celeb-synthesis": FAKE}
# The test list's own convention, converted to dfd's.
_LIST_LABEL = {"1": REAL, "0": FAKE}


@reader("cdf_v2")
def read_cdf_v2(
    root: str | os.PathLike,
    test_list: str | os.PathLike,
    name: str = "cdf_v2",
    split: str | Sequence[str] | None = "test",
    sources: Mapping[str, int] | None = None,
) -> Plan:
    """Celeb-DF-v2 frames: ``test`` = the videos of `test_list`, ``train`` = every other video under `root`.

    Test labels come from the list, converted from its 1 = real / 0 = fake; train labels
    from the source folder (`sources`: folder -> 0 real / 1 fake). A list line that is not
    ``"<0|1> <subdir>/<file>.mp4"``, names an unknown folder, contradicts its folder's label
    (a list written in the other convention?), repeats a video, or points at a video without
    frames is a bad item. Video ids are ``<subdir>/<stem>``.
    """
    splits = wanted_splits(name, split, SPLITS)
    source_labels = {k: int(v) for k, v in (sources or DEFAULT_SOURCES).items()}

    def build(reading: Reading) -> FrameIndex:
        require_dir(name, root, "Celeb-DF-v2 frame root", "root")
        require_file(name, test_list, "Celeb-DF-v2 test list", "test_list")
        problems = reading.problems
        test_videos: set[str] = set()
        with open(test_list) as f:
            lines = f.read().splitlines()
        for lineno, line in enumerate(lines, 1):
            where = f"{test_list} line {lineno}"
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or not parts[1].lower().endswith(".mp4"):
                problems(
                    "bad_line",
                    where,
                    f'expected "<label> <subdir>/<file>.mp4", got {line!r}',
                    "restore the official List_of_testing_videos.txt",
                )
                continue
            raw_label, rel = parts
            source, video = frame_dir_key(rel, where)
            video_id = f"{source}/{video}"
            if raw_label not in _LIST_LABEL:
                problems(
                    "bad_label",
                    where,
                    f"label {raw_label!r} is neither 1 (real) nor 0 (fake)",
                    "restore the official list (1 = real, 0 = fake)",
                )
                continue
            label = _LIST_LABEL[raw_label]
            if source not in source_labels:
                problems(
                    "unknown_source",
                    where,
                    f"folder {source!r} is not a Celeb-DF-v2 source {sorted(source_labels)}",
                    "correct the line, or add the folder to `sources` with its label",
                )
                continue
            if source_labels[source] != label:
                problems(
                    "label_conflict",
                    where,
                    f"label {raw_label} ({'real' if label == REAL else 'fake'} in the list's "
                    f"1 = real convention) contradicts folder {source!r}",
                    "use the official list; it marks real videos with 1, not 0",
                )
                continue
            if video_id in test_videos:
                problems(
                    "duplicate",
                    where,
                    f"video {video_id!r} is listed twice",
                    "remove the repeated line",
                )
                continue
            test_videos.add(video_id)
            if "test" in splits:
                reading.video_folder(
                    f"{root}/{source}/{video}",
                    label=label,
                    video_id=video_id,
                    source=source,
                    split="test",
                    where=where,
                )
        if "train" in splits:
            reading.labelled_sources(
                root,
                {s: (s, y, "train") for s, y in source_labels.items()},
                skip_videos=test_videos,
            )
        return reading.index(root)

    return Plan(build, [test_list], root)
