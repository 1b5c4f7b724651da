"""Speed on the CPU: the J-DiT training step and forward (main 6384c89's eager step against the one
``lavin train`` runs now), the distance to this CPU's matmul roofline, start-up, and the demo
beside a busy process. Run from the repository root, on a machine with nothing else running:

    python -m benchmarks.bench_speed                       # both sizes and start-up (several minutes)
    python -m benchmarks.bench_speed --sizes 192 --skip-startup
    python -m benchmarks.bench_speed --demo                # + `lavin demo --ensemble 1` alone and beside `yes`

Sizes: the lavin-tiny J-DiT (hidden 192) and the same at hidden 384, batch 16, 64x64 images,
3 example pairs (the lavin-tiny recipe), 2 of the 16 contexts null (CFG dropout).

Baseline: the step main 6384c89 ran, rebuilt in this process: the J-DiT eager and
``torch.optim.AdamW`` with its defaults (per-tensor loop). The J-DiT code is today's, so what
the eager model gained since 6384c89 counts towards the baseline, not towards the speed-up. Candidate: the step ``lavin train`` runs now: the regional compile of
``lavin_core.train.parallelize.apply_compile`` (one compiled block reused for every layer), the
fused AdamW of ``lavin_core.train.optim.make_optimizer`` and ``train.precision = "auto"``, which
is bf16 autocast on a CPU with native bf16 matmuls (AVX-512 BF16 or AMX; ``devices.native_bf16``)
and float32 elsewhere; on such a CPU the float32 compiled step is timed too ("compiled fp32"), to
show what each change gives. They are timed alternately, call by call
(``bench_jdit.median_seconds``), so load from other processes falls on all alike; every
figure printed is measured in this run. GFLOP/s counts the matmul and attention FLOPs of a step
(``torch.utils.flop_counter``); the roofline is a 1024^3 float32 matmul on the same threads (and a
bf16 one is printed beside it where bf16 is native).
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lavin_core  # noqa: F401  first: it sets OpenMP's passive waiting before torch loads

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.bench_jdit import median_seconds
from lavin_core.devices import native_bf16
from lavin_core.jdit import JDiT, get_preset
from lavin_core.samplers import null_context
from lavin_core.train.compile import compile_seconds
from lavin_core.train.dit_stage import DiTObjective
from lavin_core.train.optim import make_optimizer
from lavin_core.train.parallelize import apply_compile
from lavin_core.devices import autocast_dtype

ROOT = Path(__file__).resolve().parents[1]
#: What the `lavin` console script runs.
LAVIN = "import sys; from lavin_core.cli import main; sys.exit(main())"
BASELINE, FP32, CANDIDATE = "main 6384c89", "compiled fp32", "lavin train"


def matmul_gflops(n: int = 1024, seconds: float = 1.0, dtype: torch.dtype = torch.float32) -> float:
    """Achieved GFLOP/s of an ``n^3`` matmul in ``dtype``: this CPU's practical roofline for the J-DiT."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        calls += 1
    return 2 * n**3 * calls / (time.perf_counter() - start) / 1e9


def training_steps(hidden: int, batch: int, pairs: int, size: int):
    """(name -> training step, name -> forward, GFLOP per step, GFLOP per forward) of the baseline and candidate."""
    config = get_preset("lavin-tiny") if hidden == 192 else get_preset("lavin-tiny", hidden_size=hidden,
                                                                         num_heads=hidden // 48)
    torch.manual_seed(0)
    side = size // 8
    target = torch.randn(batch, 16, 1, side, side)
    cond = torch.randn(batch, 16, 2 * pairs + 1, side, side)
    null = null_context(cond[:, :, -1:])
    t, noise = torch.rand(batch), torch.randn_like(target)
    drop = torch.zeros(batch, dtype=torch.bool)
    drop[: min(2, batch - 1)] = True
    eager = JDiT(config)
    objectives = {BASELINE: DiTObjective(eager, autocast_dtype=None)}
    precision = autocast_dtype("auto", torch.device("cpu"))  # what `lavin train` picks here
    if precision is not None:  # the float32 compiled step too, to show what each change gives
        objectives[FP32] = DiTObjective(copy.deepcopy(eager), autocast_dtype=None)
    objectives[CANDIDATE] = DiTObjective(copy.deepcopy(eager), autocast_dtype=precision)
    optimizers = {BASELINE: torch.optim.AdamW(eager.parameters(), lr=1e-4)}
    for name in [n for n in objectives if n != BASELINE]:
        apply_compile(objectives[name])
        optimizers[name] = make_optimizer(objectives[name].parameters(), lr=1e-4)

    def step_of(name):
        def step():
            loss = objectives[name](target, cond, null, t, noise, drop).mean()
            optimizers[name].zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(objectives[name].parameters(), 1.0)
            optimizers[name].step()
        return step

    def forward_of(name):
        model = objectives[name].model

        @torch.no_grad()
        def forward():
            model.eval()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=objectives[name].autocast_dtype is not None):
                model(target, t, cond)
            model.train()
        return forward

    with FlopCounterMode(display=False) as counter:
        objectives[BASELINE](target, cond, null, t, noise, drop).mean().backward()
    step_gflop = counter.get_total_flops() / 1e9
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        eager(target, t, cond)
    forward_gflop = counter.get_total_flops() / 1e9
    return ({name: step_of(name) for name in objectives}, {name: forward_of(name) for name in objectives},
            step_gflop, forward_gflop)


