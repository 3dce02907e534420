"""Scoring the faces of images and videos with a trained detector (`python -m dfd.predict`).

Faces are found and aligned by the pipeline `dfd.preprocess` uses (``conf/faces/``), so the
detector sees what it saw in training; a video is sampled as for evaluation and gets the
video score `dfd.evaluate` would give it (`dfd.scoring.metrics.video_scores` with the checkpoint's
``eval.aggregate``, in its training precision), plus one row per frame. Frames and images
without a face get a row with their status. Output: a CSV or JSON file (see
conf/predict.yaml for the columns).
"""

from __future__ import annotations

import csv
import glob
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from omegaconf import DictConfig

from dfd.data.index import FrameIndex
from dfd.engine.restore import load_scoring_model
from dfd.preprocess.errors import InputItemError
from dfd.preprocess.faces import build_face_detector
from dfd.preprocess.pipeline import FacePipeline, FaceSettings, FrameFaces, detector_config
from dfd.runtime.errors import UserError, config_flag
from dfd.runtime.progress import progress
from dfd.scoring.faces import FaceScorer
from dfd.scoring.metrics import video_scores

OK, UNREADABLE, BEYOND_LIMIT = "ok", "unreadable", "beyond_frames_per_video"
FORMATS = (".csv", ".json")
DEMO_WARNING = (
    "this checkpoint is dfd's demo model (backbone tiny_clip / data=demo): it was trained on "
    "synthetic 64x64 rendered faces, so its p_fake for a real photo or video says nothing "
    "about whether it is a deepfake; score with a detector trained on real data"
)

log = logging.getLogger(__name__)


def is_demo_model(identity: Mapping[str, Any]) -> bool:
    """Whether a checkpoint (or its HF export) is dfd's offline demo, by its identity: the
    `tiny_clip` backbone (a 64 px encoder pretrained on rendered faces) or trained on the
    `demo` data (synthetic faces)."""
    return identity.get("backbone") == "tiny_clip" or identity.get("data") == "demo"


@dataclass
class Prediction:
    """One output row: a face of an image or of a sampled video frame, or why there is none.

    `status` is ``ok`` (scored), ``no_face``, ``no_face_in_crop`` (lost after alignment, as
    dfd.preprocess drops it), ``unreadable`` (see `detail`) or ``beyond_frames_per_video``
    (a frame with a face that evaluation's frames-per-video limit leaves out).
    """

    input: str
    kind: str  # image | video
    frame: int | None = None  # the frame's index in the video
    face: int | None = None  # 0 = the largest face of the image or frame
    status: str = OK
    box_x1: float | None = None
    box_y1: float | None = None
    box_x2: float | None = None
    box_y2: float | None = None
    face_score: float | None = None  # detector confidence
    p_fake: float | None = None
    video_score: float | None = None  # videos: eval.aggregate of the largest face's p_fake
    detail: str | None = None


def find_inputs(spec: str, settings: FaceSettings) -> list[tuple[Path, str]]:
    """(path, ``image`` | ``video``) of every input that `spec` names, sorted.

    `spec` is an image or video file, a folder (searched recursively) or a glob pattern
    (``**`` crosses folders); files are told apart by their extension
    (``faces.image_extensions``, ``faces.video_extensions``).
    """

    def kind(path: Path) -> str | None:
        suffix = path.suffix.lower()
        if suffix in settings.image_extensions:
            return "image"
        return "video" if suffix in settings.video_extensions else None

    known = ", ".join((*settings.image_extensions, *settings.video_extensions))
    path = Path(spec).expanduser()
    if path.is_file():
        if kind(path) is None:
            raise UserError(
                f"input={spec} is neither an image nor a video by its extension ({known}); "
                "add it to faces.image_extensions or faces.video_extensions"
            )
        return [(path, kind(path))]
    if path.is_dir():
        candidates = sorted(p for p in path.rglob("*") if p.is_file())
    elif glob.has_magic(spec):
        candidates = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
        candidates = [p for p in candidates if p.is_file()]
    else:
        raise FileNotFoundError(
            f"input={spec}: no such file or folder (and no pattern: quote a glob like "
            "'frames/*.png')"
        )
    found = [(p, kind(p)) for p in candidates if kind(p) is not None]
    if not found:
        raise UserError(f"input={spec}: no image or video ({known}) found there")
    return found


