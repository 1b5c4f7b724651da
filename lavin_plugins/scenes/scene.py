"""What a procedural scene is made of, and how a seeded generator draws one.

A scene is a ground plane seen from an elevated camera with a few shapes standing on it. Shapes
move on the ground with constant velocity (and boxes spin), so ``scene.at(time)`` gives the
frames of a clip. Everything is an immutable attrs value; randomness only enters through the
``numpy.random.Generator`` handed to ``random_scene``.
"""

from __future__ import annotations

import attrs
import numpy as np

#: Semantic classes of a render, in label order.
CLASSES = ("ground", "wall", "sphere", "box", "cylinder")
SHAPE_KINDS = CLASSES[2:]


def _finite_vector(_, attribute: attrs.Attribute, value: np.ndarray) -> None:
    if np.shape(value) != (3,) or not np.all(np.isfinite(value)):
        raise ValueError(f"{attribute.name} must be 3 finite numbers, got {value!r}")


@attrs.frozen(kw_only=True)
class Shape:
    """One object standing on the ground. ``size`` is the radius (sphere, cylinder) or half width (box)."""

    kind: str = attrs.field(validator=attrs.validators.in_(SHAPE_KINDS))
    position: np.ndarray = attrs.field(converter=np.asarray, validator=_finite_vector)  # (x, 0, z) on the ground
    size: float = attrs.field(validator=attrs.validators.gt(0))
    height: float = attrs.field(validator=attrs.validators.gt(0))  # half height (box, cylinder)
    yaw: float = 0.0
    color: np.ndarray = attrs.field(converter=np.asarray, validator=_finite_vector)  # RGB in [0, 1]
    velocity: np.ndarray = attrs.field(factory=lambda: np.zeros(3), converter=np.asarray)  # units per frame
    spin: float = 0.0  # radians per frame

    @property
    def label(self) -> int:
        return CLASSES.index(self.kind)

    @property
    def center(self) -> np.ndarray:
        lift = self.size if self.kind == "sphere" else self.height
        return self.position + np.array([0.0, lift, 0.0])

    def at(self, time: float) -> Shape:
        return attrs.evolve(self, position=self.position + time * self.velocity, yaw=self.yaw + time * self.spin)


@attrs.frozen(kw_only=True)
class Scene:
    """A camera, a light, a checkered ground closed by a back wall, and the shapes on it."""

    camera: np.ndarray = attrs.field(converter=np.asarray, validator=_finite_vector)
    look_at: np.ndarray = attrs.field(converter=np.asarray, validator=_finite_vector)
    fov_deg: float = attrs.field(default=60.0, validator=[attrs.validators.gt(10), attrs.validators.lt(120)])
    light: np.ndarray = attrs.field(converter=np.asarray, validator=_finite_vector)  # towards the light
    ground_colors: tuple[np.ndarray, np.ndarray] = attrs.field(converter=lambda pair: tuple(map(np.asarray, pair)))
    checker: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))  # tile size
    wall_color: np.ndarray = attrs.field(converter=np.asarray, validator=_finite_vector)
    wall_z: float = -4.0  # the back wall is the plane z = wall_z, facing the camera
    shapes: tuple[Shape, ...] = attrs.field(default=(), converter=tuple)

    def at(self, time: float) -> Scene:
        """The scene ``time`` frames later: every shape moved by its velocity and spin."""
        return attrs.evolve(self, shapes=tuple(shape.at(time) for shape in self.shapes))


def _random_color(rng: np.random.Generator) -> np.ndarray:
    hue = rng.uniform(0, 1)
    # a saturated colour from the hue wheel, then a random lightness
    channels = np.clip(np.abs((hue * 6 + np.array([0.0, 4.0, 2.0])) % 6 - 3) - 1, 0, 1)
    return 0.25 + 0.7 * channels * rng.uniform(0.6, 1.0)


def random_shape(rng: np.random.Generator, *, kind: str | None = None, moving: bool = False) -> Shape:
    kind = kind or SHAPE_KINDS[rng.integers(len(SHAPE_KINDS))]
    size = rng.uniform(0.35, 0.8)
    position = np.array([rng.uniform(-1.6, 1.6), 0.0, rng.uniform(-3.0, 0.5)])
    velocity = np.zeros(3)
    if moving:
        angle = rng.uniform(0, 2 * np.pi)
        velocity = rng.uniform(0.04, 0.12) * np.array([np.cos(angle), 0.0, np.sin(angle)])
    return Shape(
        kind=kind,
        position=position,
        size=size,
        height=size * rng.uniform(0.7, 1.6),
        yaw=rng.uniform(0, np.pi / 2),
        color=_random_color(rng),
        velocity=velocity,
        spin=rng.uniform(-0.1, 0.1) if moving and kind == "box" else 0.0,
    )


def random_scene(
    rng: np.random.Generator, *, num_shapes: int | tuple[int, int] = (1, 4), moving: bool = False
) -> Scene:
    """A scene with ``num_shapes`` shapes (or a count drawn from the inclusive range) that do not overlap."""
    low, high = (num_shapes, num_shapes) if isinstance(num_shapes, int) else num_shapes
    if not 0 <= low <= high:
        raise ValueError(f"num_shapes must be a count >= 0 or a range (low, high) with low <= high, got {num_shapes!r}")
    count = int(rng.integers(low, high + 1))
    shapes: list[Shape] = []
    for _ in range(count * 20):  # rejection sampling keeps shapes apart so each is visible
        if len(shapes) == count:
            break
        shape = random_shape(rng, moving=moving)
        if all(np.linalg.norm(shape.position - other.position) > 1.5 * (shape.size + other.size) for other in shapes):
            shapes.append(shape)
    light = np.array([rng.uniform(-0.6, 0.6), 1.0, rng.uniform(0.2, 0.8)])
    return Scene(
        camera=np.array([rng.uniform(-0.5, 0.5), rng.uniform(2.2, 3.0), 4.5]),
        look_at=np.array([0.0, 0.0, rng.uniform(-1.0, 0.0)]),
        light=light / np.linalg.norm(light),
        ground_colors=(_random_color(rng) * 0.6 + 0.3, _random_color(rng) * 0.6 + 0.2),
        checker=rng.uniform(0.6, 1.4),
        wall_color=_random_color(rng) * 0.5 + 0.35,
        shapes=tuple(shapes),
    )
