"""The per-dataset manifest: `<output_dir>/<dataset>/manifest.json`.

One JSON object (readable by people and by `json.load`):

- ``settings``: what decides the crops (sampling, alignment, detector); a rerun with
  different settings refuses to mix outputs unless ``overwrite=true``.
- ``summary``: counts over all videos: ``videos``, ``done``, ``failed``, ``frames_written``,
  ``frames_dropped`` (frames without a face, by reason) and ``skipped`` (bad items by reason:
  failed videos and unreadable images of image folders).
- ``last_run``: this run's counts: ``processed``, ``previously_done`` (skipped as finished),
  ``failed``, start/end times.
- ``videos``: keyed by ``<source>/<video>``: ``status`` (done | failed), ``input`` (absolute
  path), ``frames_total``, ``frames_sampled``, ``frames_with_face``, ``frames_written``,
  ``dropped``, ``skipped``, ``frame_indices`` (source frame of each sampled position; crop
  ``NNN.png`` is position NNN), ``reason`` and ``message`` for failures, ``note``, ``seconds``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
FORMAT = "dfd.preprocess/manifest-v1"


def load_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest at `path`, or None if there is none; a damaged one is an error."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} is not valid JSON ({err}); move it away to rebuild it from the outputs"
        ) from err
    if data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a dfd.preprocess manifest (format {data.get('format')!r})")
    return data


def summarize(videos: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Counts over all video entries (see the module docstring)."""
    skipped: Counter = Counter()
    dropped: Counter = Counter()
    done = failed = written = 0
    for entry in videos.values():
        if entry["status"] == "done":
            done += 1
        else:
            failed += 1
            skipped[entry.get("reason") or "unknown"] += 1
        written += entry.get("frames_written") or 0
        dropped.update(entry.get("dropped") or {})
        skipped.update(entry.get("skipped") or {})
    return {
        "videos": len(videos),
        "done": done,
        "failed": failed,
        "frames_written": written,
        "frames_dropped": dict(sorted(dropped.items())),
        "skipped": dict(sorted(skipped.items())),
    }


def write_manifest(path: Path, manifest: Mapping[str, Any]) -> None:
    """Write `manifest` as JSON atomically (a crash never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)