def _face_rows(source: str, kind: str, frame: FrameFaces, video: bool) -> list[Prediction]:
    base = {"input": source, "kind": kind, "frame": frame.index if video else None}
    if frame.error is not None:
        return [Prediction(**base, status=UNREADABLE, detail=str(frame.error))]
    if not frame.faces:
        return [Prediction(**base, status=frame.dropped)]
    rows = []
    for aligned in frame.faces:
        x1, y1, x2, y2 = (round(float(v), 1) for v in aligned.face.box)
        rows.append(
            Prediction(
                **base,
                face=aligned.rank,
                box_x1=x1,
                box_y1=y1,
                box_x2=x2,
                box_y2=y2,
                face_score=round(float(aligned.face.score), 4),
            )
        )
    return rows


class Predictor:
    """Runs the face pipeline over inputs and hands every face to the scorer."""

    def __init__(
        self,
        pipeline: FacePipeline,
        scorer: FaceScorer,
        all_faces: bool,
        frames_per_video: int | None,
    ) -> None:
        self.pipeline = pipeline
        self.scorer = scorer
        self.all_faces = all_faces
        self.frames_per_video = frames_per_video

    def image(self, path: Path) -> list[Prediction]:
        """Rows of one image: each face (or the largest), or one row saying why there is none."""
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            return [Prediction(str(path), "image", status=UNREADABLE, detail="cannot decode it")]
        frame = self.pipeline.align(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), all_faces=self.all_faces)
        rows = _face_rows(str(path), "image", frame, video=False)
        for row, aligned in zip(rows, frame.faces, strict=False):
            self.scorer.add(row, aligned.crop)
        return rows

    def video(self, path: Path) -> list[Prediction]:
        """Rows of every sampled frame of a video; the video score is filled in by `finish_video`.

        Frames are sampled and faces aligned exactly as dfd.preprocess makes evaluation crops;
        then, as `dfd.data.splits.load_targets` does with those crops, at most `frames_per_video`
        frames with a face are kept, evenly spaced.
        """
        frames: list[FrameFaces] = []
        try:
            self.pipeline.video(path, frames.append, frames.clear, all_faces=self.all_faces)
        except InputItemError as err:
            return [Prediction(str(path), "video", status=UNREADABLE, detail=str(err))]
        left_out = self._left_out_by_limit(frames)
        rows: list[Prediction] = []
        for frame in frames:
            frame_rows = _face_rows(str(path), "video", frame, video=True)
            for row, aligned in zip(frame_rows, frame.faces, strict=False):
                if frame.position in left_out:
                    row.status = BEYOND_LIMIT
                else:
                    self.scorer.add(row, aligned.crop)
            rows.extend(frame_rows)
        return rows

    def _left_out_by_limit(self, frames: list[FrameFaces]) -> set[int]:
        # evaluation reads the crops <position:03d>.png of the frames whose largest face
        # survived, and FrameIndex.frames_per_video picks among them by that file name
        with_face = [f.position for f in frames if f.faces and f.faces[0].rank == 0]
        names = [f"{p:03d}.png" for p in with_face]
        index = FrameIndex(
            "predict",
            names,
            np.zeros(len(names)),
            ["video"] * len(names),
            ["video"] * len(names),
            ["test"] * len(names),
        )
        keep = set(index.frames_per_video(self.frames_per_video).paths)
        return {p for p, name in zip(with_face, names, strict=True) if name not in keep}


def finish_video(rows: list[Prediction], aggregate: str = "mean") -> float | None:
    """Set every row's `video_score`: `dfd.scoring.metrics.video_scores` (mean or median) over the
    largest face of each scored frame, as dfd.evaluate aggregates a video. None when no frame
    had a face."""
    scored = [r for r in rows if r.status == OK and r.face == 0]
    if not scored:
        return None
    _, _, score = video_scores(
        ["v"] * len(scored),
        np.zeros(len(scored)),
        np.array([r.p_fake for r in scored]),
        aggregate,
    )
    value = float(score[0])
    for row in rows:
        row.video_score = value
    return value


