"""dlib's HOG frontal face detector + a 68/81-point shape predictor: DeepfakeBench's choice.

DeepfakeBench (`preprocessing/preprocess.py`) detects with `dlib.get_frontal_face_detector()`
(upsampling once), predicts `shape_predictor_81_face_landmarks.dat` and aligns on points 37,
44 (one upper-eyelid point per eye), 30 (nose tip), 49 and 55 (next to the mouth corners) --
iBUG-68 numbering, which the 81-point model shares. ``keypoints: deepfakebench`` reproduces
that; ``keypoints: centers`` uses eye centres and the true mouth corners (48, 54) instead.
"""

from __future__ import annotations

import numpy as np

from dfd.preprocess.detectors.weights import require_module, require_weights
from dfd.preprocess.faces import Face, FaceDetector

KEYPOINT_MODES = ("deepfakebench", "centers")
_WHERE = (
    "DeepfakeBench's repository (preprocessing/dlib_tools/shape_predictor_81_face_landmarks.dat), "
    "or dlib.net/files/shape_predictor_68_face_landmarks.dat.bz2 (bunzip2 it; also inside the "
    "face_recognition_models wheel)"
)


def five_points_from_ibug(points: np.ndarray, keypoints: str) -> np.ndarray:
    """(5, 2) alignment points from 68 or 81 iBUG-numbered landmarks.

    ``deepfakebench``: points 37, 44, 30, 49, 55 exactly as DeepfakeBench's `get_keypts`;
    ``centers``: mean of each eye's six points (36-41, 42-47), nose tip 30, mouth corners 48, 54.
    """
    if keypoints == "deepfakebench":
        return points[[37, 44, 30, 49, 55]].astype(np.float64)
    if keypoints == "centers":
        return np.stack(
            [points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]]
        ).astype(np.float64)
    raise ValueError(f"faces.detector.keypoints={keypoints!r} must be one of {KEYPOINT_MODES}")


class DlibDetector(FaceDetector):
    """dlib HOG detector + shape predictor from `weights_path` (68 or 81 points)."""

    def __init__(
        self, weights_path: str | None = None, upsample: int = 1, keypoints: str = "deepfakebench"
    ) -> None:
        path = require_weights(
            weights_path, "a dlib 68- or 81-point shape predictor (.dat)", _WHERE
        )
        if keypoints not in KEYPOINT_MODES:
            raise ValueError(
                f"faces.detector.keypoints={keypoints!r} must be one of {KEYPOINT_MODES}"
            )
        dlib = require_module(
            "dlib", "pip install dlib-bin (prebuilt wheel), or pip install dlib (compiles ~11 min)"
        )
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(path))
        # the predictor does not expose its point count: run it once on a blank image
        probe = self.predictor(np.zeros((32, 32, 3), np.uint8), dlib.rectangle(0, 0, 31, 31))
        if probe.num_parts not in (68, 81):
            raise ValueError(
                f"faces.detector.weights_path={weights_path} predicts "
                f"{probe.num_parts} points; the 5-point alignment needs a 68- or "
                "81-point model (dlib's own 5-point model has no mouth corners)"
            )
        self.upsample = upsample
        self.keypoints = keypoints

    def detect(self, rgb: np.ndarray) -> list[Face]:
        rects, scores, _ = self.detector.run(np.ascontiguousarray(rgb), self.upsample, 0.0)
        faces = []
        for rect, score in zip(rects, scores, strict=True):
            shape = self.predictor(rgb, rect)
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], dtype=np.float64)
            # the HOG score is an SVM margin; a logistic maps it into [0, 1] like other backends
            faces.append(
                Face(
                    box=box,
                    score=float(1.0 / (1.0 + np.exp(-score))),
                    landmarks=five_points_from_ibug(points, self.keypoints),
                )
            )
        return faces
