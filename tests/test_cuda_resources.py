"""`.ci/cuda-resources`: local memory fails the check unless the kernel is accepted, and
an accepted kernel fails past its bound (ptxas reports written here, no compiler)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "cuda-resources"


def _load():
    loader = importlib.machinery.SourceFileLoader("cuda_resources", str(SCRIPT))
    spec = importlib.util.spec_from_loader("cuda_resources", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _report(kernel: str, stack: int, spill_st: int, spill_ld: int) -> str:
    return (f"ptxas info    : Compiling entry function '{kernel}' for 'sm_90'\n"
            f"ptxas info    : Function properties for {kernel}\n"
            f"    {stack} bytes stack frame, {spill_st} bytes spill stores, "
            f"{spill_ld} bytes spill loads\n"
            f"ptxas info    : Used 128 registers, used 1 barriers\n")


# mangled names as nvcc writes them (body_kernel_min<CorrStrip<float, 7, 4, false>, ...>)
STRIP7 = "_ZN2lc15body_kernel_minINS_9CorrStripIfLi7ELi4ELb0EEEJNS_8CorrArgsENS_13CorrStripPlanEEEEvDpT0_"
STRIP5 = "_ZN2lc15body_kernel_minINS_9CorrStripIfLi5ELi4ELb0EEEJNS_8CorrArgsENS_13CorrStripPlanEEEEvDpT0_"


@pytest.mark.parametrize("kernel, spill_ld, rc", [
    (STRIP7, 0, 0),     # no local memory
    (STRIP7, 80, 0),    # accepted, within its bound
    (STRIP7, 400, 1),   # accepted kernel past its bound
    (STRIP5, 16, 1),    # local memory nobody accepted
])
def test_local_memory_policy(tmp_path, kernel, spill_ld, rc, capsys):
    resources = _load()
    stack = 16 if spill_ld else 0
    (tmp_path / "corr.sm_90.ptxas.log").write_text(_report(kernel, stack, spill_ld // 2, spill_ld))
    assert resources.main(str(tmp_path)) == rc
    assert (tmp_path / "resources.md").exists()
    err = capsys.readouterr().err
    assert ("uses local memory" in err) == bool(rc)
