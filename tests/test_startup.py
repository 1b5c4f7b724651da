"""Start-up stays cheap: importing LaVin, ``lavin --help`` and loading the model code pull in neither
``torch._dynamo`` nor Triton nor Inductor (1-2 s of every command), nor the plugins' modules.

Each check runs in a fresh interpreter, since this test process has long imported everything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch._dynamo", "torch._inductor", "triton", "lavin_plugins", "scipy", "skimage", "zarr")


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


HELP = "from lavin_core.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"


@pytest.mark.parametrize("code", ["import lavin_core", HELP, "import lavin_core.jdit, lavin_core.stvae",
                                  "import lavin_core.pipeline, lavin_core.pipeline.compiled"])
def test_start_up_imports_nothing_heavy(code):
    assert _loaded_after(code) == []


def test_importing_lavin_core_makes_openmp_threads_wait_passively():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME")}
    code = "import os, lavin_core; print(os.environ['OMP_WAIT_POLICY'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**env, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "PASSIVE", out.stderr
    mine = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**env, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "ACTIVE"})
    assert mine.stdout.strip() == "ACTIVE"
