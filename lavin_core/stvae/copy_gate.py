"""The copy gate of a query-guided ST-VAE decoder: where the answer is the query, take the query's pixels.

The query guide (``lavin_core.stvae.guide``) shows the decoder the query's pixels, but whatever it
passes on goes through the decoder's last convolutions, so even an answer that *is* the query
outside a small region (an inpainting, a mild restoration, a video frame whose background stands
still) comes out no sharper than the decoder can draw it: 0.5-3 dB below a plain copy of the query
on lavin-tiny-icl. The gate makes copying exact. Per output pixel it predicts ``g`` in [0, 1] from
the decoder's last features, the guide's full-size features and both images, and returns

    lerp(decoded, guide, g) = decoded + g * (guide - decoded)

the decoder's pixels where ``g = 0``, the query's where ``g = 1``. It is the copy mechanism of
pointer-generator networks (See et al. 2017) in pixel space, and the mask-and-blend output of
inpainting and video-prediction networks (e.g. Finn et al. 2016's compositing masks).

``g = sigmoid(LOGIT_SCALE * net(...))``: the network's last convolution starts at zero weight and
a bias that puts every logit at ``START_LOGIT`` (-4), so a new gate takes ``START_GATE`` (1.8 %)
of the query everywhere, a faint start the training moves away from. Two starts that were tried
first, on lavin-tiny-icl (``configs/lavin-tiny-icl/README.md``, tenth step), did not learn: a clamp
of a zero-started output (an exact start) shut within its first steps, since a pixel whose gate
falls below zero passes no gradient through a clamp, and a sigmoid of the plain output started
at -7 had not moved after 200 steps at lr 3e-4 (Adam moves a weight about lr a step, and the
logits had 7 units to cover; a factor of 8 moved them 0.002 in 100 steps). ``LOGIT_SCALE`` = 64
lets the gate's last layer move its logits that much faster than the decoder's weights move,
without a learning rate of its own. Besides the features and both images, the network sees their
absolute difference: where the decoder's answer is near the query is where copying it pays.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lavin_core.stvae.layers import per_frame

#: The gate's starting logit, the share of the query a new gate lets through, and the factor on its logits.
START_LOGIT = -4.0
START_GATE = 1.0 / (1.0 + math.exp(-START_LOGIT))
LOGIT_SCALE = 64.0


class CopyGate(nn.Module):
    """Per pixel, how much of the guide to take: ``(B, 1, T, H, W)`` in [0, 1] (``gate``), and the blend (``forward``).

    ``feature_channels``: the decoder's features before its output convolution; ``guide_channels``:
    the guide branch's full-size features; ``hidden``: the gate network's width.
    """

    def __init__(self, feature_channels: int, guide_channels: int, image_channels: int = 3, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(feature_channels + guide_channels + 3 * image_channels, hidden, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(hidden, 1, 3, padding=1),
        )
        self.zero_()

    def zero_(self) -> None:
        """The gate's output layer to its start (zero weights, logits ``START_LOGIT``): ``g = START_GATE`` everywhere."""
        nn.init.zeros_(self.net[-1].weight)
        nn.init.constant_(self.net[-1].bias, START_LOGIT / LOGIT_SCALE)

    def gate(self, features: Tensor, guide_features: Tensor, decoded: Tensor, guide: Tensor) -> Tensor:
        """``g`` ``(B, 1, T, H, W)`` in [0, 1]; every input ``(B, C, T, H, W)`` with the same ``T, H, W``."""
        decoded, guide = decoded.to(features.dtype), guide.to(features.dtype)
        inputs = torch.cat([features, guide_features.to(features.dtype), decoded, guide, (decoded - guide).abs()], dim=1)
        return torch.sigmoid(LOGIT_SCALE * per_frame(self.net, inputs))

    def forward(self, features: Tensor, guide_features: Tensor, decoded: Tensor, guide: Tensor) -> Tensor:
        """``decoded + g * (guide - decoded)``: the decoder's pixels, replaced by the guide's where the gate opens."""
        g = self.gate(features, guide_features, decoded, guide).to(decoded.dtype)
        return torch.lerp(decoded, guide.to(decoded.dtype), g)  # exact at both ends: decoded at g = 0, guide at 1
