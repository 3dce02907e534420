"""Face manipulations for the demo: a modified copy of a region blended back into the frame.

This is the artifact family real face swaps and reenactments leave: a region whose colour
and geometry disagree slightly with the rest of the face, joined at a blending boundary.
The colour change (per-channel gain in [0.6, 1.4], offset in [-0.2, 0.2], images in
[0, 1]) and the slight rotation and scale follow the values measured in
``/work/shared/reference/demo.md``; with a gain of only [0.8, 1.2] nothing transferred.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dfd.data.demo.render import IMAGE_SIZE, Pose, ellipse_alpha, face_coords


@dataclass(frozen=True)
class BlendParams:
    """How one frame's region copy is modified before it is blended back.

    Attributes:
        gain: per-channel multiplicative colour change, shape ``(3,)``.
        offset: per-channel additive colour change, shape ``(3,)``.
        rotation: rotation of the copy about the face centre, radians.
        scale: scale of the copy about the face centre.
    """

    gain: np.ndarray
    offset: np.ndarray
    rotation: float
    scale: float


def sample_blend(rng: np.random.Generator) -> BlendParams:
    """Parameters of one fake video (fixed across its frames up to `jitter_blend`)."""
    return BlendParams(
        gain=rng.uniform(0.6, 1.4, 3),
        offset=rng.uniform(-0.2, 0.2, 3),
        rotation=float(np.deg2rad(rng.uniform(-6, 6))),
        scale=float(rng.uniform(0.93, 1.07)),
    )


def jitter_blend(params: BlendParams, rng: np.random.Generator) -> BlendParams:
    """One frame's parameters: the video's, moved slightly, as a per-frame fit would wobble."""
    return BlendParams(
        gain=params.gain + rng.uniform(-0.03, 0.03, 3),
        offset=params.offset + rng.uniform(-0.02, 0.02, 3),
        rotation=params.rotation + float(np.deg2rad(rng.uniform(-1, 1))),
        scale=params.scale * float(1 + rng.uniform(-0.01, 0.01)),
    )


# Regions in face coordinates (the face ellipse is the unit circle): (centre, radii).
REGIONS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    # eyes to mouth, leaving forehead, cheeks' rim and chin to the original face
    "inner": ((0.0, 0.15), (0.72, 0.72)),
    "mouth": ((0.0, 0.52), (0.48, 0.24)),
    # the whole face but its rim: what a face swap replaces
    "face": ((0.0, 0.05), (0.88, 0.9)),
}


def soft_mask(pose: Pose, region: str, sigma: float, size: int = IMAGE_SIZE) -> np.ndarray:
    """Blending mask of a named region at a frame's pose, float32 ``(H, W)`` in [0, 1].

    The region's ellipse is blurred with a Gaussian of `sigma` pixels, the usual way face
    swaps hide the seam; `sigma` of 0 keeps the hard edge.
    """
    if region not in REGIONS:
        raise ValueError(f"unknown blend region {region!r}; valid: {sorted(REGIONS)}")
    centre, radii = REGIONS[region]
    u, v = face_coords(pose, size)
    mask = (ellipse_alpha(u, v, pose, centre, radii) >= 0.5).astype(np.float32)
    if sigma > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_CONSTANT)
    return mask


def eye_band_mask(pose: Pose, eye_dy: float, size: int = IMAGE_SIZE) -> np.ndarray:
    """Hard-edged band across both eyes and brows, float32 ``(H, W)`` with values 0 or 1.

    Kept hard on purpose: the source domain only shows soft seams, so a hard seam is a
    blending boundary the detector has never seen.
    """
    u, v = face_coords(pose, size)
    band = (np.abs(u) <= 0.8) & (v >= eye_dy - 0.24) & (v <= eye_dy + 0.16)
    return band.astype(np.float32)


def blend(
    frame: np.ndarray, donor: np.ndarray, mask: np.ndarray, params: BlendParams, pose: Pose
) -> np.ndarray:
    """Blend a modified `donor` into `frame` through `mask`: float32 ``(H, W, 3)`` in [0, 1].

    The donor (the frame itself for a self-blend, another identity drawn at this pose for a
    swap) is rotated and scaled about the face centre, colour-changed, then composited as
    ``mask * donor' + (1 - mask) * frame``, so pixels where the mask is 0 stay untouched.
    """
    h, w = frame.shape[:2]
    # OpenCV puts pixel centres at integers, dfd's face coordinates at half-integers.
    centre = (pose.cx - 0.5, pose.cy - 0.5)
    warp = cv2.getRotationMatrix2D(centre, float(np.rad2deg(params.rotation)), params.scale)
    moved = cv2.warpAffine(
        donor, warp, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    moved = np.clip(moved * params.gain.astype(np.float32) + params.offset.astype(np.float32), 0, 1)
    m = mask[..., None]
    return (m * moved + (1 - m) * frame).astype(np.float32)
