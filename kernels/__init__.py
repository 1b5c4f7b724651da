"""Fused GPU kernels for the J-DiT, each beside the PyTorch reference of the same function, and the
fast GPU inference path.

- ``qk_norm_rope``: QK RMSNorm + head split + 3D RoPE; the contract, the reference and the dispatch
  (``backend=`` or ``$LAVIN_KERNELS``: ``auto``, ``triton``, ``torch``).
- ``qk_norm_rope_triton``: its Triton forward and backward kernels and their ``autograd.Function``.
- ``inference``: bf16, regional ``torch.compile``, cuDNN-first attention, CUDA-graph replay.
- ``bench_gpu``: ``lavin bench-gpu``.

Nothing here needs a GPU or Triton to import: the reference path runs everywhere, and the Triton
kernels are used only on CUDA tensors when Triton is installed (or on the CPU under
``TRITON_INTERPRET=1`` when asked for explicitly, as the tests do).
"""

from kernels.qk_norm_rope import qk_norm_rope, qk_norm_rope_reference

__all__ = ["qk_norm_rope", "qk_norm_rope_reference"]