def bench_training(hidden: int, args, rooflines: dict[str, float]) -> None:
    # Each size starts with an empty compile cache, as a training run (one size per process) does:
    # the guards of one code object are shared by every model, so sizes measured in one process
    # would otherwise spend the recompile limit between them and run partly eager.
    torch._dynamo.reset()
    steps, forwards, step_gflop, forward_gflop = training_steps(hidden, args.batch, args.pairs, args.size)
    before, start = compile_seconds(), time.perf_counter()
    for name in [n for n in steps if n != BASELINE]:
        steps[name]()
        forwards[name]()
    precision = "bf16 autocast" if FP32 in steps else "float32"
    print(f"hidden {hidden}: `lavin train` here: {precision}, compiled blocks, fused AdamW; first compiled steps "
          f"and forwards {time.perf_counter() - start:.1f} s, of which compiling {compile_seconds() - before:.1f} s")
    for kind, fns, gflop in (("train step", steps, step_gflop), ("forward", forwards, forward_gflop)):
        times = {name: median for name, (_, median) in median_seconds(fns, 1, args.repeats).items()}
        for name, seconds in times.items():
            rate = gflop / seconds
            dtype = "bf16" if name == CANDIDATE and FP32 in steps else "float32"
            print(f"  {kind:10s} {name:13s}: {seconds * 1e3:8.1f} ms, {rate:6.1f} GFLOP/s = "
                  f"{rate / rooflines[dtype]:.2f} of the {dtype} matmul roofline")
        for name in [n for n in times if n != BASELINE]:
            print(f"  {kind:10s} {name} / {BASELINE} speed: {times[BASELINE] / times[name]:.2f}x")


def wall(command: list[str], **kwargs) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT, **kwargs)
    return time.perf_counter() - start


def bench_startup(repeats: int) -> None:
    from lavin_core.data.outputs import save_image

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    lavin = [sys.executable, "-c", LAVIN]
    with tempfile.TemporaryDirectory() as tmp:
        query = Path(tmp) / "query.png"
        save_image(torch.rand(3, 1, 64, 64) * 2 - 1, query)
        timings = {
            "python -c 'import torch' (floor)": [sys.executable, "-c", "import torch"],
            "python -c 'import lavin_core'": [sys.executable, "-c", "import lavin_core"],
            "lavin --help": [*lavin, "--help"],
            "lavin run (64x64, 1 sample)": [*lavin, "run", "--task", "depth", "--query", str(query), "--ensemble",
                                            "1", "--quiet", "--overwrite", "--out", str(Path(tmp) / "out.png")],
        }
        for label, command in timings.items():
            wall(command, env=env)  # warm the file cache
            best = min(wall(command, env=env) for _ in range(repeats))
            print(f"  {label:34s}: {best:.2f} s wall (best of {repeats})")


def bench_demo() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-c", LAVIN, "demo", "--ensemble", "1", "--no-progress", "--out", tmp]
        alone = wall(command, env=env)
        busy = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL)
        try:
            beside = wall(command, env=env)
        finally:
            busy.kill()
            busy.wait()
    print(f"  lavin demo --ensemble 1: {alone:.1f} s alone, {beside:.1f} s beside `yes` ({beside / alone:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[192, 384],
                        help="J-DiT hidden sizes (default: 192 384; none skips the training rows)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls of each (default: 7)")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--demo", action="store_true", help="also time `lavin demo --ensemble 1` beside `yes`")
    args = parser.parse_args()
    rooflines = {"float32": matmul_gflops()}
    if native_bf16(torch.device("cpu")):
        rooflines["bf16"] = matmul_gflops(dtype=torch.bfloat16)
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}, load average {os.getloadavg()[0]:.1f}; matmul roofline "
          + ", ".join(f"{rate:.0f} GFLOP/s {dtype}" for dtype, rate in rooflines.items()))
    for hidden in args.sizes:
        bench_training(hidden, args, rooflines)
    if not args.skip_startup:
        print("start-up:")
        bench_startup(min(3, args.repeats))
    if args.demo:
        bench_demo()


if __name__ == "__main__":
    main()
