"""The fast GPU inference path of the J-DiT, applied from outside the model (as torchtitan applies
compile): bf16 weights, the fused Triton kernels, regional ``torch.compile`` and CUDA-graph replay.

    >>> model = prepare_for_inference(JDiT(get_preset("lavin-3.4b")))    # bf16, eval, on CUDA
    >>> compile_blocks(model)                                        # one block compiled, reused 22x
    >>> fast = CUDAGraphDenoiser(model)                              # one graph per input shape
    >>> with prefer_cudnn_attention():
    ...     latents = EulerSampler().sample(fast, noise, cond, null_cond=null_context_from_cond(cond),
    ...                                     guidance_scale=1.5)

Why these pieces:
- The fused QK-norm + RoPE kernel is picked by ``lavin_core.jdit.qk_norm_rope`` on its own on CUDA tensors.
- Regional compile: the 22 blocks share one code object, so Dynamo compiles the block once per
  input shape and reuses it for every block (compiling the whole model costs minutes).
- CFG without wasted work: the conditional context (``2N + 1`` frames) and the null context
  (``[0, query]``, 2 frames) have different lengths, so ``guided_velocity`` runs them as two calls
  and the null pass costs what its short sequence costs; nothing is padded.
- Attention is the largest cost, and at head_dim 72 SDPA's cuDNN kernel beats its flash kernel
  (2.55 ms against 4.15 ms per layer at 10,240 tokens on an H100, GQA 32/8); PyTorch's default
  order (flash, memory-efficient, math, cuDNN) never reaches cuDNN, since math always applies, so
  ``prefer_cudnn_attention`` puts it first (the others follow as fallbacks).
- CUDA graphs remove the launch overhead that dominates the short null pass. Each distinct input
  shape gets its own graph (two per sampling run: conditional and null), captured after a warm-up
  on a side stream; the RoPE tables are computed inside the capture (``lavin_core.jdit.rope``), so
  no cached table lives in a graph's memory pool.

Needs a CUDA device. The CPU tests check only the errors; on a GPU, ``tests/test_kernels.py``
checks CUDA-graph replay against the eager model (``scripts/gpu_check.sh`` runs it). Speed:
``benchmarks/bench_gpu.py``. Not yet measured on a GPU: this was written on a machine without one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from lavin_core.errors import LavinError
from lavin_core.interfaces import Denoiser


def _require_cuda(what: str) -> None:
    if not torch.cuda.is_available():
        raise LavinError(
            f"{what} needs a CUDA GPU and torch.cuda.is_available() is False; use the model as is on this machine"
        )


def prepare_for_inference(model: nn.Module, *, dtype: torch.dtype = torch.bfloat16, device: str = "cuda") -> nn.Module:
    """``model`` moved to ``device`` in ``dtype``, in eval mode, without gradients; returned for chaining."""
    _require_cuda("prepare_for_inference")
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def compile_blocks(model: nn.Module, **compile_options: Any) -> nn.Module:
    """Regional compile: ``torch.compile`` each of ``model.blocks`` in place (static shapes by default).

    The blocks share one code object, so the work is done once per input shape, not once per block.
    ``compile_options`` go to ``torch.compile`` (e.g. ``mode="max-autotune-no-cudagraphs"``).
    """
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        raise ValueError(
            f"compile_blocks wants a model with a ModuleList `blocks` (a JDiT), got {type(model).__name__}"
        )
    compile_options.setdefault("dynamic", False)
    for block in blocks:
        block.compile(**compile_options)
    return model


@contextlib.contextmanager
def prefer_cudnn_attention() -> Iterator[None]:
    """Within the block, SDPA tries cuDNN first, then flash, memory-efficient and math attention.

    Under ``torch.compile`` the choice is made while tracing, so the first (compiling) call must run
    inside the block too.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    with sdpa_kernel(order, set_priority=True):
        yield


class CUDAGraphDenoiser(Denoiser):
    """Wraps a denoiser: the first call at each input shape captures a CUDA graph, later calls replay it.

    Inference only (runs under ``torch.no_grad``). Inputs are copied into the graph's static
    buffers and the output is cloned out, so results held by the caller are never overwritten by a
    later replay. ``warmup`` eager calls before each capture let lazy work (Triton and Inductor
    compilation, cuDNN plan selection, RoPE table caches) happen outside the graph.
    """

    def __init__(self, denoiser: nn.Module, *, warmup: int = 2):
        super().__init__()
        _require_cuda("CUDAGraphDenoiser")
        if warmup < 1:
            raise ValueError(f"warmup must be at least 1 (capture needs a warmed-up model), got {warmup}")
        self.denoiser = denoiser
        self.warmup = warmup
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, tuple[Tensor, Tensor, Tensor], Tensor]] = {}

    @property
    def captured_shapes(self) -> list[tuple]:
        """The (z_t shape, t shape, cond shape, dtype) keys captured so far."""
        return list(self._graphs)

    def _capture(self, z_t: Tensor, t: Tensor, cond: Tensor):
        static = (z_t.clone(), t.clone(), cond.clone())
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.denoiser(*static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = self.denoiser(*static)
        return graph, static, out

    @torch.no_grad()
    def forward(self, z_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        if not z_t.is_cuda:
            raise ValueError(f"CUDAGraphDenoiser takes CUDA tensors, got z_t on {z_t.device}")
        t = torch.as_tensor(t, device=z_t.device).expand(z_t.shape[0])
        key = (tuple(z_t.shape), tuple(t.shape), tuple(cond.shape), z_t.dtype, t.dtype, cond.dtype)
        if key not in self._graphs:
            self._graphs[key] = self._capture(z_t, t, cond)
        graph, (static_z, static_t, static_cond), out = self._graphs[key]
        static_z.copy_(z_t)
        static_t.copy_(t)
        static_cond.copy_(cond)
        graph.replay()
        return out.clone()
