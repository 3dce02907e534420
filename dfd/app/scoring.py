"""What the app does with one uploaded file: refuse it with a message, or score its faces.

Scoring is `dfd.predict`'s: its `Predictor` runs the face pipeline of ``conf/faces`` (the
one that made the training crops) and its `FaceScorer` the checkpoint's input transform and
precision; a video is sampled and scored as `dfd.evaluate` scores one (`finish_video`). The
app asks for every face of an image or frame (``all_faces``), each one boxed; a video's
score and curve use the largest face of each frame, as evaluation does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from omegaconf import DictConfig

from dfd.engine.restore import ScoringModel
from dfd.predict.predictor import OK, UNREADABLE, Prediction, Predictor, finish_video
from dfd.preprocess.errors import InputItemError
from dfd.preprocess.faces import build_face_detector
from dfd.preprocess.pipeline import FacePipeline, FaceSettings, detector_config
from dfd.preprocess.reading import open_frames
from dfd.scoring.faces import FaceScorer

FAKE_COLOUR, REAL_COLOUR = (220, 40, 40), (30, 160, 60)  # RGB: p(fake) >= 0.5 / below


@dataclass
class MediaResult:
    """One file's outcome: a refusal (`message`), or its rows with boxed pictures.

    Attributes:
        kind: ``image`` or ``video`` (None when refused before reading).
        message: why nothing was scored (too large, not a medium, unreadable, no face), or None.
        rows: `dfd.predict`'s rows: one per face of the image or of each sampled frame.
        pictures: (RGB picture with every face boxed and labelled, caption): the image, or
            up to `frames_shown` of the video's sampled frames.
        video_score: the video's score (`finish_video`), None for an image.
    """

    kind: str | None
    message: str | None = None
    rows: list[Prediction] = field(default_factory=list)
    pictures: list[tuple[np.ndarray, str]] = field(default_factory=list)
    video_score: float | None = None

    def curve(self) -> list[tuple[int, float]]:
        """(frame index, p(fake) of its largest face) of every scored frame of a video."""
        return [(r.frame, r.p_fake) for r in self.rows if r.status == OK and r.face == 0]


def draw_faces(rgb: np.ndarray, rows: list[Prediction]) -> np.ndarray:
    """A copy of `rgb` with each scored face boxed and labelled ``<rank>: <p(fake)>``."""
    out = np.ascontiguousarray(rgb.copy())
    thick = max(2, round(max(out.shape[:2]) / 300))
    for row in rows:
        if row.status != OK or row.box_x1 is None:
            continue
        colour = FAKE_COLOUR if row.p_fake >= 0.5 else REAL_COLOUR
        x1, y1, x2, y2 = (int(round(v)) for v in (row.box_x1, row.box_y1, row.box_x2, row.box_y2))
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick)
        label = f"{row.face + 1}: p(fake) {row.p_fake:.3f}"
        scale = thick / 3
        (w, h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        top = max(y1 - h - base - 4, 0)
        cv2.rectangle(out, (x1, top), (x1 + w + 4, top + h + base + 4), colour, -1)
        cv2.putText(
            out, label, (x1 + 2, top + h + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
            thick, cv2.LINE_AA,
        )  # fmt: skip
    return out


class MediaScorer:
    """Checks and scores uploaded files with one loaded detector and the ``faces`` pipeline."""

    def __init__(
        self,
        loaded: ScoringModel,
        faces: DictConfig,
        max_bytes: int,
        batch_size: int = 64,
        frames_shown: int = 8,
        device: str | None = None,
    ) -> None:
        self.loaded = loaded
        self.settings = FaceSettings.from_config(faces)
        self.pipeline = FacePipeline(build_face_detector(detector_config(faces)), self.settings)
        self.max_bytes = max_bytes
        self.frames_shown = frames_shown
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.scorer = FaceScorer(
            loaded.detector, torch.device(device), batch_size, loaded.precision
        )

    def refusal(self, path: Path) -> str | None:
        """Why `path` is not scored (size, type), or None: checked before it is read."""
        if not path.is_file():
            return "No file arrived: upload an image or a video."
        size = path.stat().st_size
        if size > self.max_bytes:
            return (
                f"{path.name} is {size / 2**20:.1f} MB, above this page's limit of "
                f"{self.max_bytes / 2**20:.0f} MB: upload a smaller file (or start the app "
                f"with a higher max_upload_mb)."
            )
        if self.kind(path) is None:
            known = ", ".join((*self.settings.image_extensions, *self.settings.video_extensions))
            return f"{path.name} is not an image or a video this page reads ({known})."
        return None

    def kind(self, path: Path) -> str | None:
        suffix = path.suffix.lower()
        if suffix in self.settings.image_extensions:
            return "image"
        return "video" if suffix in self.settings.video_extensions else None

    def score(self, path: Path) -> MediaResult:
        """Refuse `path` or score every face in it, as `dfd.predict` with ``all_faces=true``."""
        path = Path(path)
        refused = self.refusal(path)
        if refused:
            return MediaResult(None, refused)
        kind = self.kind(path)
        predictor = Predictor(self.pipeline, self.scorer, True, self.loaded.frames_per_video)
        rows = predictor.image(path) if kind == "image" else predictor.video(path)
        self.scorer.finish()
        result = MediaResult(kind, rows=rows)
        if rows and rows[0].status == UNREADABLE:
            result.message = f"{path.name} cannot be read as an {kind}: {rows[0].detail}."
            return result
        if kind == "video":
            result.video_score = finish_video(rows, self.loaded.aggregate)
        if not [r for r in rows if r.status == OK]:
            result.message = f"No face was found in {path.name}."
        result.pictures = self._pictures(path, kind, rows)
        return result

    def _pictures(self, path: Path, kind: str, rows: list[Prediction]) -> list[tuple[Any, str]]:
        if kind == "image":
            rgb = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            return [(draw_faces(rgb, rows), path.name)]
        frames = sorted({r.frame for r in rows if r.status == OK})
        if len(frames) > self.frames_shown:
            picks = np.linspace(0, len(frames) - 1, self.frames_shown).round().astype(int)
            frames = [frames[i] for i in picks]
        pictures = []
        try:
            reader = open_frames(path, self.settings.image_extensions)
            for index, frame in reader.read(np.array(frames)):
                if isinstance(frame, InputItemError):
                    continue
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                pictures.append(
                    (draw_faces(rgb, [r for r in rows if r.frame == index]), f"frame {index}")
                )
        except InputItemError:
            return []
        return pictures
