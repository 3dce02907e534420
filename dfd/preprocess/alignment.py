"""Five-point face alignment onto the ArcFace template, with DeepfakeBench's crop geometry.

DeepfakeBench (`preprocessing/preprocess.py`, `img_align_crop`) maps five landmarks (left eye,
right eye, nose tip, left and right mouth corner; "left" = the smaller x of an upright frontal
face, i.e. the subject's right) onto InsightFace's ArcFace 112x112 template shifted by +8 px
on x, rescales it to the output size, and shrinks it by a margin scale (1.3) around the centre
so the crop shows some context around the face. This module reproduces that geometry exactly.
"""

from __future__ import annotations

import cv2
import numpy as np

# InsightFace's ArcFace template for 112x112 crops (arcface_torch / `face_align.py`).
ARCFACE_TEMPLATE_112 = np.array(
    [
        [30.2946, 51.6963],
        [65.5318, 51.5014],
        [48.0252, 71.7366],
        [33.5493, 92.3655],
        [62.7299, 92.2041],
    ],
    dtype=np.float64,
)
LANDMARK_NAMES = ("left_eye", "right_eye", "nose_tip", "left_mouth", "right_mouth")


def arcface_template(size: int = 256, scale: float = 1.3) -> np.ndarray:
    """Target positions (5, 2) of the five landmarks in a `size` x `size` aligned crop.

    DeepfakeBench's `img_align_crop`: shift the 112x112 ArcFace template by +8 px on x (the
    template was made for 112x96 crops), scale it to `size`, add a margin of
    ``size * (scale - 1) / 2`` on each side, then scale the enlarged canvas back to `size`:
    ``t' = ((t + [8, 0]) * size / 112 + size * (scale - 1) / 2) * size / (size * scale)``.
    With `scale` = 1 the face fills the crop as in ArcFace; 1.3 leaves 15% context per side.
    """
    if size <= 0 or scale <= 0:
        raise ValueError(f"align size and scale must be positive, got size={size}, scale={scale}")
    dst = ARCFACE_TEMPLATE_112 + np.array([8.0, 0.0])
    dst = dst * size / 112.0
    margin = size * (scale - 1.0) / 2.0
    return (dst + margin) * size / (size + 2.0 * margin)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping `src` onto `dst`.

    Umeyama, "Least-squares estimation of transformation parameters between two point
    patterns", TPAMI 1991 -- the estimator behind `skimage.transform.SimilarityTransform`,
    which DeepfakeBench calls; implemented here in numpy so the runtime needs no scikit-image.
    Returns the 2x3 matrix for `cv2.warpAffine`.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two (N>=2, 2) point arrays, got {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    # reflection guard: a mirrored face must not be "aligned" by flipping it
    d = np.ones(2)
    if np.linalg.det(cov) < 0:
        d[-1] = -1.0
    rotation = u @ np.diag(d) @ vt
    src_var = (src_c**2).sum() / len(src)
    if src_var == 0:
        raise ValueError("landmarks are all the same point: no transform exists")
    scale = (sigma * d).sum() / src_var
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine `matrix` to (N, 2) `points`."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def align_face(
    image: np.ndarray, landmarks: np.ndarray, size: int = 256, scale: float = 1.3
) -> tuple[np.ndarray, np.ndarray]:
    """Warp `image` so its five `landmarks` land on `arcface_template(size, scale)`.

    Returns the `size` x `size` crop and the 2x3 matrix used (image -> crop coordinates).
    Same steps as DeepfakeBench's `img_align_crop`: similarity fit, then `cv2.warpAffine`
    with bilinear interpolation and a black border.
    """
    matrix = similarity_transform(landmarks, arcface_template(size, scale))
    crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR)
    return crop, matrix
