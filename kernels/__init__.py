"""Triton kernels for the J-DiT and their launch wrappers: a leaf package that imports nothing of LaVin.

- ``contract``: the shapes the fused QK RMSNorm + 3D RoPE step takes and returns, checked once.
- ``qk_norm_rope_triton``: its Triton forward and backward kernels, the ``torch.library`` custom
  ops and the ``autograd.Function`` (imports Triton; loaded only when the kernel is asked for).

The PyTorch reference of the same function and the dispatch between the two live with the model
(``lavin_core.jdit.qk_norm_rope``); the fast GPU inference path lives beside the pipeline
(``lavin_core.pipeline.compiled``); the GPU benchmark is ``benchmarks/bench_gpu.py``.
"""
