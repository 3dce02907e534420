"""Procedural faces for the offline demo: one identity per video, small per-frame jitter.

A face is drawn in *face coordinates* (u, v): the face ellipse is the unit circle, u points
right and v down, and a `Pose` maps them onto pixels (centre, half-axes, in-plane angle).
Every facial feature is placed in face coordinates, so the same identity can be drawn at
another pose (per-frame jitter) and another identity can be drawn at this pose (a swap).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

IMAGE_SIZE = 64

# Skin tones from light to dark (RGB in [0, 1]); an identity mixes two neighbours.
_SKIN_TONES = np.array(
    [
        [0.96, 0.82, 0.72],
        [0.90, 0.72, 0.58],
        [0.78, 0.58, 0.42],
        [0.62, 0.44, 0.30],
        [0.45, 0.31, 0.21],
    ]
)
_HAIR_COLOURS = np.array(
    [
        [0.08, 0.06, 0.05],
        [0.25, 0.15, 0.08],
        [0.45, 0.30, 0.15],
        [0.80, 0.65, 0.38],
        [0.60, 0.25, 0.10],
        [0.55, 0.55, 0.55],
    ]
)
_SCLERA = np.array([0.95, 0.95, 0.93])
_IRIS_COLOURS = np.array(
    [[0.30, 0.18, 0.08], [0.20, 0.35, 0.60], [0.25, 0.45, 0.25], [0.10, 0.08, 0.06]]
)


@dataclass(frozen=True)
class Pose:
    """Where and how one frame shows a face.

    Attributes:
        cx, cy: face centre in pixels.
        a, b: horizontal and vertical half-axes of the face ellipse in pixels.
        angle: in-plane rotation in radians (positive turns the face clockwise on screen).
        light: directional shading across the face, (du, dv) in face coordinates.
        exposure: global brightness factor of the frame.
        blur: sigma of the camera blur in pixels.
        noise: standard deviation of the sensor noise.
    """

    cx: float
    cy: float
    a: float
    b: float
    angle: float
    light: tuple[float, float] = (0.0, 0.0)
    exposure: float = 1.0
    blur: float = 0.6
    noise: float = 0.015

    def geometry(self) -> np.ndarray:
        """The face's centre and half-axes ``(cx, cy, a, b)`` in pixels (the pretext target)."""
        return np.array([self.cx, self.cy, self.a, self.b], dtype=np.float32)


