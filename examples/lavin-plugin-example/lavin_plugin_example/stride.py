"""The "stride" prompt sampler: evenly spaced pairs across the pool, the same every time."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lavin_core import ExamplePair, PromptSampler


class StrideSampler(PromptSampler):
    name = "stride"

    def select(
        self,
        pool: Sequence[ExamplePair],
        query: Tensor,
        num_pairs: int,
        *,
        generator: torch.Generator | None = None,
    ) -> list[int]:
        if not 0 < num_pairs <= len(pool):
            raise ValueError(f"num_pairs must be between 1 and the pool size {len(pool)}, got {num_pairs}")
        return [index * len(pool) // num_pairs for index in range(num_pairs)]
