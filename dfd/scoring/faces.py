"""Scoring face crops with a trained detector, a batch at a time (`dfd.predict`, the app).

RGB crops go to p(fake) through the backbone's own input transform, in the checkpoint's
training precision.
"""

from __future__ import annotations

import contextlib
import random
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from dfd.data.frames import FrameTransform
from dfd.models.detector import Detector
from dfd.scoring.inference import NonFiniteScoresError

PRECISIONS = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Scored(Protocol):
    p_fake: float | None


class FaceScorer:
    """p(fake) of RGB face crops, computed in batches of `batch_size` on `device`.

    `add` queues a crop with the record that receives its score; a full batch is scored at
    once, `finish` scores the rest. Crops go through `FrameTransform` of the backbone's input
    spec: the same resize and normalization as evaluation; `precision` (no | bf16 | fp16)
    autocasts the forward pass as Accelerate does for training and evaluation.
    """

    def __init__(
        self, model: Detector, device: torch.device, batch_size: int, precision: str = "no"
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size={batch_size} must be a positive integer")
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r} must be one of {list(PRECISIONS)}")
        self.dtype = PRECISIONS[precision]
        self.model = model.to(device).eval()
        self.device = device
        self.batch_size = batch_size
        self.transform = FrameTransform(model.backbone.input_spec)
        self._rng = random.Random(0)  # evaluation transforms draw nothing; the API wants one
        self._pending: list[tuple[Scored, torch.Tensor]] = []

    def add(self, record: Scored, crop: np.ndarray) -> None:
        """Queue an (H, W, 3) RGB uint8 crop; its p(fake) lands in ``record.p_fake``."""
        self._pending.append((record, self.transform(Image.fromarray(crop), self._rng)))
        if len(self._pending) >= self.batch_size:
            self._flush()

    def finish(self) -> None:
        """Score what is still queued."""
        if self._pending:
            self._flush()

    @torch.inference_mode()
    def _flush(self) -> None:
        batch = torch.stack([x for _, x in self._pending]).to(self.device)  # (B, 3, H, W)
        # Accelerate's mixed precision, as dfd.evaluate scores: autocast around the forward
        autocast = (
            torch.autocast(self.device.type, dtype=self.dtype)
            if self.dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            probs = self.model.fake_probability(batch).float().cpu().numpy()  # (B,)
        if not np.isfinite(probs).all():
            # never a row that says "ok" with no score in it
            raise NonFiniteScoresError(
                f"{int((~np.isfinite(probs)).sum())} of {len(probs)} faces got a non-finite "
                f"p(fake): the checkpoint's weights or the precision broke; check the "
                f"checkpoint, or score in full precision (precision=no)"
            )
        for (record, _), p in zip(self._pending, probs, strict=True):
            record.p_fake = float(p)
        self._pending = []
