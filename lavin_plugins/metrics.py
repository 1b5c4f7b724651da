"""The usual metrics of each task, as pure numpy functions of (predicted, truth).

Conventions: images are float arrays in [0, 1] shaped ``(..., H, W, 3)``; depth maps ``(H, W)``
in world units; normals ``(H, W, 3)``; label maps ``(H, W)`` of ints; keypoints ``(K, 2)``
``(x, y)`` pixels (NaN for a keypoint not found); boxes ``(x0, y0, x1, y1)``.
"""

from __future__ import annotations

import numpy as np

#: PSNR of two identical images would be infinite; it is reported as this many dB instead.
PSNR_CAP_DB = 100.0


def _same_shape(predicted: np.ndarray, truth: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    predicted, truth = np.asarray(predicted, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if predicted.shape != truth.shape:
        raise ValueError(f"{what}: prediction has shape {predicted.shape} but truth has {truth.shape}; they must match")
    return predicted, truth


def abs_rel(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean of ``|pred - truth| / truth`` over pixels with positive true depth (0 is perfect)."""
    predicted, truth = _same_shape(predicted, truth, "abs_rel")
    valid = truth > 0
    return float(np.mean(np.abs(predicted[valid] - truth[valid]) / truth[valid]))


def delta1(predicted: np.ndarray, truth: np.ndarray, threshold: float = 1.25) -> float:
    """Fraction of valid pixels with ``max(pred / truth, truth / pred) < threshold`` (1 is perfect)."""
    predicted, truth = _same_shape(predicted, truth, "delta1")
    valid = truth > 0
    p = np.maximum(predicted[valid], 1e-12)
    ratio = np.maximum(p / truth[valid], truth[valid] / p)
    return float(np.mean(ratio < threshold))


def angular_errors(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-pixel angle in degrees between normal maps ``(..., 3)`` (each vector is normalised first).

    ``atan2(|p x t|, p . t)``, not ``arccos(p . t)``: arccos is ill-conditioned next to 0 degrees,
    where a dot product one rounding step below 1 reads as a visible angle; atan2 gives exactly 0
    for equal vectors and full precision at every angle.
    """
    predicted, truth = _same_shape(predicted, truth, "angular error")
    p = predicted / np.maximum(np.linalg.norm(predicted, axis=-1, keepdims=True), 1e-12)
    t = truth / np.maximum(np.linalg.norm(truth, axis=-1, keepdims=True), 1e-12)
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(p, t), axis=-1), (p * t).sum(-1)))


def mean_angular_error(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float(angular_errors(predicted, truth).mean())


def fraction_within(predicted: np.ndarray, truth: np.ndarray, degrees: float = 11.25) -> float:
    return float(np.mean(angular_errors(predicted, truth) < degrees))


def iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks; 1 when both are empty."""
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    if predicted.shape != truth.shape:
        raise ValueError(f"iou: prediction has shape {predicted.shape} but truth has {truth.shape}; they must match")
    union = np.logical_or(predicted, truth).sum()
    return 1.0 if union == 0 else float(np.logical_and(predicted, truth).sum() / union)


def mean_iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """mIoU over the classes present in the truth or the prediction."""
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    classes = np.union1d(np.unique(predicted), np.unique(truth))
    return float(np.mean([iou(predicted == c, truth == c) for c in classes]))


def pixel_accuracy(predicted: np.ndarray, truth: np.ndarray) -> float:
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    if predicted.shape != truth.shape:
        raise ValueError(f"pixel accuracy: prediction has shape {predicted.shape} but truth has {truth.shape}")
    return float(np.mean(predicted == truth))


def pck(predicted: np.ndarray, truth: np.ndarray, threshold: float) -> float:
    """Fraction of keypoints within ``threshold`` pixels of the truth; a NaN prediction is a miss."""
    predicted, truth = _same_shape(predicted, truth, "pck")
    distances = np.linalg.norm(predicted - truth, axis=-1)
    return float(np.mean(np.nan_to_num(distances, nan=np.inf) <= threshold))


def keypoint_error(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean distance in pixels over the keypoints that were found (NaN when none was)."""
    predicted, truth = _same_shape(predicted, truth, "keypoint error")
    distances = np.linalg.norm(predicted - truth, axis=-1)
    found = np.isfinite(distances)
    return float(distances[found].mean()) if found.any() else float("nan")


def box_iou(predicted, truth) -> float:
    """IoU of two boxes ``(x0, y0, x1, y1)``; 0 if the prediction is missing (NaN)."""
    p, t = np.asarray(predicted, np.float64), np.asarray(truth, np.float64)
    if p.shape != (4,) or t.shape != (4,):
        raise ValueError(f"box_iou takes two (x0, y0, x1, y1) boxes, got shapes {p.shape} and {t.shape}")
    if not np.all(np.isfinite(p)):
        return 0.0
    width = max(0.0, min(p[2], t[2]) - max(p[0], t[0]))
    height = max(0.0, min(p[3], t[3]) - max(p[1], t[1]))
    inter = width * height
    area = lambda b: max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])  # noqa: E731
    union = area(p) + area(t) - inter
    return float(inter / union) if union > 0 else 0.0


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """A boolean ``(H, W)`` mask grown by ``radius`` pixels in every direction (a square structuring element)."""
    out = mask.copy()
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            shifted = np.zeros_like(mask)
            ys = slice(max(dy, 0), mask.shape[0] + min(dy, 0))
            xs = slice(max(dx, 0), mask.shape[1] + min(dx, 0))
            yd = slice(max(-dy, 0), mask.shape[0] + min(-dy, 0))
            xd = slice(max(-dx, 0), mask.shape[1] + min(-dx, 0))
            shifted[ys, xs] = mask[yd, xd]
            out |= shifted
    return out


