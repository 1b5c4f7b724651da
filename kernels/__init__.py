"""Fused GPU kernels for the J-DiT, each beside the PyTorch reference of the same function.

Nothing here needs a GPU or Triton to import: the reference path runs everywhere, and the Triton
kernels are used only on CUDA tensors when Triton is installed (see ``qk_norm_rope``).
"""

from kernels.qk_norm_rope import qk_norm_rope, qk_norm_rope_reference

__all__ = ["qk_norm_rope", "qk_norm_rope_reference"]
