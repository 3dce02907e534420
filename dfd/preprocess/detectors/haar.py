"""OpenCV's Viola-Jones Haar cascade for boxes, FaceMesh for the five points.

Haar cascades (Viola & Jones, CVPR 2001) ship with opencv-python 4.x but give no mouth
corners, so each box is handed to FaceMesh (`mediapipe_tflite.FaceMesh`) for the landmarks.
Upright frontal faces only; slower and less robust than BlazeFace: an alternative, not the
default.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dfd.preprocess.detectors.mediapipe_tflite import (
    FaceMesh,
    five_points_from_mesh,
    mesh_roi_from_box,
)
from dfd.preprocess.faces import Face, FaceDetector


class HaarMeshDetector(FaceDetector):
    """Haar frontal-face cascade boxes + FaceMesh landmarks.

    The cascade's level weight (its confidence) is squashed to [0, 1] with a logistic so it
    reads like the other backends' scores; faces whose FaceMesh presence score is below
    `min_landmark_score` are discarded.
    """

    def __init__(
        self,
        cascade: str = "haarcascade_frontalface_default.xml",
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 40,
        roi_scale: float = 1.5,
        min_landmark_score: float = 0.5,
        model_dir: str | None = None,
        num_threads: int = 1,
    ) -> None:
        path = Path(cascade)
        if not path.is_absolute():
            if not hasattr(cv2, "data"):
                raise ModuleNotFoundError(
                    "this OpenCV build ships no Haar cascades (opencv 5.x dropped them): "
                    "`pip install 'opencv-python-headless>=4.8,<5'`"
                )
            path = Path(cv2.data.haarcascades) / cascade
        self.classifier = cv2.CascadeClassifier(str(path))
        if self.classifier.empty():
            raise FileNotFoundError(
                f"faces.detector.cascade={cascade!r}: no Haar cascade could be loaded from {path}"
            )
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self.mesh = FaceMesh(model_dir, num_threads)
        self.roi_scale = roi_scale
        self.min_landmark_score = min_landmark_score

    def detect(self, rgb: np.ndarray) -> list[Face]:
        gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        rects, _, weights = self.classifier.detectMultiScale3(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
            outputRejectLevels=True,
        )
        faces = []
        for (x, y, w, h), weight in zip(rects, np.ravel(weights), strict=True):
            box = np.array([x, y, x + w, y + h], dtype=np.float64)
            centre, side, angle = mesh_roi_from_box(box, None, self.roi_scale)
            mesh, mesh_score = self.mesh(rgb, centre, side, angle)
            if mesh_score < self.min_landmark_score:
                continue
            score = float(1.0 / (1.0 + np.exp(-weight)))
            faces.append(Face(box=box, score=score, landmarks=five_points_from_mesh(mesh)))
        return faces
