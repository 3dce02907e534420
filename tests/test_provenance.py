"""Every run records which face pipeline cropped each dataset, and warns when they differ."""

from __future__ import annotations

import json

from dfd.data.index import FrameIndex
from dfd.data.provenance import dataset_provenance, pipeline_mismatch
from dfd.preprocess.manifest import FORMAT


def _index(root, name, videos=2, frames=3, manifest=None):
    rows = []
    for v in range(videos):
        for f in range(frames if v else frames + 2):
            path = root / name / "frames" / "real" / f"{v:03d}" / f"{f:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
            rows.append(
                {
                    "path": str(path),
                    "label": 0,
                    "video_id": f"real/{v:03d}",
                    "source": "real",
                    "split": "test",
                }
            )
    if manifest is not None:
        (root / name / "manifest.json").write_text(json.dumps(manifest))
    return FrameIndex.from_rows(name, rows)


def _manifest(detector="dfd.preprocess.detectors.mediapipe_tflite.BlazeFaceMeshDetector", size=256):
    settings = {
        "mode": "fixed_num_frames",
        "num_frames": 32,
        "stride": 10,
        "size": size,
        "scale": 1.3,
        "redetect": True,
        "detector": {"_target_": detector, "model": "full_range"},
    }
    return {"format": FORMAT, "dfd": "0.1.0", "settings": settings, "videos": {}}


def test_a_dataset_cropped_by_dfd_preprocess_reports_its_pipeline(tmp_path):
    prov = dataset_provenance(_index(tmp_path, "cdf", manifest=_manifest()))
    assert prov["pipeline"] == "dfd.preprocess"
    assert prov["detector"] == "BlazeFaceMeshDetector" and prov["landmarks"] == "full_range"
    assert prov["crop"] == "256px scale 1.3 redetect True"
    assert prov["sampling"] == "fixed_num_frames:32" and prov["dfd"] == "0.1.0"
    assert prov["frames_per_video"] == "5" and prov["frames_per_video_range"] == "3-5"


def test_crops_without_a_manifest_are_unknown(tmp_path):
    prov = dataset_provenance(_index(tmp_path, "other"))
    assert prov["pipeline"] == "unknown" and "detector" not in prov


def test_train_and_target_cropped_differently_warn(tmp_path):
    prov = {
        "train": dataset_provenance(_index(tmp_path, "ff", manifest=_manifest())),
        "val": dataset_provenance(_index(tmp_path, "ff", manifest=_manifest())),
        "same": dataset_provenance(_index(tmp_path, "same", manifest=_manifest())),
        "dlib": dataset_provenance(_index(tmp_path, "dlib", manifest=_manifest("x.DlibDetector"))),
        "none": dataset_provenance(_index(tmp_path, "none")),
    }
    warnings = pipeline_mismatch(prov)
    assert len(warnings) == 2
    assert (
        warnings[0].startswith("dlib was cropped by a different pipeline")
        and "DlibDetector" in warnings[0]
    )
    assert (
        warnings[1].startswith("none was cropped")
        and "pipeline dfd.preprocess vs unknown" in warnings[1]
    )
