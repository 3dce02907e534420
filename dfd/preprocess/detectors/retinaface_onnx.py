"""RetinaFace (Deng et al., "RetinaFace: Single-shot Multi-level Face Localisation in the Wild",
CVPR 2020) from an ONNX file, run with onnxruntime.

Written for the widely used PyTorch port (biubug6/Pytorch_Retinaface: mobilenet0.25 or
resnet50, exported with its `convert_to_onnx.py`): BGR input minus the mean (104, 117, 123),
NCHW; three outputs per prior -- box offsets (4), class scores (2) and five landmarks (10) --
decoded against SSD priors with variances (0.1, 0.2). Other exports that follow the same
conventions work by adjusting `min_sizes`, `steps`, `variance` and `mean_bgr` in the config.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from dfd.preprocess.detectors.weights import require_module, require_weights
from dfd.preprocess.faces import Face, FaceDetector

_WHERE = (
    "the biubug6/Pytorch_Retinaface release (mobilenet0.25_Final.pth or Resnet50_Final.pth) "
    "converted with its convert_to_onnx.py, or any RetinaFace .onnx with the same outputs"
)


def retinaface_priors(
    height: int, width: int, min_sizes: Sequence[Sequence[int]], steps: Sequence[int]
) -> np.ndarray:
    """Prior boxes (N, 4) ``cx, cy, w, h`` normalised to the input size.

    Pytorch_Retinaface `PriorBox`: for each level, a ``ceil(H/step) x ceil(W/step)`` grid in
    row-major order, one prior per min size at each cell centre ``(j + 0.5) * step``.
    """
    priors = []
    for sizes, step in zip(min_sizes, steps, strict=True):
        rows, cols = math.ceil(height / step), math.ceil(width / step)
        cy, cx = np.meshgrid(
            (np.arange(rows) + 0.5) * step / height,
            (np.arange(cols) + 0.5) * step / width,
            indexing="ij",
        )
        for_cell = [
            np.stack(
                [cx.ravel(), cy.ravel(), np.full(cx.size, s / width), np.full(cx.size, s / height)],
                1,
            )
            for s in sizes
        ]
        # cell-major, then min size: interleave the per-size arrays
        priors.append(np.stack(for_cell, axis=1).reshape(-1, 4))
    return np.concatenate(priors).astype(np.float64)


def decode_retinaface(
    loc: np.ndarray, landms: np.ndarray, priors: np.ndarray, variance: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) ``x1, y1, x2, y2`` and landmarks (N, 5, 2), normalised to the input.

    SSD box decoding (Liu et al., 2016) as in Pytorch_Retinaface `decode` / `decode_landm`:
    centre = prior centre + offset * variance[0] * prior size; size = prior size *
    exp(offset * variance[1]); each landmark = prior centre + offset * variance[0] * prior size.
    """
    centre = priors[:, :2] + loc[:, :2] * variance[0] * priors[:, 2:]
    size = priors[:, 2:] * np.exp(loc[:, 2:] * variance[1])
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    points = landms.reshape(-1, 5, 2)
    points = priors[:, None, :2] + points * variance[0] * priors[:, None, 2:]
    return boxes, points


def _area(boxes: np.ndarray) -> np.ndarray:
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression; indices of the kept boxes, best first."""
    order = np.argsort(-scores)
    keep = []
    while len(order):
        top = order[0]
        keep.append(int(top))
        rest = order[1:]
        x1 = np.maximum(boxes[top, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[top, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[top, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[top, 3], boxes[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        union = _area(boxes[top]) + _area(boxes[rest]) - inter
        iou = inter / np.maximum(union, 1e-12)
        order = rest[iou <= iou_threshold]
    return keep


class RetinaFaceDetector(FaceDetector):
    """RetinaFace boxes and five landmarks from an ONNX file at `weights_path`.

    The image is resized (aspect kept) so its longer side is `input_size` and padded at the
    right and bottom to a square, unless the model has a fixed input size, which then wins.
    """

    def __init__(
        self,
        weights_path: str | None = None,
        input_size: int = 640,
        min_score: float = 0.6,
        nms_iou: float = 0.4,
        min_sizes: Sequence[Sequence[int]] = ((16, 32), (64, 128), (256, 512)),
        steps: Sequence[int] = (8, 16, 32),
        variance: Sequence[float] = (0.1, 0.2),
        mean_bgr: Sequence[float] = (104.0, 117.0, 123.0),
        num_threads: int = 1,
    ) -> None:
        path = require_weights(weights_path, "a RetinaFace model exported to ONNX", _WHERE)
        ort = require_module("onnxruntime", "pip install onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        fixed = [d for d in model_input.shape[2:] if isinstance(d, int)]
        self.input_size = fixed[0] if len(fixed) == 2 and fixed[0] == fixed[1] else input_size
        # outputs are recognised by their width: 4 box offsets, 2 class scores, 10 landmarks
        widths = {o.shape[-1]: i for i, o in enumerate(self.session.get_outputs())}
        if not {4, 2, 10} <= set(widths):
            raise ValueError(
                f"faces.detector.weights_path={weights_path}: expected RetinaFace outputs "
                f"of width 4, 2 and 10, found {[o.shape for o in self.session.get_outputs()]}"
            )
        self.output_order = (widths[4], widths[2], widths[10])
        self.priors = retinaface_priors(self.input_size, self.input_size, min_sizes, steps)
        self.min_score, self.nms_iou = min_score, nms_iou
        self.variance = tuple(variance)
        self.mean_bgr = np.asarray(mean_bgr, dtype=np.float32)

    def detect(self, rgb: np.ndarray) -> list[Face]:
        n = self.input_size
        h, w = rgb.shape[:2]
        scale = n / max(h, w)
        resized = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))))
        canvas = np.zeros((n, n, 3), dtype=np.float32)
        canvas[: resized.shape[0], : resized.shape[1]] = resized[:, :, ::-1]  # RGB -> BGR
        canvas -= self.mean_bgr
        outputs = self.session.run(None, {self.input_name: canvas.transpose(2, 0, 1)[None]})
        loc, conf, landms = (outputs[i][0] for i in self.output_order)  # (N,4) (N,2) (N,10)
        if conf.min() < 0 or conf.max() > 1 or not np.allclose(conf.sum(-1), 1, atol=1e-3):
            conf = np.exp(conf - conf.max(-1, keepdims=True))  # logits: softmax them
            conf /= conf.sum(-1, keepdims=True)
        scores = conf[:, 1]
        keep = scores > self.min_score
        if not keep.any():
            return []
        boxes, points = decode_retinaface(loc[keep], landms[keep], self.priors[keep], self.variance)
        scores = scores[keep]
        faces = []
        for i in nms(boxes, scores, self.nms_iou):
            faces.append(
                Face(
                    box=boxes[i] * n / scale,
                    score=float(scores[i]),
                    landmarks=points[i] * n / scale,
                )
            )
        return faces
