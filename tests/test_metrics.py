"""Metric functions and colour codes against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lavin_plugins import metrics
from lavin_plugins.tasks.codes import CODE_COLORS, decode_scalar, encode_scalar, nearest_code

SEEDS = st.integers(0, 2**31 - 1)


def images(seed: int, shape=(24, 20, 3)) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, shape)


@settings(max_examples=10, deadline=None)
@given(seed=SEEDS, error=st.floats(0.001, 0.5))
def test_psnr_of_a_uniform_error(seed, error):
    truth = images(seed) * 0.4 + 0.3
    assert metrics.psnr(truth + error, truth) == pytest.approx(-20 * np.log10(error), rel=1e-6)
    assert metrics.psnr(truth, truth) == metrics.PSNR_CAP_DB


@settings(max_examples=10, deadline=None)
@given(seed=SEEDS)
def test_ssim_is_one_on_itself_symmetric_and_falls_with_noise(seed):
    truth = images(seed)
    noisy = np.clip(truth + np.random.default_rng(seed + 1).normal(0, 0.1, truth.shape), 0, 1)
    noisier = np.clip(truth + np.random.default_rng(seed + 1).normal(0, 0.3, truth.shape), 0, 1)
    assert metrics.ssim(truth, truth) == pytest.approx(1.0)
    assert metrics.ssim(noisy, truth) == pytest.approx(metrics.ssim(truth, noisy))
    assert metrics.ssim(noisier, truth) < metrics.ssim(noisy, truth) < 1.0


def test_ssim_of_a_constant_shift_is_the_luminance_term():
    # flat images: only the luminance term differs from 1
    a, b = np.full((16, 16, 3), 0.5), np.full((16, 16, 3), 0.6)
    c1 = 0.01**2
    assert metrics.ssim(a, b) == pytest.approx((2 * 0.5 * 0.6 + c1) / (0.25 + 0.36 + c1))


@settings(max_examples=10, deadline=None)
@given(seed=SEEDS, scale=st.floats(0.5, 2.0))
def test_depth_metrics_of_a_scaled_map(seed, scale):
    truth = np.random.default_rng(seed).uniform(0.5, 10, (8, 9))
    assert metrics.abs_rel(truth * scale, truth) == pytest.approx(abs(scale - 1))
    assert metrics.delta1(truth * scale, truth) == (1.0 if max(scale, 1 / scale) < 1.25 else 0.0)
    assert metrics.abs_rel(truth, truth) == 0.0


def test_angular_error():
    x = np.array([[1.0, 0.0, 0.0]])
    y = np.array([[0.0, 3.0, 0.0]])  # not unit: normalised first
    assert metrics.mean_angular_error(x, y) == pytest.approx(90.0)
    assert metrics.mean_angular_error(x, -x) == pytest.approx(180.0)
    assert metrics.fraction_within(np.concatenate([x, x]), np.concatenate([x, y])) == 0.5


def test_mean_iou_by_hand():
    truth = np.array([[0, 0, 1, 1]])
    predicted = np.array([[0, 1, 1, 1]])
    # class 0: 1 / 2, class 1: 2 / 3
    assert metrics.mean_iou(predicted, truth) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert metrics.pixel_accuracy(predicted, truth) == 0.75
    assert metrics.iou(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0


def test_pck_counts_misses():
    truth = np.array([[10.0, 10.0], [20.0, 20.0], [30.0, 30.0]])
    predicted = truth + np.array([[1.0, 0.0], [5.0, 0.0], [np.nan, np.nan]])
    assert metrics.pck(predicted, truth, threshold=2.0) == pytest.approx(1 / 3)
    assert metrics.keypoint_error(predicted, truth) == pytest.approx(3.0)


def test_box_iou_by_hand():
    assert metrics.box_iou([0, 0, 2, 2], [1, 0, 3, 2]) == pytest.approx(1 / 3)
    assert metrics.box_iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0
    assert metrics.box_iou([np.nan] * 4, [0, 0, 1, 1]) == 0.0
    with pytest.raises(ValueError, match="x0, y0, x1, y1"):
        metrics.box_iou([0, 0, 1], [0, 0, 1, 1])


def test_edge_f1_tolerates_one_pixel():
    truth = np.zeros((10, 10), bool)
    truth[:, 4] = True
    assert metrics.edge_f1(np.roll(truth, 1, axis=1), truth) == 1.0
    assert metrics.edge_f1(np.roll(truth, 3, axis=1), truth) == 0.0
    assert metrics.edge_scores(truth, truth, tolerance=0) == (1.0, 1.0, 1.0)


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="prediction has shape"):
        metrics.psnr(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))


@settings(max_examples=20, deadline=None)
@given(values=hnp.arrays(np.float64, st.integers(1, 50), elements=st.floats(0, 1)))
def test_scalar_colour_code_round_trips(values):
    np.testing.assert_allclose(decode_scalar(encode_scalar(values)), values, atol=1e-6)


@settings(max_examples=10, deadline=None)
@given(seed=SEEDS)
def test_scalar_colour_code_survives_8_bit_and_noise(seed):
    rng = np.random.default_rng(seed)
    values = rng.uniform(0, 1, 200)
    colors = np.round(encode_scalar(values) * 255) / 255 + rng.normal(0, 0.01, (200, 3))
    assert np.abs(decode_scalar(colors) - values).max() < 0.015  # 0.1% of seeds reach 0.0100-0.0112 under this noise


def test_code_colours_are_far_apart_and_read_back():
    gaps = np.linalg.norm(CODE_COLORS[:, None] - CODE_COLORS[None], axis=-1)
    assert gaps[np.triu_indices(len(CODE_COLORS), 1)].min() >= 0.5
    index, distance = nearest_code(CODE_COLORS + 0.1, CODE_COLORS)
    np.testing.assert_array_equal(index, np.arange(len(CODE_COLORS)))
