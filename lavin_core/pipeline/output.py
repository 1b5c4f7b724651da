"""What a pipeline call returns: predictions in pixels and the latents they were decoded from."""

from __future__ import annotations

import attrs
import torch
from PIL import Image
from torch import Tensor

from lavin_core.data.images import to_pil, to_uint8


@attrs.frozen
class InContextOutput:
    """What a pipeline call returns, one entry per context, in the order given.

    ``predictions``: pixels ``(3, T, H, W)`` in [-1, 1], one per context, at its query's size: the
    combination of its samples (empty with ``output_type="latent"``);
    ``latents``: the sampled normalized latents, ``(C, T', h, w)`` per context, or
    ``(K, C, T', h, w)`` when each context drew ``K > 1`` samples;
    ``samples``: every sample's pixels, a tuple of ``K`` per context.
    """

    predictions: tuple[Tensor, ...]
    latents: tuple[Tensor, ...]
    samples: tuple[tuple[Tensor, ...], ...] = ()

    @property
    def prediction(self) -> Tensor:
        """All predictions stacked ``(B, 3, T, H, W)`` (they must share one shape)."""
        if not self.predictions:
            raise ValueError("no pixels: the pipeline ran with output_type='latent'; use .latents")
        shapes = {tuple(p.shape) for p in self.predictions}
        if len(shapes) > 1:
            raise ValueError(f"predictions have different shapes {sorted(shapes)}; use .predictions")
        return torch.stack(self.predictions)

    def images(self) -> list[Image.Image | list[Image.Image]]:
        """A PIL image per context (for a clip: the list of its frames)."""
        frames = [to_pil(p) for p in self.predictions]
        return [f[0] if len(f) == 1 else f for f in frames]

    def arrays(self) -> list:
        """A uint8 array per context: ``(H, W, 3)`` for an image, ``(T, H, W, 3)`` for a clip."""
        arrays = [to_uint8(p) for p in self.predictions]
        return [a[0] if a.shape[0] == 1 else a for a in arrays]
