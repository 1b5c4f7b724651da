"""The AdamW both training stages use: PyTorch's fused kernel wherever it applies."""

from __future__ import annotations

from collections.abc import Iterable

import torch

#: Devices with a fused AdamW kernel that training here runs on.
FUSED_DEVICES = ("cpu", "cuda")


def fused_applies(parameters: list[torch.Tensor]) -> bool:
    """Whether the fused AdamW kernel can update ``parameters``: plain floating-point tensors on one
    of ``FUSED_DEVICES`` (FSDP2's sharded DTensor parameters keep the per-tensor loop)."""
    from torch.distributed.tensor import DTensor

    return all(p.device.type in FUSED_DEVICES and p.is_floating_point() and not isinstance(p, DTensor)
               for p in parameters)


def make_optimizer(parameters: Iterable[torch.nn.Parameter], **options) -> torch.optim.AdamW:
    """AdamW over ``parameters`` with ``options`` (lr, betas, ...), fused where ``fused_applies``.

    The default per-tensor loop runs about ten small ops per parameter on the CPU (6% of a
    lavin-tiny step); the fused kernel makes one pass over all of them and computes the same
    update up to float rounding.
    """
    parameters = list(parameters)
    return torch.optim.AdamW(parameters, fused=fused_applies(parameters), **options)
