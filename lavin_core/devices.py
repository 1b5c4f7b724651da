"""Device strings checked once, up front: ``cpu``, ``cuda``, ``cuda:N``, ``mps``.

    device = check_device("cuda:1")   # torch.device, or one line saying what is wrong and what works

A typo (``gpu0``) or a device this machine lacks is a ``DeviceError`` before any weights are
read, instead of a traceback from deep inside a loader (``pin_memory`` without CUDA, an invalid
device reported as an unreadable file).

    autocast_dtype("auto", device)   # torch.bfloat16 where the device multiplies bf16 natively, else None
"""

from __future__ import annotations

import re

import torch

from lavin_core.errors import LavinError

#: The device forms LaVin takes, for messages.
DEVICE_FORMS = "cpu, cuda, cuda:N or mps"
_DEVICE = re.compile(r"(cpu|cuda|mps)(?::(\d+))?")


class DeviceError(LavinError, ValueError):
    """A device string that is malformed or names a device this machine does not have."""


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device`` once it is known to exist here; ``DeviceError`` otherwise."""
    spec = str(device).strip()
    match = _DEVICE.fullmatch(spec)
    if match is None:
        raise DeviceError(f"unknown device {spec!r}; use {DEVICE_FORMS}")
    kind, index = match.group(1), match.group(2)
    if kind == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise DeviceError(f"device {spec!r}: CUDA is not available here (PyTorch {torch.__version__}, {build}, "
                              "no visible GPU); use cpu")
        count = torch.cuda.device_count()
        if index is not None and int(index) >= count:
            raise DeviceError(f"device {spec!r}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {spec!r}: MPS (Apple GPU) is not available here; use cpu")
    if kind == "cpu" and index not in (None, "0"):
        raise DeviceError(f"device {spec!r}: there is one CPU device, cpu (or cpu:0)")
    return torch.device(spec)


def supports_pinned_memory(device: str | torch.device) -> bool:
    """Whether host memory may be pinned for copies to ``device`` (CUDA only; pinning needs its allocator)."""
    return torch.device(device).type == "cuda" and torch.cuda.is_available()


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 matrices in hardware: every CUDA GPU LaVin runs on, and a
    CPU with AVX-512 BF16 or AMX instructions. Without them a CPU emulates bf16, which measured
    0.59x the float32 matmul speed and 55x slower convolutions on an AVX2 EPYC; with them, 5.7x
    and 1.6x faster (``benchmarks/bench_official.py``, README "The authors' 3.4B weights")."""
    if device.type == "cuda":
        return True
    if device.type != "cpu":
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, so looked up defensively
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


#: The precisions training (``train.precision``) and sampling (``--precision``) take.
PRECISIONS = ("auto", "fp32", "bf16")


def check_precision(precision: object, what: str = "precision") -> str:
    """``precision`` when it is one of ``PRECISIONS``; a ``ValueError`` naming it otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"{what} must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision  # type: ignore[return-value]


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast for ``bf16``, and for ``auto`` where the device has native bf16 matmuls (CUDA,
    a CPU with AVX-512 BF16 or AMX: ``native_bf16``); none (float32) otherwise."""
    if check_precision(precision) == "bf16" or (precision == "auto" and native_bf16(device)):
        return torch.bfloat16
    return None