def write_predictions(path: Path, rows: list[Prediction], identity: dict[str, Any]) -> None:
    """CSV (one row per face or status, with the checkpoint's identity on every row) or JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        data = {"checkpoint": identity, "predictions": [asdict(r) for r in rows]}
        path.write_text(json.dumps(data, indent=1) + "\n")
        return
    names = [f.name for f in fields(Prediction)] + [
        "checkpoint",
        "checkpoint_sha256",
        "demo_model",
    ]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=names)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    **asdict(row),
                    "checkpoint": identity["path"],
                    "checkpoint_sha256": identity["sha256"],
                    "demo_model": identity.get("demo_model", False),
                }
            )


def _device(name: str | None) -> torch.device:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={name}, but torch sees no GPU here: use device=cpu (or null)")
    return device


def run_prediction(cfg: DictConfig) -> list[Prediction]:
    """Score every input of ``cfg.input`` with ``cfg.checkpoint``; write and return the rows."""
    output = Path(cfg.output).expanduser()
    if output.suffix.lower() not in FORMATS:
        raise UserError(f"output={cfg.output}: the file must end in .csv or .json")
    crop, all_faces = config_flag(cfg, "crop"), config_flag(cfg, "all_faces")
    if cfg.frames_per_video is not None and int(cfg.frames_per_video) <= 0:
        raise UserError(
            f"frames_per_video={cfg.frames_per_video} must be a positive integer or null"
        )
    device = _device(cfg.device)
    settings = FaceSettings.from_config(cfg.faces)
    inputs = find_inputs(str(cfg.input), settings)
    # a checkpoint folder or a `dfd.export format=hf` folder
    loaded = load_scoring_model(Path(cfg.checkpoint).expanduser(), cfg.paths.output_dir)
    # what the checkpoint's evaluation used, unless set here
    limit = cfg.frames_per_video if cfg.frames_per_video is not None else loaded.frames_per_video
    aggregate = cfg.eval.aggregate or loaded.aggregate
    precision = cfg.precision or loaded.precision
    detector = build_face_detector(detector_config(cfg.faces)) if crop else None
    scorer = FaceScorer(loaded.detector, device, int(cfg.batch_size), precision)
    predictor = Predictor(FacePipeline(detector, settings), scorer, all_faces, limit)

    per_input: list[tuple[str, list[Prediction]]] = []
    for path, kind in progress(inputs, desc="predict", unit="input"):
        rows = predictor.image(path) if kind == "image" else predictor.video(path)
        per_input.append((kind, rows))
    scorer.finish()
    for kind, rows in per_input:
        if kind == "video":
            finish_video(rows, aggregate)
    rows = [r for _, rows in per_input for r in rows]
    demo = is_demo_model(loaded.identity)
    identity = {**loaded.identity, "demo_model": demo, "warning": DEMO_WARNING if demo else None}
    write_predictions(output, rows, identity)
    _print_summary(per_input, output)
    if demo:  # last, where it is read: beside the scores it qualifies
        log.warning(DEMO_WARNING)
    return rows


def _print_summary(per_input: list[tuple[str, list[Prediction]]], output: Path) -> None:
    shown = 20  # a folder of thousands of images belongs in the file, not on the console
    for kind, rows in per_input[:shown]:
        scored = [r for r in rows if r.status == OK]
        if kind == "video":
            score = rows[0].video_score
            text = "no face" if score is None else f"video score {score:.4f}"
            text += f" ({len(scored)} of {len({r.frame for r in rows})} frames scored)"
        elif scored:
            text = ", ".join(f"p_fake {r.p_fake:.4f}" for r in scored)
        else:
            text = rows[0].status.replace("_", " ") if rows else "nothing"
        print(f"{rows[0].input}: {text}")
    if len(per_input) > shown:
        print(f"... and {len(per_input) - shown} more inputs")
    total = sum(len(rows) for _, rows in per_input)
    print(f"{total} rows -> {output}")
