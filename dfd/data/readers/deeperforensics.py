"""DeeperForensics-1.0 (Jiang et al., CVPR 2020): DF-VAE face swaps onto FF++'s YouTube videos.

Release (EndlessSora/DeeperForensics-1.0 ``dataset/README.md``)::

    DeeperForensics-1.0/lists/splits/{train,val,test}.txt
                       manipulated_videos/<variant>/<target id>_<source id>.mp4
                       source_videos/<actor>/...

with 11 variants (``end_to_end``, ``reenact_postprocess``, ``end_to_end_level_{1..5}``,
``end_to_end_random_level``, ``end_to_end_mix_{2,3,4}_distortions``); ``<target id>`` is the
three-digit id of a FaceForensics++ YouTube video and ``<source id>`` an actor (``M004``).
"Each line of these files shows a manipulated ('fake') video names. You can easily find the
corresponding the 'real' videos (i.e., target videos) using the first three digit ID."

Labels, as the README defines them: the collected source videos "are not the 'real' part for
detection"; the real part is the target videos, FF++'s ``original_sequences/youtube`` at c23,
which are not shipped with DeeperForensics. So the real videos of a split are the FF++ c23
crops of the target ids its fakes name (``real/<id>``, as the FF++ reader names them), and
the fakes are ``<variant>/<stem>``. DeepfakeBench instead takes every source video as real;
that is not the dataset's rule and not done here. Note that these real videos are FF++
videos: a detector trained on FF++ has seen some of them (those in FF++'s train split).

Frames: fakes in ``<root>/<variant>/<stem>/<NNN>.png`` (the parent folder is the source);
reals from the FF++ c23 crops' ``real`` folder, `ff_real_root`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import PurePosixPath

from dfd.data.index import FAKE, REAL, FrameIndex
from dfd.data.readers._common import (
    STANDARD_SPLITS,
    DataError,
    Plan,
    Reading,
    reader,
    require_dir,
    require_file,
    wanted_splits,
)

VARIANTS = (
    "end_to_end",
    "reenact_postprocess",
    *(f"end_to_end_level_{k}" for k in range(1, 6)),
    "end_to_end_random_level",
    *(f"end_to_end_mix_{k}_distortions" for k in (2, 3, 4)),
)
FAKE_NAME = re.compile(r"(\d{3})_([A-Za-z0-9]+)")


@reader("deeperforensics")
def read_deeperforensics(
    root: str | os.PathLike,
    ff_real_root: str | os.PathLike,
    splits_dir: str | os.PathLike,
    name: str = "deeperforensics",
    split: str | Sequence[str] | None = "test",
    variant: str = "end_to_end",
) -> Plan:
    """DeeperForensics-1.0 frames of the requested split(s): the listed fakes of `variant` and their FF++ targets.

    Each line of ``splits_dir/<split>.txt`` names a fake ``<target id>_<source id>[.mp4]``;
    its real video is FF++'s ``<ff_real_root>/<target id>``, added once per split. A line in
    another form and a video without frames are bad items. Video ids are ``<variant>/<stem>``
    and ``real/<target id>``; a fake's source video is its target's real video.
    """
    splits = wanted_splits(name, split, STANDARD_SPLITS)
    if variant not in VARIANTS:
        raise DataError(
            f"dataset {name!r}: unknown DeeperForensics-1.0 variant {variant!r}; valid: "
            f"{list(VARIANTS)}"
        )
    lists = {s: f"{splits_dir}/{s}.txt" for s in splits}

    def build(reading: Reading) -> FrameIndex:
        require_dir(name, root, "DeeperForensics-1.0 frame root", "root")
        require_dir(
            name, ff_real_root, "FF++ c23 real crops (DeeperForensics' real part)", "ff_real_root"
        )
        for s, path in lists.items():
            require_file(name, path, f"DeeperForensics-1.0 split list {s}.txt", "splits_dir")
            with open(path) as f:
                lines = f.read().splitlines()
            targets: dict[str, str] = {}
            for lineno, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                where = f"{path} line {lineno}"
                stem = PurePosixPath(line.strip().replace("\\", "/")).name.removesuffix(".mp4")
                match = FAKE_NAME.fullmatch(stem)
                if match is None:
                    reading.problems(
                        "bad_line",
                        where,
                        f"{line.strip()!r} is not <three-digit target id>_<source id>.mp4",
                        "restore the official lists/splits file",
                    )
                    continue
                target = match.group(1)
                targets.setdefault(target, where)
                reading.video_folder(
                    f"{root}/{variant}/{stem}",
                    label=FAKE,
                    video_id=f"{variant}/{stem}",
                    source=variant,
                    split=s,
                    where=where,
                    source_video=f"real/{target}",
                )
            for target, where in targets.items():
                reading.video_folder(
                    f"{ff_real_root}/{target}",
                    label=REAL,
                    video_id=f"real/{target}",
                    source="real",
                    split=s,
                    where=f"{where} (its FF++ target video)",
                )
        return reading.index(root)

    return Plan(build, list(lists.values()), root)