def edge_scores(predicted: np.ndarray, truth: np.ndarray, tolerance: int = 1) -> tuple[float, float, float]:
    """(F1, precision, recall) of boolean edge maps; an edge pixel matches within ``tolerance`` pixels."""
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    if predicted.shape != truth.shape:
        raise ValueError(f"edge F1: prediction has shape {predicted.shape} but truth has {truth.shape}")
    if not predicted.any() and not truth.any():
        return 1.0, 1.0, 1.0
    precision = float((predicted & dilate(truth, tolerance)).sum() / max(predicted.sum(), 1))
    recall = float((truth & dilate(predicted, tolerance)).sum() / max(truth.sum(), 1))
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return f1, precision, recall


def edge_f1(predicted: np.ndarray, truth: np.ndarray, tolerance: int = 1) -> float:
    return edge_scores(predicted, truth, tolerance)[0]


def psnr(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of images in [0, 1], capped at ``PSNR_CAP_DB``."""
    predicted, truth = _same_shape(predicted, truth, "psnr")
    mse = float(np.mean((predicted - truth) ** 2))
    return PSNR_CAP_DB if mse <= 10 ** (-PSNR_CAP_DB / 10) else float(-10 * np.log10(mse))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    w = np.exp(-(x**2) / (2 * sigma**2))
    return w / w.sum()


def _filter_valid(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation over the two axes before the last of ``(..., H, W, C)``."""
    n = len(window)
    rows = sum(window[i] * image[..., i : image.shape[-3] - n + 1 + i, :, :] for i in range(n))
    return sum(window[i] * rows[..., i : image.shape[-2] - n + 1 + i, :] for i in range(n))


def ssim(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Structural similarity (Wang et al. 2004: Gaussian window 11, sigma 1.5) of [0, 1] images ``(..., H, W, C)``,
    averaged over channels, frames and positions; 1 is perfect. Images smaller than 11 pixels use a smaller window."""
    predicted, truth = _same_shape(predicted, truth, "ssim")
    size = min(11, predicted.shape[-3], predicted.shape[-2])
    window = _gaussian_window(size, 1.5 * size / 11)
    c1, c2 = 0.01**2, 0.03**2
    mu_p, mu_t = _filter_valid(predicted, window), _filter_valid(truth, window)
    var_p = _filter_valid(predicted**2, window) - mu_p**2
    var_t = _filter_valid(truth**2, window) - mu_t**2
    cov = _filter_valid(predicted * truth, window) - mu_p * mu_t
    ssim_map = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    return float(ssim_map.mean())


# ---------------------------------------------------------------------------------------------
# temporal consistency of clips ``(T, ...)``: a flickering answer scores worse even when every
# frame alone is about as good (as in video depth evaluations, which add a temporal term).


def temporal_error(predicted: np.ndarray, truth: np.ndarray, *, vector: bool = False) -> float:
    """Mean error of the frame-to-frame changes: ``|(p[t+1] - p[t]) - (g[t+1] - g[t])|`` over frames
    and pixels (0 is perfect). ``vector``: the last axis is a vector (normals, RGB) and its
    changes are compared by Euclidean length. A clip of one frame has no changes: 0."""
    predicted, truth = _same_shape(predicted, truth, "temporal error")
    gap = np.diff(predicted, axis=0) - np.diff(truth, axis=0)
    if gap.size == 0:
        return 0.0
    return float(np.linalg.norm(gap, axis=-1).mean() if vector else np.abs(gap).mean())


def temporal_flicker(predicted: np.ndarray, truth: np.ndarray) -> float:
    """For label clips ``(T, H, W)``: the fraction of pixels and frame steps where the prediction
    changes label and the truth does not, or the reverse (0 is perfect)."""
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    if predicted.shape != truth.shape:
        raise ValueError(f"temporal flicker: prediction has shape {predicted.shape} but truth has {truth.shape}")
    if len(truth) < 2:
        return 0.0
    return float(np.mean((predicted[1:] != predicted[:-1]) != (truth[1:] != truth[:-1])))


def per_frame(metric, predicted: np.ndarray, truth: np.ndarray) -> float:
    """The mean over frames of ``metric(predicted[t], truth[t])`` (NaN frames ignored)."""
    values = [metric(p, t) for p, t in zip(predicted, truth)]
    return float(np.nanmean(values)) if values else float("nan")
