"""The face record every detector returns, and the interface a detector implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from hydra.errors import InstantiationException
from hydra.utils import instantiate


@dataclass(frozen=True)
class Face:
    """One detected face in pixel coordinates of the image it was found in.

    Attributes:
        box: (4,) float array ``x1, y1, x2, y2``.
        score: detector confidence in [0, 1] (backends without one report 1.0).
        landmarks: (5, 2) float array in the order of
            `dfd.preprocess.alignment.LANDMARK_NAMES`: left eye, right eye, nose tip, left
            and right mouth corner, where "left" is the image left of an upright face.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray

    @property
    def area(self) -> float:
        """Box area in square pixels (0 for degenerate boxes)."""
        x1, y1, x2, y2 = self.box
        return float(max(0.0, x2 - x1) * max(0.0, y2 - y1))


class FaceDetector(ABC):
    """A face detector with a five-point landmark model.

    Implementations load their models in ``__init__`` (so a missing file or runtime fails
    when the detector is built, before any video is read) and are built from
    ``conf/faces/detector/*.yaml`` with `hydra.utils.instantiate`.
    """

    @abstractmethod
    def detect(self, rgb: np.ndarray) -> list[Face]:
        """All faces found in an RGB uint8 image of shape (H, W, 3), any order."""


def by_size(faces: list[Face]) -> list[Face]:
    """`faces` largest box first (ties: the higher score; then detector order)."""
    return sorted(faces, key=lambda f: (f.area, f.score), reverse=True)


def largest_face(faces: list[Face]) -> Face | None:
    """The face with the largest box (ties: the higher score), as DeepfakeBench keeps.

    DeepfakeBench keeps ``max(faces, key=width * height)`` of dlib's detections.
    """
    return by_size(faces)[0] if faces else None


def build_face_detector(cfg: Mapping[str, Any]) -> FaceDetector:
    """Instantiate the ``faces.detector`` config (a mapping with ``_target_``).

    Hydra wraps an exception raised inside a constructor in an InstantiationException;
    the backend's own error says which file is missing or which package to install, so that
    one is raised as is.
    """
    try:
        detector = instantiate(cfg)
    except InstantiationException as err:
        if str(err).startswith("Error in call to target") and err.__cause__ is not None:
            raise err.__cause__ from None
        raise
    if not isinstance(detector, FaceDetector):
        raise TypeError(
            f"faces.detector._target_={cfg.get('_target_')!r} built a "
            f"{type(detector).__name__}, not a FaceDetector"
        )
    return detector
