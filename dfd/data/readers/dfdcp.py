"""DFDC-Preview (DFDCP): ``dataset.json`` keyed by each video's relative path, with its label and set.

Raw dataset: ``original_videos/``, ``method_A/``, ``method_B/`` and ``dataset.json``
``{"method_A/<id>/<id>_A/<clip>.mp4": {"label": "fake", "set": "test", ...}, ...}``.

Frames: ``<root>/<parent>/<stem>/`` of each key (the raw video's parent folder name and
stem, e.g. ``<root>/1224068_A/1917022_B_003/000.png``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from dfd.data.index import FAKE, REAL, FrameIndex
from dfd.data.readers._common import (
    Plan,
    Reading,
    frame_dir_key,
    load_json,
    normalized,
    reader,
    require_dir,
    require_file,
    wanted_splits,
)

SPLITS = ("train", "test")
_LABEL = {"real": REAL, "fake": FAKE}


@reader("dfdcp")
def read_dfdcp(
    root: str | os.PathLike,
    dataset_json: str | os.PathLike,
    name: str = "dfdcp",
    split: str | Sequence[str] | None = "test",
) -> Plan:
    """DFDCP frames of the requested set(s), labels from each entry's ``label`` (real/fake, any case).

    Video ids are the key without ``.mp4`` (``method_A/1224068/1224068_A/1917022_B_003``),
    unique by construction; the source is the key's first folder (``method_A``,
    ``method_B``, ``original_videos``). An entry with another label or set, two keys that
    map to the same frame folder, or a video without frames is a bad item.
    """
    splits = wanted_splits(name, split, SPLITS)

    def build(reading: Reading) -> FrameIndex:
        require_dir(name, root, "DFDCP frame root", "root")
        require_file(name, dataset_json, "DFDCP dataset.json", "dataset_json")
        entries = load_json(
            name,
            dataset_json,
            dict,
            "an object keyed by video path",
            "restore the official dataset.json",
        )
        problems = reading.problems
        folders: dict[str, str] = {}
        for key, info in entries.items():
            where = f"{dataset_json} key {key!r}"
            info = info if isinstance(info, dict) else {}
            raw_label, raw_set = str(info.get("label", "")), info.get("set")
            if raw_label.lower() not in _LABEL:
                problems(
                    "bad_label",
                    where,
                    f"label {info.get('label')!r} is neither real nor fake",
                    "restore the official dataset.json",
                )
                continue
            if raw_set not in SPLITS:
                problems(
                    "unknown_split",
                    where,
                    f"set {raw_set!r} is none of {list(SPLITS)}",
                    "restore the official dataset.json",
                )
                continue
            parent, stem = frame_dir_key(key, where)
            folder = f"{root}/{parent}/{stem}"
            if folder in folders:
                problems(
                    "duplicate",
                    where,
                    f"maps to the same frame folder {folder} as key {folders[folder]!r}",
                    "preprocess these videos into distinct folders",
                )
                continue
            folders[folder] = key
            if raw_set not in splits:
                continue
            rel = normalized(key)
            reading.video_folder(
                folder,
                label=_LABEL[raw_label.lower()],
                video_id=rel.rsplit(".", 1)[0] if "." in rel.rsplit("/", 1)[-1] else rel,
                source=rel.split("/", 1)[0],
                split=raw_set,
                where=where,
            )
        return reading.index(root)

    return Plan(build, [dataset_json], root)
