"""DFDC (the full Deepfake Detection Challenge set): test ``labels.csv`` and the training parts' ``metadata.json``.

Raw dataset: the test set's videos with ``labels.csv`` (columns ``filename,label``,
**1 = fake**, dfd's convention already); training parts ``dfdc_train_part_<k>/`` with
their videos and a ``metadata.json`` ``{"<file>.mp4": {"label": "REAL" | "FAKE", ...}}``.

Frames: test videos in ``<root>/<test_source>/<stem>/`` (the raw videos' parent folder
name; a ``filename`` with a folder in it uses that folder instead), training videos in
``<root>/dfdc_train_part_<k>/<stem>/``.
"""

from __future__ import annotations

import csv
import glob
import os
from collections.abc import Sequence

from dfd.data.index import FAKE, REAL, FrameIndex
from dfd.data.readers._common import (
    DataError,
    Plan,
    Reading,
    abspath,
    frame_dir_key,
    load_json,
    reader,
    require_dir,
    require_file,
    wanted_splits,
)

SPLITS = ("train", "test")
_CSV_LABEL = {"0": REAL, "1": FAKE, "0.0": REAL, "1.0": FAKE}
_META_LABEL = {"REAL": REAL, "FAKE": FAKE}


def _expand(name: str, patterns: Sequence[str]) -> list[str]:
    files: list[str] = []
    for pattern in patterns:
        found = sorted(glob.glob(abspath(pattern)))
        if not found:
            raise DataError(
                f"dataset {name!r}: train_metadata pattern {pattern} matches no file [missing_file]. "
                f"Fix: point it at the dfdc_train_part_*/metadata.json files"
            )
        files.extend(found)
    return files


@reader("dfdc")
def read_dfdc(
    root: str | os.PathLike,
    labels_csv: str | os.PathLike,
    name: str = "dfdc",
    split: str | Sequence[str] | None = "test",
    test_source: str = "test",
    train_metadata: Sequence[str] = (),
) -> Plan:
    """DFDC frames: ``test`` from `labels_csv` (1 = fake), ``train`` from the `train_metadata` files (REAL/FAKE).

    `train_metadata` lists the training parts' ``metadata.json`` paths (glob patterns
    allowed); asking for ``train`` without them is an error. A row whose label is not 0/1
    (or REAL/FAKE), a repeated video, or a video without frames is a bad item. Video ids
    are ``<source folder>/<stem>``. A training fake's source video is its metadata's
    ``original`` (a real video of the same part: ``dfdc_train_part_0/vudstovrck``).
    """
    splits = wanted_splits(name, split, SPLITS)
    patterns = [str(p) for p in train_metadata or []]
    if "train" in splits and not patterns:
        raise DataError(
            f"dataset {name!r}: split 'train' needs train_metadata (the dfdc_train_part_*/metadata.json "
            f"files). Fix: set train_metadata, or read split 'test'"
        )
    metadata_files = _expand(name, patterns) if "train" in splits else []

    def build(reading: Reading) -> FrameIndex:
        require_dir(name, root, "DFDC frame root", "root")
        problems = reading.problems
        seen: set[str] = set()

        def add(
            source: str, video: str, label: int, split: str, where: str, source_video: str = ""
        ) -> None:
            video_id = f"{source}/{video}"
            if video_id in seen:
                problems(
                    "duplicate", where, f"video {video_id!r} is listed twice", "remove the repeat"
                )
                return
            seen.add(video_id)
            reading.video_folder(
                f"{root}/{source}/{video}",
                label=label,
                video_id=video_id,
                source=source,
                split=split,
                where=where,
                source_video=source_video,
            )

        if "test" in splits:
            require_file(name, labels_csv, "DFDC test labels", "labels_csv")
            with open(labels_csv, newline="") as f:
                reader = csv.DictReader(f)
                if not {"filename", "label"} <= set(reader.fieldnames or []):
                    raise DataError(
                        f"dataset {name!r}: {labels_csv}: header {reader.fieldnames} lacks the "
                        f"columns filename,label [bad_header]. Fix: use the official labels.csv"
                    )
                for row in reader:
                    where = f"{labels_csv} line {reader.line_num}"
                    filename, raw = (row["filename"] or "").strip(), (row["label"] or "").strip()
                    if raw not in _CSV_LABEL or not filename:
                        problems(
                            "bad_label",
                            where,
                            f"label {raw!r} of {filename!r} is neither 1 (fake) nor 0 (real)",
                            "restore the official labels.csv",
                        )
                        continue
                    parent, video = frame_dir_key(filename, where)
                    add(parent or test_source, video, _CSV_LABEL[raw], "test", where)
        for meta_path in metadata_files:
            meta = load_json(
                name,
                meta_path,
                dict,
                "an object keyed by file name",
                "restore the official metadata.json",
            )
            source = os.path.basename(os.path.dirname(meta_path))
            for filename, info in meta.items():
                where = f"{meta_path} key {filename!r}"
                raw = info.get("label") if isinstance(info, dict) else None
                if raw not in _META_LABEL:
                    problems(
                        "bad_label",
                        where,
                        f"label {raw!r} is neither REAL nor FAKE",
                        "restore the official metadata.json",
                    )
                    continue
                original = info.get("original") if raw == "FAKE" else None
                original = original if isinstance(original, str) and original else None
                source_video = f"{source}/{frame_dir_key(original, where)[1]}" if original else ""
                add(
                    source,
                    frame_dir_key(filename, where)[1],
                    _META_LABEL[raw],
                    "train",
                    where,
                    source_video,
                )
        return reading.index(root)

    inputs = ([labels_csv] if "test" in splits else []) + metadata_files
    return Plan(build, inputs, root)
