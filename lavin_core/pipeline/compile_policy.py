"""When ``torch.compile`` repays its cost: a pure decision from the work a run will do.

Compiling the J-DiT's block costs a fixed time up front (tracing, Inductor code generation, a C++
compiler on the CPU) and then makes every call faster by a factor. It pays when the time saved
over the whole run exceeds that cost:

    eager_seconds = work_gflop / eager_gflops
    saved         = eager_seconds * (1 - 1 / speedup)
    compile  <=>  saved > compile_seconds

``work_gflop`` comes from the run itself (steps x samples x tokens x the model's FLOPs per token,
``jdit_gflop``), so ``lavin run`` of one image never compiles and ``lavin bench`` over every task
does; training resolves ``model.compile = "auto"`` the same way (``lavin_core.train.compile``).

``ESTIMATES`` per device type. The CPU one is measured with ``benchmarks/bench_speed.py`` on a
quiet 2-core AMD EPYC (AVX-512 BF16; torch 2.13 CPU, 2026-12-02): eager J-DiT training steps at
34 GFLOP/s (lavin-tiny) to 75 GFLOP/s (hidden 384) in float32; the regional compile 125-170 s
with a cold Inductor cache (12-100 s warm); compiled steps 1.26-1.32x faster in float32 and 1.2-1.5x
in bf16 autocast at fixed shapes, 1.4x at the lavin-tiny-icl recipe's varying shapes (1-5 pairs,
clips; ``parallelize.apply_compile`` raises the recompile limit so that none of them falls back
to eager). The estimate takes the cautious end of each (the faster eager rate, the slower
compile, the smaller gain): a wrong "no" costs a fraction of the run, a wrong "yes" can cost more
than a short run. Inference forwards are smaller (one query at a time) and gain less; the
decision counts their FLOPs the same way, which is why one ``lavin run`` and the demo stay eager.
"""

from __future__ import annotations

import os
import shutil

import attrs

from lavin_core.jdit.config import JDiTConfig


@attrs.frozen(kw_only=True)
class CompileEstimate:
    """What compile costs and gains on one kind of device."""

    #: Seconds of the one-time compilation (both block variants, forward and backward when training).
    compile_seconds: float = attrs.field(validator=attrs.validators.gt(0.0))
    #: Eager throughput of the J-DiT, in GFLOP per second.
    eager_gflops: float = attrs.field(validator=attrs.validators.gt(0.0))
    #: Compiled throughput over eager throughput (> 1 where compile helps at all).
    speedup: float = attrs.field(validator=attrs.validators.gt(0.0))


#: Per device type; provisional (see the module docstring). CUDA: the GPU figures in DESIGN.md
#: (compile 235 s for the 3.4B model, sampling 1.46x faster; eager hundreds of TFLOP/s).
ESTIMATES = {
    # bench_speed.py on a quiet 2-core EPYC (see the module docstring)
    "cpu": CompileEstimate(compile_seconds=180.0, eager_gflops=75.0, speedup=1.25),
    "cuda": CompileEstimate(compile_seconds=240.0, eager_gflops=300_000.0, speedup=1.4),
}


def jdit_gflop(config: JDiTConfig, tokens: int, *, training: bool = False) -> float:
    """GFLOP of the J-DiT over ``tokens`` tokens (both streams counted): 2 FLOPs per weight and token
    in the blocks, times 3 with the backward. Attention's quadratic term is left out, so this
    undercounts long sequences, which only makes the decision more cautious."""
    hidden, width = config.hidden_size, config.mlp_width
    qkv = hidden * (config.num_heads + 2 * config.num_kv_heads) * config.head_dim
    per_stream = qkv + config.num_heads * config.head_dim * hidden + 3 * hidden * width
    flop = 2.0 * per_stream * config.depth * tokens
    return flop * (3 if training else 1) / 1e9


def compile_pays(work_gflop: float, estimate: CompileEstimate) -> bool:
    """Whether compiling saves more time than it costs over ``work_gflop`` of J-DiT work (see the module docstring)."""
    if estimate.speedup <= 1.0:
        return False
    eager_seconds = work_gflop / estimate.eager_gflops
    return eager_seconds * (1.0 - 1.0 / estimate.speedup) > estimate.compile_seconds


def should_compile(choice: bool | str, work_gflop: float, device_type: str) -> bool:
    """``choice`` ``True``/``False`` as said; ``"auto"``: ``compile_pays`` with this device type's
    estimate (devices without one, e.g. ``mps``, stay eager)."""
    if isinstance(choice, bool):
        return choice
    if choice != "auto":
        raise ValueError(f"compile must be true, false or \"auto\", got {choice!r}")
    estimate = ESTIMATES.get(device_type)
    if device_type == "cpu" and not has_cpp_compiler():
        return False  # Inductor generates C++ for the CPU: without a compiler it cannot run
    return estimate is not None and compile_pays(work_gflop, estimate)


def has_cpp_compiler() -> bool:
    """Whether the C++ compiler Inductor uses on the CPU is on ``PATH`` (``$CXX``, else g++ or clang++)."""
    names = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "clang++"]
    return any(shutil.which(name) for name in names)


def sampling_gflop(config: JDiTConfig, *, predictions: int, num_steps: int, num_pairs: int, latent_side: int,
                   guided: bool = True) -> float:
    """J-DiT GFLOP of ``predictions`` samples of ``num_steps`` steps each, for images (one latent frame):
    the conditional pass over ``[pairs, query]`` plus the target, and with CFG the null pass over
    ``[0, query]`` plus the target. Clips have more frames, so this undercounts them (cautious)."""
    per_frame = (latent_side // config.patch_size) ** 2
    frames = (2 * num_pairs + 1) + 1 + ((1 + 1) + 1 if guided else 0)
    return jdit_gflop(config, predictions * num_steps * frames * per_frame)


def compile_if_it_pays(denoiser, work_gflop: float) -> bool:
    """Regional compile of ``denoiser``'s blocks in place when ``should_compile("auto", ...)`` says so;
    returns whether it did.

    A denoiser without J-DiT blocks (a wrapper, a stand-in) is left as is. Shapes are dynamic after
    the first recompile (``dynamic=None``), as the conditional and null passes differ in length.
    """
    from torch import nn

    from lavin_core.pipeline.compiled import compile_blocks

    blocks = getattr(denoiser, "blocks", None)
    weight = next(iter(denoiser.parameters()), None) if isinstance(denoiser, nn.Module) else None
    if not isinstance(blocks, nn.ModuleList) or weight is None:
        return False
    if not should_compile("auto", work_gflop, weight.device.type):
        return False
    compile_blocks(denoiser, dynamic=None)
    return True


def compile_pipeline_if_it_pays(pipe, options, *, queries: int, num_pairs: int, image_size: int) -> bool:
    """``compile_if_it_pays`` for an ``InContextPipeline`` about to answer ``queries`` queries of
    ``image_size`` images with ``num_pairs`` pairs each, under resolved ``SamplingOptions`` (``pipe.resolve``)."""
    config = getattr(pipe.denoiser, "config", None)
    if not isinstance(config, JDiTConfig) or options.adapt_steps:
        return False  # adapting trains the blocks on other shapes than sampling's: they would recompile
    steps = pipe.step_count(options)
    work = sampling_gflop(config, predictions=queries * (options.num_samples or 1), num_steps=steps,
                          num_pairs=num_pairs, latent_side=image_size // pipe.encoder.spatial_compression,
                          guided=options.guidance_scale != 1.0)
    return compile_if_it_pays(pipe.denoiser, work)
