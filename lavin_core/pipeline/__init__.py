"""In-context prediction: example pairs + a query in, the query's target out.

- ``inputs``: ``build_context``, pairs and a query in any image form -> a ``TaskContext``.
- ``pipeline``: ``InContextPipeline`` (encode, sample with CFG, decode) and ``load_pipeline``.
- ``output``: ``InContextOutput``, what a call returns.
- ``compiled``: the fast GPU path (bf16, one compiled block for every layer, CUDA graphs).
"""

from lavin_core.data.latents import LatentCache, MemoryLatentCache, pixel_key
from lavin_core.pipeline.inputs import build_context
from lavin_core.pipeline.output import InContextOutput
from lavin_core.pipeline.pipeline import OFFICIAL_GUIDANCE, InContextPipeline, check_sampling, load_pipeline
from lavin_core.pretrained.loading import RANDOM_PREFIX, load_denoiser, load_encoder

__all__ = [
    "OFFICIAL_GUIDANCE",
    "RANDOM_PREFIX",
    "InContextOutput",
    "InContextPipeline",
    "LatentCache",
    "MemoryLatentCache",
    "build_context",
    "check_sampling",
    "load_denoiser",
    "load_encoder",
    "load_pipeline",
    "pixel_key",
]
