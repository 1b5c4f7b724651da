"""Ray casting against the few primitives the scene generator uses: pure numpy functions.

Every function takes the camera origin ``(3,)`` and unit ray directions ``(N, 3)`` (world
coordinates, y up) and returns the distance along each ray to the first hit ``(N,)`` (``inf``
where the ray misses) and the unit outward surface normal at that hit ``(N, 3)``.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-6


def look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Camera-to-world rotation ``(3, 3)`` whose columns are right, up and backward (OpenGL axes)."""
    forward = target - position
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right = right / np.linalg.norm(right)
    up = np.cross(right, forward)
    return np.stack([right, up, -forward], axis=1)


def camera_rays(height: int, width: int, fov_deg: float, rotation: np.ndarray) -> np.ndarray:
    """Unit world-space directions ``(H * W, 3)`` through pixel centres, row-major from the top left."""
    half = np.tan(np.deg2rad(fov_deg) / 2)
    aspect = width / height
    xs = ((np.arange(width) + 0.5) / width * 2 - 1) * half * aspect
    ys = (1 - (np.arange(height) + 0.5) / height * 2) * half
    grid_x, grid_y = np.meshgrid(xs, ys)
    local = np.stack([grid_x, grid_y, -np.ones_like(grid_x)], axis=-1).reshape(-1, 3)
    directions = local @ rotation.T
    return directions / np.linalg.norm(directions, axis=1, keepdims=True)


def intersect_plane(
    origin: np.ndarray, dirs: np.ndarray, point: np.ndarray, normal: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Hits on the front side (the side ``normal`` points to) of the plane through ``point``."""
    facing = dirs @ normal
    with np.errstate(divide="ignore", invalid="ignore"):
        t = ((point - origin) @ normal) / facing
    t = np.where((facing < -EPS) & (t > EPS), t, np.inf)
    return t, np.broadcast_to(normal, dirs.shape).copy()


def intersect_sphere(
    origin: np.ndarray, dirs: np.ndarray, center: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    oc = origin - center
    b = dirs @ oc
    c = oc @ oc - radius * radius
    disc = b * b - c
    root = np.sqrt(np.maximum(disc, 0.0))
    t = -b - root
    t = np.where((disc >= 0) & (t > EPS), t, np.inf)
    hits = origin + dirs * np.where(np.isfinite(t), t, 0.0)[:, None]
    return t, (hits - center) / radius


def intersect_box(
    origin: np.ndarray, dirs: np.ndarray, center: np.ndarray, half: np.ndarray, yaw: float
) -> tuple[np.ndarray, np.ndarray]:
    """A box with half extents ``half`` turned by ``yaw`` radians about the vertical axis (slab method)."""
    cos, sin = np.cos(yaw), np.sin(yaw)
    to_local = np.array([[cos, 0.0, -sin], [0.0, 1.0, 0.0], [sin, 0.0, cos]])  # world -> box frame
    local_origin = to_local @ (origin - center)
    local_dirs = dirs @ to_local.T
    safe = np.where(np.abs(local_dirs) < EPS, EPS, local_dirs)
    t1 = (-half - local_origin) / safe
    t2 = (half - local_origin) / safe
    near = np.minimum(t1, t2)
    far = np.maximum(t1, t2)
    t_near = near.max(axis=1)
    t_far = far.min(axis=1)
    t = np.where((t_near <= t_far) & (t_near > EPS), t_near, np.inf)
    axis = near.argmax(axis=1)
    local_normals = np.zeros_like(local_dirs)
    rows = np.arange(len(dirs))
    local_normals[rows, axis] = -np.sign(safe[rows, axis])
    return t, local_normals @ to_local  # back to world: inverse of a rotation is its transpose


def intersect_cylinder(
    origin: np.ndarray, dirs: np.ndarray, center: np.ndarray, radius: float, half_height: float
) -> tuple[np.ndarray, np.ndarray]:
    """An upright capped cylinder centred at ``center``."""
    o = origin - center
    a = dirs[:, 0] ** 2 + dirs[:, 2] ** 2
    b = o[0] * dirs[:, 0] + o[2] * dirs[:, 2]
    c = o[0] ** 2 + o[2] ** 2 - radius * radius
    disc = b * b - a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    y_side = o[1] + t_side * dirs[:, 1]
    side_ok = (disc >= 0) & (a > EPS) & (t_side > EPS) & (np.abs(y_side) <= half_height)
    t_side = np.where(side_ok, t_side, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_cap = (np.sign(o[1]) * half_height - o[1]) / dirs[:, 1]
    cap_x = o[0] + t_cap * dirs[:, 0]
    cap_z = o[2] + t_cap * dirs[:, 2]
    cap_ok = (np.abs(dirs[:, 1]) > EPS) & (t_cap > EPS) & (cap_x**2 + cap_z**2 <= radius * radius)
    t_cap = np.where(cap_ok, t_cap, np.inf)
    t = np.minimum(t_side, t_cap)
    hits = o + dirs * np.where(np.isfinite(t), t, 0.0)[:, None]
    side_normals = np.stack([hits[:, 0], np.zeros(len(dirs)), hits[:, 2]], axis=1) / radius
    cap_normals = np.zeros_like(dirs)
    cap_normals[:, 1] = np.sign(o[1])
    normals = np.where((t_cap < t_side)[:, None], cap_normals, side_normals)
    return t, normals
