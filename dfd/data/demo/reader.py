"""The demo's reader: one dataset and split of the generated benchmark as a `FrameIndex`."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from dfd.data.demo.build import MANIFEST, DemoSpec, ensure_demo
from dfd.data.demo.recipes import get_recipe
from dfd.data.index import FrameIndex

ON_ERROR = ("raise", "skip")


def demo_index(
    root: str | os.PathLike,
    dataset: str,
    split: str | list[str],
    on_error: str = "raise",
    spec: DemoSpec | None = None,
) -> FrameIndex:
    """Frames of one demo dataset and split(s), generating the benchmark under `root` if needed.

    `dataset` is one of `recipes.DATASETS` (``source`` has ``train`` and ``val``, each
    target only ``test``); an unknown dataset or split is a ValueError that lists the valid
    values. Paths are absolute and the index is named after the dataset. A frame listed in
    the manifest but missing on disk raises with `on_error="raise"` and is counted in
    ``skipped["missing_file"]`` with ``"skip"``. `spec` (default: the full demo) exists so
    tests can read a small benchmark.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {list(ON_ERROR)}, got {on_error!r}")
    recipe = get_recipe(dataset)
    wanted = [split] if isinstance(split, str) else list(split)
    valid = recipe.splits()
    bad = [s for s in wanted if s not in valid]
    if bad or not wanted:
        raise ValueError(
            f"unknown split {bad or wanted!r} for demo dataset {dataset!r}; valid: {list(valid)}"
        )

    folder = ensure_demo(root, spec)
    rows: list[dict] = []
    skipped: dict[str, int] = {}
    with open(folder / MANIFEST, newline="") as f:
        for row in csv.DictReader(f):
            if not row["path"].startswith(f"{dataset}/") or row["split"] not in wanted:
                continue
            path = folder / row["path"]
            if not path.is_file():
                if on_error == "raise":
                    raise FileNotFoundError(
                        f"demo frame {path} is listed in {folder / MANIFEST} but missing; "
                        f"delete {folder} to regenerate the demo"
                    )
                skipped["missing_file"] = skipped.get("missing_file", 0) + 1
                continue
            rows.append({**row, "path": str(Path(path).resolve())})
    return FrameIndex.from_rows(dataset, rows, skipped=skipped)
