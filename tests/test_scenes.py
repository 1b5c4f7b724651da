"""The procedural scene generator: exact geometry, consistent ground truth, seeded determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lavin_plugins.scenes import KEYPOINTS, Scene, Shape, random_figure, random_scene, render
from lavin_plugins.scenes import geometry

SEEDS = st.integers(0, 2**31 - 1)


def one_shape_scene(shape: Shape) -> Scene:
    return Scene(
        camera=np.array([0.0, 1.0, 5.0]),
        look_at=np.array([0.0, 1.0, 0.0]),
        light=np.array([0.0, 1.0, 0.0]),
        ground_colors=(np.full(3, 0.3), np.full(3, 0.6)),
        wall_color=np.full(3, 0.5),
        wall_z=-6.0,
        shapes=(shape,),
    )


@settings(max_examples=10, deadline=None)
@given(distance=st.floats(2.0, 20.0), radius=st.floats(0.1, 1.5))
def test_ray_through_a_sphere_centre_hits_at_distance_minus_radius(distance, radius):
    direction = np.array([[0.0, 0.0, -1.0]])
    t, normal = geometry.intersect_sphere(np.zeros(3), direction, np.array([0.0, 0.0, -distance]), radius)
    assert t[0] == pytest.approx(distance - radius, rel=1e-9)
    np.testing.assert_allclose(normal[0], [0.0, 0.0, 1.0], atol=1e-9)


@settings(max_examples=10, deadline=None)
@given(distance=st.floats(2.0, 20.0), half=st.floats(0.1, 1.0))
def test_box_turned_a_quarter_is_the_same_square_box(distance, half):
    direction = np.array([[0.0, 0.0, -1.0], [0.05, 0.0, -1.0]])
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    center, extent = np.array([0.0, 0.0, -distance]), np.array([half, half, half])
    straight, n0 = geometry.intersect_box(np.zeros(3), direction, center, extent, 0.0)
    turned, n1 = geometry.intersect_box(np.zeros(3), direction, center, extent, np.pi / 2)
    assert straight[0] == pytest.approx(distance - half)
    np.testing.assert_allclose(turned, straight, rtol=1e-9)
    np.testing.assert_allclose(n1, n0, atol=1e-9)


def test_cylinder_side_and_cap():
    center = np.array([0.0, 0.0, -5.0])
    side, normal = geometry.intersect_cylinder(np.zeros(3), np.array([[0.0, 0.0, -1.0]]), center, 1.0, 0.5)
    assert side[0] == pytest.approx(4.0) and normal[0] == pytest.approx([0.0, 0.0, 1.0])
    cap, normal = geometry.intersect_cylinder(np.array([0.0, 3.0, -5.0]), np.array([[0.0, -1.0, 0.0]]), center, 1.0, 0.5)
    assert cap[0] == pytest.approx(2.5) and normal[0] == pytest.approx([0.0, 1.0, 0.0])


def test_rendered_depth_of_a_sphere_facing_the_camera():
    sphere = Shape(kind="sphere", position=np.array([0.0, 0.0, 0.0]), size=1.0, height=1.0, color=np.ones(3))
    view = render(one_shape_scene(sphere), 33, 33)  # odd size: the centre pixel looks straight ahead
    assert view.depth[16, 16] == pytest.approx(4.0, abs=1e-4)
    np.testing.assert_allclose(view.normals[16, 16], [0.0, 0.0, 1.0], atol=1e-3)
    assert view.semantic[16, 16] == sphere.label and view.foreground[16, 16]


@settings(max_examples=5, deadline=None)
@given(seed=SEEDS)
def test_ground_truth_is_consistent(seed):
    scene = random_scene(np.random.default_rng(seed))
    view = render(scene, 48, 64)
    assert view.rgb.shape == (48, 64, 3) and view.rgb.min() >= 0 and view.rgb.max() <= 1
    assert np.all(np.isfinite(view.depth)) and view.depth.min() > 0
    np.testing.assert_allclose(np.linalg.norm(view.normals, axis=-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(view.foreground, view.instance >= 2)
    for index, box in enumerate(view.boxes):
        rows, cols = np.nonzero(view.instance == index + 2)
        if len(rows):
            assert tuple(box) == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        else:
            assert np.isnan(box).all()
    # every boundary between two instances is an edge
    horizontal = view.instance[:, 1:] != view.instance[:, :-1]
    assert np.all(view.edges[:, :-1][horizontal])


@settings(max_examples=5, deadline=None)
@given(seed=SEEDS)
def test_same_seed_same_scene(seed):
    a = render(random_scene(np.random.default_rng(seed)), 32, 32)
    b = render(random_scene(np.random.default_rng(seed)), 32, 32)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.depth, b.depth)


def test_moving_scenes_move():
    scene = random_scene(np.random.default_rng(3), num_shapes=2, moving=True)
    later = scene.at(4)
    for before, after in zip(scene.shapes, later.shapes):
        np.testing.assert_allclose(after.position, before.position + 4 * before.velocity)
    assert not np.array_equal(render(scene, 32, 32).rgb, render(later, 32, 32).rgb)


@settings(max_examples=10, deadline=None)
@given(seed=SEEDS)
def test_figures_stay_inside_and_apart(seed):
    figure = random_figure(np.random.default_rng(seed), 64, 48, min_separation=5.0)
    assert figure.keypoints.shape == (len(KEYPOINTS), 2)
    assert np.all(figure.keypoints >= 0) and np.all(figure.keypoints <= [48, 64])
    gaps = np.linalg.norm(figure.keypoints[:, None] - figure.keypoints[None], axis=-1)
    assert gaps[np.triu_indices(len(KEYPOINTS), 1)].min() >= 5.0


def test_bad_arguments_say_what_works():
    with pytest.raises(ValueError, match="at least 8x8"):
        render(random_scene(np.random.default_rng(0)), 4, 4)
    with pytest.raises(ValueError, match="num_shapes"):
        random_scene(np.random.default_rng(0), num_shapes=(3, 1))
    with pytest.raises(ValueError, match="at least 32x32"):
        random_figure(np.random.default_rng(0), 16, 16)
