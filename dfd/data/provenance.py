"""Where a dataset's face crops came from, read from the `dfd.preprocess` manifest beside them.

Published numbers in this field move with the face pipeline and the frames used per video
(DeepfakeBench's users report papers reproduced only once they used its 32 frames per
video and its alignment), so every run records, per dataset, the pipeline that cropped
its frames and the frames per video it actually used, and warns when training and test
crops come from different pipelines.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dfd.data.index import FrameIndex
from dfd.preprocess.manifest import FORMAT, MANIFEST_NAME

UNKNOWN = "unknown"
# crops live at <out>/<dataset>/frames/<source>/<video>/NNN.png; the manifest at <out>/<dataset>/
_MAX_LEVELS = 6


def find_manifest(frame_path: str) -> Path | None:
    """The nearest `manifest.json` of dfd.preprocess above a frame, or None."""
    folder = Path(frame_path).parent
    for _ in range(_MAX_LEVELS):
        candidate = folder / MANIFEST_NAME
        if candidate.is_file():
            return candidate
        if folder.parent == folder:
            break
        folder = folder.parent
    return None


def _pipeline(manifest: Mapping[str, Any]) -> dict[str, str]:
    s = manifest.get("settings", {})
    detector = dict(s.get("detector") or {})
    name = str(detector.pop("_target_", UNKNOWN)).rsplit(".", 1)[-1]
    frames = f"{s.get('mode', UNKNOWN)}:{s.get('num_frames', '?')}"
    if s.get("mode") == "fixed_stride":
        frames = f"fixed_stride:{s.get('stride', '?')}"
    return {
        "detector": name,
        "landmarks": str(detector.get("model") or detector.get("weights_path") or name),
        "crop": f"{s.get('size', '?')}px scale {s.get('scale', '?')} redetect {s.get('redetect', '?')}",
        "sampling": frames,
        "dfd": str(manifest.get("dfd", UNKNOWN)),
    }


def dataset_provenance(index: FrameIndex) -> dict[str, str]:
    """The preprocessing behind `index`'s crops and the frames per video used.

    ``pipeline`` is ``unknown`` (and the other fields absent) when no manifest is found, e.g.
    for crops made by DeepfakeBench's or the authors' own scripts.
    """
    per_video = Counter(index.video_ids)
    counts = sorted(per_video.values())
    used = {
        "frames_per_video": str(counts[len(counts) // 2]) if counts else "0",
        "frames_per_video_range": f"{counts[0]}-{counts[-1]}" if counts else "0",
    }
    manifest = find_manifest(index.paths[0]) if len(index) else None
    if manifest is None:
        return {"pipeline": UNKNOWN, **used}
    try:
        data = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError):
        return {"pipeline": UNKNOWN, **used}
    if data.get("format") != FORMAT:
        return {"pipeline": UNKNOWN, **used}
    return {"pipeline": "dfd.preprocess", "manifest": str(manifest), **_pipeline(data), **used}


def pipeline_mismatch(
    provenance: Mapping[str, Mapping[str, str]], source: str = "train"
) -> list[str]:
    """Warnings for every target whose crops were made differently from the training crops."""
    keys = ("pipeline", "detector", "landmarks", "crop")
    ref = provenance.get(source, {})
    warnings = []
    for name, prov in provenance.items():
        if name in (source, "val"):
            continue
        diff = [k for k in keys if prov.get(k) != ref.get(k)]
        if diff:
            pairs = ", ".join(f"{k} {ref.get(k, UNKNOWN)} vs {prov.get(k, UNKNOWN)}" for k in diff)
            warnings.append(
                f"{name} was cropped by a different pipeline than {source} ({pairs}): "
                f"its numbers may not be comparable with published ones"
            )
    return warnings
