"""The CUDA backend's registration, availability reasons and build switches.

These run everywhere: on a machine without CUDA they check that the backend
says why it is unavailable (and that ``import localconn`` never fails), that
a forced ``backend="cuda"`` raises with that reason and that auto-dispatch
moves on; that setup.py honours ``LOCALCONN_BUILD_CUDA``; and that the
Python argument lists agree with csrc/ (list lengths, dtype and kernel codes).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from backend_checks import CPU_AUTO

import localconn
from localconn import cuda_args, cuda_backend
from localconn.backends import BackendUnavailableError, select
from localconn.geometry import make_geometry
from localconn.problem import Problem

ROOT = Path(__file__).resolve().parent.parent
HAS_EXTENSION = cuda_backend.extension() is not None


def _problem(device: str, dtype: torch.dtype = torch.float32) -> Problem:
    geo = make_geometry((7, 8), (3, 3), 1, 1, 1, "sliding")
    return Problem("conn2d", geo, 2, 6, (1, 6, 3, 3, 1, 1), dtype, torch.device(device))


def _run(args: list[str], env: dict[str, str], code: str = "") -> subprocess.CompletedProcess:
    cmd = [sys.executable, *args] + ([textwrap.dedent(code)] if code else [])
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(HAS_EXTENSION, reason="the extension is built here: the GPU tests run it")
def test_unavailable_with_a_reason() -> None:
    """Without localconn._C: backends() says why; forced raises it; auto uses another."""
    status = localconn.backends()["cuda"]
    assert not status.available and "localconn._C" in status.reason, status
    if torch.version.cuda is None:
        assert "this PyTorch has no CUDA" in status.reason, status
    x, w = torch.randn(2, 6, 7, 8), torch.randn(1, 6, 3, 3, 1, 1)
    with pytest.raises(BackendUnavailableError, match="localconn._C") as info:
        localconn.local_conn2d(x, w, padding=1, backend="cuda")
    assert "backend='cuda'" in str(info.value)
    y = localconn.local_conn2d(x, w, padding=1)  # auto
    assert torch.equal(y, localconn.local_conn2d(x, w, padding=1, backend=CPU_AUTO))
    assert select(_problem("cpu")).name == CPU_AUTO


def test_reason_names_the_fix_when_the_build_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a CUDA PyTorch but no extension, the reason says how to build it."""
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.delenv("LOCALCONN_BUILD_CUDA", raising=False)
    reason = cuda_backend._why_not_built(ImportError("No module named 'localconn._C'"))
    assert "LOCALCONN_BUILD_CUDA=1 pip install" in reason and "localconn._C" in reason, reason
    monkeypatch.setenv("LOCALCONN_BUILD_CUDA", "0")
    assert "LOCALCONN_BUILD_CUDA=0" in cuda_backend._why_not_built(ImportError("x"))


def test_import_never_fails_when_the_extension_is_broken() -> None:
    """A localconn._C that raises on import: `import localconn` works, the reason says so."""
    code = """
        import sys
        sys.modules["localconn._C"] = None  # `import localconn._C` raises ImportError
        import torch, localconn
        status = localconn.backends()["cuda"]
        assert not status.available and "localconn._C" in status.reason, status
        print("ok")
    """
    r = _run(["-c"], dict(os.environ), code)
    assert r.returncode == 0 and "ok" in r.stdout, r.stdout + r.stderr


def test_supports_declines_other_devices_and_dtypes() -> None:
    """Non-CUDA tensors and non-float dtypes are declined with a reason naming them."""
    reason = cuda_backend.supports(_problem("cpu"))
    assert reason is not None and "CUDA" in reason and "cpu" in reason
    reason = cuda_backend.supports(_problem("meta"))
    assert reason is not None and "meta" in reason
    if torch.cuda.is_available():
        reason = cuda_backend.supports(_problem("cuda", torch.int32))
        assert reason is not None and "int32" in reason


def test_auto_never_picks_cuda_for_cpu_tensors() -> None:
    """Even when registered and available, auto-dispatch chooses it only for CUDA tensors."""
    backend = localconn.Backend("cuda", *(lambda *a: None,) * 3, priority=99,
                                auto_devices=("cuda",))
    registry = sys.modules["localconn.backends"]._REGISTRY
    saved = registry["cuda"]
    registry["cuda"] = backend
    try:
        assert select(_problem("cpu")).name == CPU_AUTO
    finally:
        registry["cuda"] = saved


