"""The demo's reader: one dataset and split of the generated benchmark as a `FrameIndex`.

A reader of the family (`dfd.data.readers._common.reader`): the same arguments
(``on_error``, ``verify``, ``cache_dir``), errors (`DataError`) and skip counts as the
benchmark readers.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence

from dfd.data.demo.build import MANIFEST, DemoSpec, ensure_demo
from dfd.data.demo.recipes import DATASETS, RECIPES
from dfd.data.index import FrameIndex
from dfd.data.readers._common import DataError, Plan, Reading, reader, wanted_splits


@reader("demo")
def demo_index(
    root: str | os.PathLike,
    dataset: str,
    split: str | Sequence[str],
    name: str | None = None,
    spec: DemoSpec | None = None,
) -> Plan:
    """Frames of one demo dataset and split(s), generating the benchmark under `root` if needed.

    `dataset` is one of `recipes.DATASETS` (``source`` has ``train`` and ``val``, each
    target only ``test``); an unknown dataset or split is a `DataError` that lists the
    valid values. Paths are absolute and the index is named `name` (default: the dataset).
    A frame listed in the manifest but missing on disk is a bad item ``missing_file``. A
    fake's source video is the real video of its identity (``real/007`` for ``inner/007``
    and for the swap ``swap/007_008``). `spec` (default: the full demo) exists so tests
    can read a small benchmark.
    """
    label = name or dataset
    if dataset not in RECIPES:
        raise DataError(
            f"unknown demo dataset {dataset!r}; valid: {list(DATASETS)}. "
            f"Fix: set dataset to one of them"
        )
    wanted = wanted_splits(label, split, RECIPES[dataset].splits())
    folder = ensure_demo(root, spec)
    manifest = f"{folder}/{MANIFEST}"

    def build(reading: Reading) -> FrameIndex:
        with open(manifest, newline="") as f:
            for line, row in enumerate(csv.DictReader(f), 2):
                if not row["path"].startswith(f"{dataset}/") or row["split"] not in wanted:
                    continue
                path = f"{folder}/{row['path']}"
                video_dir, _, frame = path.rpartition("/")
                if frame not in (reading.scanner.names(video_dir) or ()):
                    reading.problems(
                        "missing_file",
                        f"{manifest} line {line}",
                        f"demo frame {path} is listed but missing",
                        f"delete {folder} to regenerate the demo",
                    )
                    continue
                reading.rows.add_paths(
                    [path],
                    int(row["label"]),
                    row["video_id"],
                    row["source"],
                    row["split"],
                    row["source_video"],
                )
        return reading.index(manifest)

    return Plan(build, [manifest], manifest, name=label)
