"""FaceForensics++: the official id-pair splits over preprocessed frames, one manipulation set at a time.

Raw dataset: ``original_sequences/youtube/<c>/videos/000.mp4`` (1000 real videos) and
``manipulated_sequences/<Method>/<c>/videos/<a>_<b>.mp4`` for Deepfakes, Face2Face,
FaceSwap, NeuralTextures (and FaceShifter), with ``splits/{train,val,test}.json``: lists of
id pairs (360/70/70 pairs = 720/140/140 ids). A real video belongs to the split of its id;
a fake ``a_b`` (and ``b_a``) to the split of the pair (a, b).

Frames: ``<root>/<source folder>/<video>/<frame>.png`` where the source folders default
to ``real``, ``DF``, ``F2F``, ``FS``, ``NT``, ``FSh`` (the paper's layout,
``datasets/FF/DF/000_003/000.png``); `source_dirs` renames them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from dfd.data.index import FAKE, REAL, FrameIndex
from dfd.data.readers._common import (
    STANDARD_SPLITS,
    DataError,
    Plan,
    Reading,
    ff_target,
    load_json,
    reader,
    require_dir,
    require_file,
    wanted_splits,
)

MANIPULATIONS = ("DF", "F2F", "FS", "NT", "FSh")
DEFAULT_SOURCE_DIRS = {"real": "real", **{m: m for m in MANIPULATIONS}}
COMPRESSIONS = ("raw", "c23", "c40")


def load_ff_splits(splits_dir: str, dataset: str = "ff") -> dict[str, list[tuple[str, str]]]:
    """The official pairs of each split from ``splits_dir/{train,val,test}.json``.

    These files define the protocol, so any defect in them (missing file, not a list of
    id pairs, an id in two splits) is an error whatever `on_error` says.
    """
    pairs: dict[str, list[tuple[str, str]]] = {}
    owner: dict[str, str] = {}
    for split in STANDARD_SPLITS:
        path = f"{splits_dir}/{split}.json"
        require_file(dataset, path, f"FF++ official split file {split}.json", "splits_dir")
        data = load_json(
            dataset,
            path,
            list,
            'a list of id pairs like [["071", "054"], ...]',
            "restore the official FF++ file",
            reason=" [bad_split_file]",
        )
        pairs[split] = []
        for i, pair in enumerate(data):
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or not all(isinstance(x, str) and x for x in pair)
            ):
                raise DataError(
                    f"dataset {dataset!r}: {path} entry {i}: expected a pair of video ids "
                    f'like ["071", "054"], got {pair!r} [bad_split_file]. '
                    f"Fix: restore the official FF++ file"
                )
            for vid in pair:
                # each id is in exactly one pair: a repeat would add a real video twice or to two splits
                if vid in owner:
                    raise DataError(
                        f"dataset {dataset!r}: {path} entry {i}: id {vid!r} is already in a pair "
                        f"of {owner[vid]}.json [bad_split_file]. Fix: restore the official FF++ files"
                    )
                owner[vid] = split
            pairs[split].append((pair[0], pair[1]))
    return pairs


@reader("ff")
def read_ff(
    root: str | os.PathLike,
    splits_dir: str | os.PathLike,
    name: str = "ff",
    split: str | Sequence[str] | None = None,
    compression: str = "c23",
    manipulations: Sequence[str] = ("DF", "F2F", "FS", "NT"),
    include_real: bool = True,
    source_dirs: Mapping[str, str] | None = None,
) -> Plan:
    """FF++ frames of the requested split(s) and manipulations, with the official split of every video.

    `root` holds the preprocessed frames of one compression level (`compression` is
    checked and recorded; the config puts it in `root`). `manipulations` picks the fake
    sources (any of DF, F2F, FS, NT, FSh), so per-manipulation test sets are one reader
    call each; `include_real` adds the real videos of the same split(s). The videos come
    from the split files, not from the folders: a listed video without frames is a bad item
    (``missing_video``/``no_frames``), and a folder whose video is in no split is one too
    (``not_in_splits``). Video ids are ``<source>/<video>`` (``DF/000_003``), since every
    manipulation reuses the same folder names; a fake ``a_b``'s source video is ``real/a``
    (`ff_target`).
    """
    if compression not in COMPRESSIONS:
        raise DataError(
            f"dataset {name!r}: unknown FF++ compression {compression!r}; valid: {list(COMPRESSIONS)}"
        )
    splits = wanted_splits(name, split, STANDARD_SPLITS)
    manipulations = list(manipulations)
    bad = [m for m in manipulations if m not in MANIPULATIONS]
    if bad or (not manipulations and not include_real):
        raise DataError(
            f"dataset {name!r}: unknown FF++ manipulation(s) {bad or manipulations!r}; "
            f"valid: {list(MANIPULATIONS)} (and include_real)"
        )
    dirs = {**DEFAULT_SOURCE_DIRS, **(source_dirs or {})}

    def build(reading: Reading) -> FrameIndex:
        require_dir(name, root, f"FF++ {compression} frame root", "root")
        pairs = load_ff_splits(splits_dir, name)
        sources = (["real"] if include_real else []) + manipulations
        for source in sources:
            source_dir = f"{root}/{dirs[source]}"
            present = reading.source_folder(
                source_dir,
                f"FF++ source folder for {source!r} does not exist",
                f"preprocess FF++ {source} ({compression}) into it, or rename it via "
                f"source_dirs.{source}",
            )
            if present is None:
                continue
            label = REAL if source == "real" else FAKE
            expected: set[str] = set()
            for s in STANDARD_SPLITS:
                for a, b in pairs[s]:
                    videos = [a, b] if source == "real" else [f"{a}_{b}", f"{b}_{a}"]
                    expected.update(videos)
                    if s not in splits:
                        continue
                    for video in videos:
                        target = None if source == "real" else ff_target(video)
                        reading.video_folder(
                            f"{source_dir}/{video}",
                            label=label,
                            video_id=f"{source}/{video}",
                            source=source,
                            split=s,
                            where=f"{splits_dir}/{s}.json pair [{a!r}, {b!r}]",
                            source_video=f"real/{target}" if target else "",
                        )
            for video in present:
                if video not in expected:
                    reading.problems(
                        "not_in_splits",
                        f"folder {source_dir}/{video}",
                        f"video {source}/{video} is in none of the official splits "
                        f"({splits_dir}/{{train,val,test}}.json), so its split is unknown",
                        "remove or move the folder (is splits_dir the official one?)",
                    )
        return reading.index(root)

    return Plan(build, [f"{splits_dir}/{s}.json" for s in STANDARD_SPLITS], root)