# ------------------------------------------------------------------------ setup.py switches


def test_build_switch_zero_skips_the_extension() -> None:
    """LOCALCONN_BUILD_CUDA=0: setup.py configures a pure-Python package and says so."""
    env = dict(os.environ, LOCALCONN_BUILD_CUDA="0")
    r = _run(["setup.py", "--name"], env)
    assert r.returncode == 0 and "LOCALCONN_BUILD_CUDA=0" in r.stdout, r.stdout + r.stderr


@pytest.mark.skipif(torch.version.cuda is not None, reason="this PyTorch could build it")
def test_build_switch_one_fails_loudly_without_cuda() -> None:
    """LOCALCONN_BUILD_CUDA=1 with a CPU-only PyTorch stops with the reason."""
    env = dict(os.environ, LOCALCONN_BUILD_CUDA="1")
    r = _run(["setup.py", "--name"], env)
    assert r.returncode != 0 and "no CUDA" in r.stdout + r.stderr, r.stdout + r.stderr


# --------------------------------------------------- Python argument lists == csrc/ headers


def _header(name: str) -> str:
    return (ROOT / "csrc" / name).read_text()


def test_argument_lists_match_meta_h() -> None:
    """The list lengths and the dtype / kernel codes agree with csrc/."""
    meta = _header("meta.h")
    assert int(re.search(r"kConnMetaLen = (\d+)", meta).group(1)) == cuda_args.CONN_META_LEN
    assert int(re.search(r"kCorrMetaLen = (\d+)", meta).group(1)) == cuda_args.CORR_META_LEN
    params = _header("params.h")
    codes = dict(re.findall(r"k(Float32|Float16|BFloat16|Float64) = (\d)", params))
    names = {"Float32": torch.float32, "Float16": torch.float16, "BFloat16": torch.bfloat16,
             "Float64": torch.float64}
    assert {names[k]: int(v) for k, v in codes.items()} == cuda_args.DTYPE_CODES
    windows = re.findall(r"k(Sliding|Neighborhood|Block) = (\d)", params)
    assert [w.lower() for w, _ in sorted(windows, key=lambda t: t[1])] == list(
        localconn.geometry.WINDOWS)
    enum = re.search(r"enum Kernel : int32_t \{(.*?)\};", _header("plan.h"), re.S)[1]
    kernels = re.findall(r"k(Conn\w+|Corr\w+) = (\d+),", enum)
    snake = [re.sub(r"(?<!^)([A-Z])", r"_\1", k).lower() for k, _ in sorted(kernels,
                                                                          key=lambda t: int(t[1]))]
    assert snake == list(cuda_args.KERNEL_NAMES), snake


def test_conn_meta_layout() -> None:
    """Spot-check the list: window code, sizes, broadcast strides 0, position flags."""
    x = torch.randn(2, 6, 7, 8).contiguous(memory_format=torch.channels_last)
    w = torch.randn(1, 3, 3, 3, 7, 1)
    y = torch.empty(2, 6, 7, 8)
    geo = make_geometry((7, 8), (3, 3), 1, (1, 1), 1, "sliding")
    m = cuda_args.conn_meta(x, w, 0, y, geo)
    assert m[:5] == [0, 0, 2, 6, 2]                  # float32, sliding, N, C, C // Cw
    assert m[5:11] == [7, 7, 3, 1, 1, 1]             # rows: in, out, k, s, p, d
    assert m[17:21] == list(x.stride())              # channels_last strides
    assert m[21] == 0 and m[25] == 1 and m[26] == 0  # Nw, Ww broadcast; Hw position-specific
    assert m[27:29] == [1, 0]


def test_extension_is_an_importable_module() -> None:
    """``localconn._C`` defines its module init (TORCH_LIBRARY alone is not importable)."""
    setup = (ROOT / "setup.py").read_text()
    name = re.search(r'CUDAExtension\(\s*"localconn\.(\w+)"', setup).group(1)
    assert f"PyInit_{name}" in _header("binding.cpp"), f"binding.cpp lacks PyInit_{name}"
