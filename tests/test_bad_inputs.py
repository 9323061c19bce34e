"""Every bad input of tests/bad_inputs.py on every backend that runs here, in a child process.

Per backend (the reference; Triton through its interpreter; the CUDA kernels
through the CPU emulator) a fresh Python runs the whole table: each case must
raise the expected ``ValueError`` / ``TypeError`` with a message that names
the argument; the child must not crash (exit status) and no case may hang
(a 60-second alarm each).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _available(backend: str) -> bool:
    if backend == "triton":
        try:
            import triton  # noqa: F401
        except ImportError:
            return False
    if backend == "cuda":
        from cuda_emulator import compiler

        return compiler() is not None
    return True


@pytest.mark.parametrize("backend", ["reference", "triton", "cuda"])
def test_bad_inputs_raise_named_errors(backend: str) -> None:
    if not _available(backend):
        pytest.skip(f"the {backend} backend cannot run here (no Triton / no C++ compiler)")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "bad_inputs.py"), backend],
                       capture_output=True, text=True, timeout=1200, env=env, cwd=ROOT)
    assert r.returncode == 0, f"the child crashed ({r.returncode}):\n{r.stderr[-4000:]}"
    results = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(results) > 90, r.stdout[-2000:] + r.stderr[-2000:]
    wrong = [f"{x['id']}: raised {x['raised']} ({x['message'][:160]}), expected "
             f"{x['expected']} naming {x['name']!r}"
             for x in results
             if x["raised"] != x["expected"] or x["name"] not in x["message"]]
    assert not wrong, "\n".join(wrong)