@dataclass(frozen=True)
class Identity:
    """What stays fixed across a video: colours, feature shapes and the rest pose."""

    bg_from: np.ndarray
    bg_to: np.ndarray
    bg_angle: float
    skin: np.ndarray
    hair: np.ndarray
    hairline: float
    hair_length: float
    eye_dx: float
    eye_dy: float
    eye_size: float
    iris: np.ndarray
    nose_length: float
    mouth_y: float
    mouth_width: float
    mouth_height: float
    lips: np.ndarray
    pose: Pose


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw a new identity: background, skin, hair, eye, nose and mouth shapes and a rest pose.

    The ranges keep every feature inside the face and the face inside the 64x64 frame, so
    identities differ in colour and proportions but always read as a frontal face.
    """
    tone = rng.uniform(0, len(_SKIN_TONES) - 1)
    lo = int(np.floor(tone))
    hi = min(lo + 1, len(_SKIN_TONES) - 1)
    skin = (1 - (tone - lo)) * _SKIN_TONES[lo] + (tone - lo) * _SKIN_TONES[hi]
    skin = np.clip(skin + rng.normal(0, 0.02, 3), 0, 1)
    hair = np.clip(_HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] + rng.normal(0, 0.03, 3), 0, 1)
    pose = Pose(
        cx=32 + rng.uniform(-3, 3),
        cy=33 + rng.uniform(-3, 3),
        a=rng.uniform(14.5, 18.5),
        b=rng.uniform(18.5, 23.0),
        angle=rng.uniform(-0.15, 0.15),
        light=(rng.uniform(-0.15, 0.15), rng.uniform(-0.1, 0.1)),
        exposure=rng.uniform(0.9, 1.1),
        blur=rng.uniform(0.4, 0.8),
        noise=rng.uniform(0.008, 0.02),
    )
    return Identity(
        bg_from=rng.uniform(0.05, 0.95, 3),
        bg_to=rng.uniform(0.05, 0.95, 3),
        bg_angle=rng.uniform(0, 2 * np.pi),
        skin=skin,
        hair=hair,
        hairline=rng.uniform(-0.8, -0.45),
        hair_length=rng.uniform(-0.2, 0.9),
        eye_dx=rng.uniform(0.33, 0.45),
        eye_dy=rng.uniform(-0.25, -0.1),
        eye_size=rng.uniform(0.15, 0.21),
        iris=np.clip(
            _IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))] + rng.normal(0, 0.03, 3), 0, 1
        ),
        nose_length=rng.uniform(0.14, 0.24),
        mouth_y=rng.uniform(0.45, 0.58),
        mouth_width=rng.uniform(0.26, 0.42),
        mouth_height=rng.uniform(0.06, 0.11),
        lips=np.clip(
            np.array([0.70, 0.28, 0.30]) * rng.uniform(0.7, 1.1) + rng.normal(0, 0.03, 3), 0, 1
        ),
        pose=pose,
    )


def jitter_pose(pose: Pose, rng: np.random.Generator) -> Pose:
    """A frame's pose: the identity's rest pose moved slightly (head motion, lighting flicker).

    The jitter is small against the face (about a pixel, a few degrees, a few percent of
    exposure), so frames of one video look like one continuous shot.
    """
    scale = 1 + rng.uniform(-0.03, 0.03)
    return replace(
        pose,
        cx=pose.cx + rng.uniform(-1.2, 1.2),
        cy=pose.cy + rng.uniform(-1.2, 1.2),
        a=pose.a * scale,
        b=pose.b * scale,
        angle=pose.angle + rng.uniform(-0.05, 0.05),
        light=(pose.light[0] + rng.uniform(-0.03, 0.03), pose.light[1] + rng.uniform(-0.03, 0.03)),
        exposure=pose.exposure * (1 + rng.uniform(-0.03, 0.03)),
    )


def face_coords(pose: Pose, size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Face coordinates ``(u, v)`` of every pixel centre, each of shape ``(size, size)``."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dx, dy = x - pose.cx, y - pose.cy
    cos, sin = np.cos(pose.angle), np.sin(pose.angle)
    u = (dx * cos + dy * sin) / pose.a
    v = (-dx * sin + dy * cos) / pose.b
    return u, v


def ellipse_alpha(
    u: np.ndarray,
    v: np.ndarray,
    pose: Pose,
    centre: tuple[float, float],
    radii: tuple[float, float],
) -> np.ndarray:
    """Anti-aliased coverage of an ellipse given in face coordinates, shape ``(H, W)``.

    The normalised radius is turned into an approximate distance in pixels (scaled by the
    smaller half-axis), so edges are about one pixel wide whatever the ellipse's size.
    """
    ru, rv = radii
    r = np.sqrt(((u - centre[0]) / ru) ** 2 + ((v - centre[1]) / rv) ** 2)
    px = min(ru * pose.a, rv * pose.b)
    return np.clip(0.5 - (r - 1) * px, 0, 1)


def _paint(canvas: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    # Only the rows and columns the shape covers: most features are a few pixels wide.
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        return
    box = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    a = alpha[box][..., None].astype(np.float32)
    canvas[box] = canvas[box] * (1 - a) + a * np.asarray(colour, dtype=np.float32)


def _background(identity: Identity, size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    t = np.clip(x * np.cos(identity.bg_angle) + y * np.sin(identity.bg_angle) + 0.5, 0, 1)
    img = (1 - t[..., None]) * identity.bg_from + t[..., None] * identity.bg_to
    return img.astype(np.float32)


def _eyes(img: np.ndarray, identity: Identity, u: np.ndarray, v: np.ndarray, pose: Pose) -> None:
    # iris and pupil radii are corrected by a/b so they stay round on screen
    round_v = pose.a / pose.b
    for side in (-1.0, 1.0):
        centre = (side * identity.eye_dx, identity.eye_dy)
        es = identity.eye_size
        brow = ellipse_alpha(u, v, pose, (centre[0], centre[1] - 0.13), (es * 1.1, 0.035))
        _paint(img, brow, identity.hair * 0.8)
        _paint(img, ellipse_alpha(u, v, pose, centre, (es, es * 0.45)), _SCLERA)
        iris, pupil = es * 0.45, es * 0.2
        _paint(img, ellipse_alpha(u, v, pose, centre, (iris, iris * round_v)), identity.iris)
        _paint(img, ellipse_alpha(u, v, pose, centre, (pupil, pupil * round_v)), np.zeros(3))


def _nose_and_mouth(
    img: np.ndarray, identity: Identity, u: np.ndarray, v: np.ndarray, pose: Pose, skin: np.ndarray
) -> None:
    tip = identity.eye_dy + 0.2 + identity.nose_length
    ridge = ellipse_alpha(
        u, v, pose, (0.0, tip - identity.nose_length / 2), (0.07, identity.nose_length)
    )
    _paint(img, 0.6 * ridge, skin * 0.75)
    _paint(img, ellipse_alpha(u, v, pose, (0.0, tip), (0.13, 0.05)), skin * 0.6)
    mouth = (0.0, identity.mouth_y)
    _paint(
        img,
        ellipse_alpha(u, v, pose, mouth, (identity.mouth_width, identity.mouth_height)),
        identity.lips,
    )
    _paint(
        img,
        ellipse_alpha(u, v, pose, mouth, (identity.mouth_width * 0.9, 0.018)),
        identity.lips * 0.4,
    )


def render_clean(identity: Identity, pose: Pose, size: int = IMAGE_SIZE) -> np.ndarray:
    """The face drawn without camera effects (no blur, no noise): float32 ``(H, W, 3)`` in [0, 1].

    Painter's order, back to front: gradient background, hair behind the head, neck,
    shaded skin ellipse, fringe, brows and eyes, nose, mouth; then the frame's exposure.
    """
    u, v = face_coords(pose, size)
    img = _background(identity, size)

    # Hair behind the head reaches down to hair_length (face coordinates).
    hair_back = ellipse_alpha(u, v, pose, (0.0, -0.1), (1.18, 1.12))
    hair_back *= np.clip((identity.hair_length - v) * pose.b * 0.5, 0, 1)
    _paint(img, hair_back, identity.hair)
    neck = np.clip(0.5 - (np.abs(u) - 0.42) * pose.a, 0, 1) * np.clip((v - 0.5) * pose.b, 0, 1)
    _paint(img, neck, identity.skin * 0.8)

    face = ellipse_alpha(u, v, pose, (0.0, 0.0), (1.0, 1.0))
    shade = 1 + (pose.light[0] * u + pose.light[1] * v).astype(np.float32)
    skin = np.clip(identity.skin * shade[..., None], 0, 1)
    img = img * (1 - face[..., None]) + face[..., None] * skin
    # features darken the skin they sit on, whatever its shading
    mean_skin = (skin * face[..., None]).sum(axis=(0, 1)) / max(float(face.sum()), 1e-6)

    wave = 0.05 * np.sin(u * 6.0 + identity.hairline * 10)
    fringe = face * np.clip((identity.hairline + wave - v) * pose.b, 0, 1)
    _paint(img, fringe, identity.hair)
    _eyes(img, identity, u, v, pose)
    _nose_and_mouth(img, identity, u, v, pose, mean_skin)
    return np.clip(img * pose.exposure, 0, 1).astype(np.float32)


def camera(img: np.ndarray, pose: Pose, rng: np.random.Generator) -> np.ndarray:
    """Mild blur and sensor noise, the last step of every frame (real and fake alike)."""
    out = cv2.GaussianBlur(img, (0, 0), sigmaX=pose.blur, borderType=cv2.BORDER_REFLECT)
    out = out + rng.normal(0, pose.noise, out.shape).astype(np.float32)
    return np.clip(out, 0, 1)


def render_face(
    identity: Identity, pose: Pose, rng: np.random.Generator, size: int = IMAGE_SIZE
) -> np.ndarray:
    """A full frame: `render_clean` then `camera`; float32 ``(H, W, 3)`` in [0, 1]."""
    return camera(render_clean(identity, pose, size), pose, rng)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Quantise a [0, 1] float image to uint8 the way the PNG on disk will hold it."""
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
