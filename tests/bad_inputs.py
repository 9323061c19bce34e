"""The table of bad inputs of every public entry point, run in a child process per backend.

``python tests/bad_inputs.py BACKEND`` (``reference``, ``triton`` through the
interpreter, ``cuda`` through the CPU emulator of csrc/) runs every case of
:data:`CASES` with ``backend=BACKEND`` where the entry point takes one, each
under a 60-second alarm, and prints one JSON line per case: the exception's
type and message, or that none was raised. ``tests/test_bad_inputs.py``
checks the lines: the expected type, a message naming the argument, no
crash (the child's exit status) and no hang (the alarm).

Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable, NamedTuple

ROOT = Path(__file__).resolve().parent.parent


class Case(NamedTuple):
    """``call(backend)`` must raise ``error`` with ``name`` in its message."""

    id: str
    call: Callable[[str], Any]
    error: str  # "ValueError" or "TypeError"
    name: str


def _cases() -> list[Case]:
    import torch
    from torch import nn

    import localconn
    import localconn.models as models

    def t(*shape: int, dtype=torch.float32) -> torch.Tensor:
        return torch.randn(*shape, dtype=dtype) if dtype.is_floating_point else torch.ones(
            *shape, dtype=dtype)

    x, w = t(2, 4, 9, 9), t(1, 4, 3, 3, 1, 1)

    def conn(**kw: Any) -> Callable[[str], Any]:
        args = {"x": x, "weight": w, "bias": None, "padding": 1, **kw}
        return lambda be: localconn.local_conn2d(
            args.pop("x"), args.pop("weight"), args.pop("bias"), backend=be, **args)

    def conn_t(g=None, weight=None, size=(9, 9), **kw: Any) -> Callable[[str], Any]:
        g = t(2, 4, 9, 9) if g is None else g
        weight = w if weight is None else weight
        return lambda be: localconn.local_conn2d_transpose(g, weight, size, padding=1,
                                                           backend=be, **kw)

    def corr(a=None, bb=None, shape=(1, 4, 3, 3, 1, 1), **kw: Any) -> Callable[[str], Any]:
        a = t(2, 4, 9, 9) if a is None else a
        bb = t(2, 4, 9, 9) if bb is None else bb
        return lambda be: localconn.local_corr2d(a, bb, shape, **{"padding": 1, **kw},
                                                 backend=be)

    def module(*args: Any, input=None, **kw: Any) -> Callable[[str], Any]:  # noqa: A002
        def run(be: str) -> Any:
            m = localconn.LocalConn2d(*args, backend=be, **kw)
            return m(t(2, 4, 9, 9) if input is None else input)
        return run

    def attention(*args: Any, input=None, **kw: Any) -> Callable[[str], Any]:  # noqa: A002
        def run(be: str) -> Any:
            m = localconn.LocalAttention2d(*args, backend=be, **kw)
            return m(t(2, 4, 9, 9) if input is None else input)
        return run

    V, T = "ValueError", "TypeError"
    return [
        # ------------------------------------------------------------ local_conn2d
        Case("conn x list", conn(x=[[1.0]]), T, "x"),
        Case("conn x int", conn(x=t(2, 4, 9, 9, dtype=torch.int64)), T, "x"),
        Case("conn x complex", conn(x=t(2, 4, 9, 9, dtype=torch.complex64)), T, "x"),
        Case("conn x 3-D", conn(x=t(4, 9, 9)), V, "x"),
        Case("conn x sparse", conn(x=x.to_sparse()), T, "x"),
        Case("conn weight 5-D", conn(weight=t(1, 4, 3, 3, 1)), V, "weight"),
        Case("conn weight dtype", conn(weight=t(1, 4, 3, 3, 1, 1, dtype=torch.float64)), T,
             "weight"),
        Case("conn weight device", conn(weight=w.to("meta")), T, "weight"),
        Case("conn weight Nw", conn(weight=t(3, 4, 3, 3, 1, 1)), V, "weight"),
        Case("conn weight Cw", conn(weight=t(1, 3, 3, 3, 1, 1)), V, "weight"),
        Case("conn weight Hw", conn(weight=t(1, 4, 3, 3, 5, 1)), V, "weight"),
        Case("conn weight kernel 0", conn(weight=t(1, 4, 0, 3, 1, 1)), V, "weight"),
        Case("conn bias shape", conn(bias=t(3)), V, "bias"),
        Case("conn bias dtype", conn(bias=t(4, dtype=torch.float64)), T, "bias"),
        Case("conn bias 2-D", conn(bias=t(4, 1)), V, "bias"),
        Case("conn stride 0", conn(stride=0), V, "stride"),
        Case("conn stride -1", conn(stride=-1), V, "stride"),
        Case("conn stride str", conn(stride="2"), V, "stride"),
        Case("conn stride bool", conn(stride=True), V, "stride"),
        Case("conn stride triple", conn(stride=(1, 1, 1)), V, "stride"),
        Case("conn stride 2**62", conn(stride=2**62), V, "stride"),
        Case("conn padding -1", conn(padding=-1), V, "padding"),
        Case("conn padding full", conn(padding="full"), V, "padding"),
        Case("conn padding same stride 2", conn(padding="same", stride=2), V, "padding"),
        Case("conn padding 2**40", conn(padding=2**40), V, "padding"),
        Case("conn padding 2**63", conn(padding=2**63), V, "padding"),
        Case("conn padding float", conn(padding=1.5), V, "padding"),
        Case("conn dilation 0", conn(dilation=0), V, "dilation"),
        Case("conn dilation 2**40", conn(dilation=2**40), V, "dilation"),
        Case("conn window name", conn(window="dense"), V, "window"),
        Case("conn window None", conn(window=None), V, "window"),
        Case("conn empty output", conn(padding=0, weight=t(1, 4, 11, 11, 1, 1)), V, "kernel"),
        Case("conn neighborhood small", conn(padding=0, window="neighborhood",
                                              weight=t(1, 4, 11, 11, 1, 1)), V, "neighborhood"),
        Case("conn neighborhood padding", conn(window="neighborhood"), V, "padding"),
        Case("conn block not divisible", conn(padding=0, window="block",
                                              weight=t(1, 4, 2, 2, 1, 1)), V, "block"),
        Case("conn block stride", conn(padding=0, window="block", stride=3), V, "stride"),
        Case("conn block dilation", conn(padding=0, window="block", dilation=3), V, "dilation"),
        Case("conn backend name", lambda be: localconn.local_conn2d(x, w, backend="nope"), V,
             "backend"),
        Case("conn backend int", lambda be: localconn.local_conn2d(x, w, backend=3), T,
             "backend"),
        # ------------------------------------------------------------ local_conn2d_transpose
        Case("conn_t g list", conn_t(g=[1.0]), T, "g"),
        Case("conn_t g 5-D", conn_t(g=t(1, 2, 4, 9, 9)), V, "g"),
        Case("conn_t weight dtype", conn_t(weight=t(1, 4, 3, 3, 1, 1, dtype=torch.float16)), T,
             "weight"),
        Case("conn_t input_size length", conn_t(size=(9,)), V, "input_size"),
        Case("conn_t input_size float", conn_t(size=(9.0, 9)), V, "input_size"),
        Case("conn_t input_size 0", conn_t(size=(0, 9)), V, "input_size"),
        Case("conn_t input_size mismatch", conn_t(size=(12, 9)), V, "input_size"),
        Case("conn_t input_size N, C", conn_t(size=(2, 5, 9, 9)), V, "input_size"),
        Case("conn_t input_size 2**62", conn_t(size=(2**62, 9)), V, "input_size"),
        Case("conn_t input_size str", conn_t(size="9x9"), V, "input_size"),
        # ------------------------------------------------------------ local_corr2d
        Case("corr a list", corr(a=[1.0]), T, "a"),
        Case("corr b int", corr(bb=t(2, 4, 9, 9, dtype=torch.int32)), T, "b"),
        Case("corr a b dtype", corr(bb=t(2, 4, 9, 9, dtype=torch.float64)), T, "b"),
        Case("corr a b batch", corr(a=t(3, 4, 9, 9)), V, "a and b"),
        Case("corr a output size", corr(a=t(2, 4, 8, 9)), V, "a must have the output size"),
        Case("corr weight_shape length", corr(shape=(1, 4, 3, 3, 1)), V, "weight_shape"),
        Case("corr weight_shape kernel", corr(shape=(1, 4, 0, 3, 1, 1)), V, "weight_shape"),
        Case("corr weight_shape Cw", corr(shape=(1, 3, 3, 3, 1, 1)), V, "weight_shape"),
        Case("corr weight_shape float", corr(shape=(1, 4, 3.0, 3, 1, 1)), V, "weight_shape"),
        Case("corr weight_shape Nw", corr(shape=(5, 4, 3, 3, 1, 1)), V, "weight_shape"),
        # ------------------------------------------------------------ LocalConn2d
        Case("module channels 0", module(0, 3), V, "channels"),
        Case("module channels bool", module(True, 3), T, "channels"),
        Case("module channels str", module("4", 3), T, "channels"),
        Case("module kernel 0", module(4, 0), V, "kernel"),
        Case("module kernel tuple3", module(4, (3, 3, 3)), V, "kernel_size"),
        Case("module share", module(4, 3, share="all"), V, "share"),
        Case("module groups missing", module(4, 3, share="channel", dynamic=True), V, "groups"),
        Case("module groups divisor", module(4, 3, share="channel", groups=3, dynamic=True), V,
             "groups"),
        Case("module groups spatial", module(4, 3, groups=2), V, "groups"),
        Case("module input_size missing", module(4, 3, share="none"), V, "input_size"),
        Case("module reduction 0", module(4, 3, dynamic=True, reduction=0), V, "reduction"),
        Case("module window", module(4, 3, window="x"), V, "window"),
        Case("module padding", module(4, 3, padding="x"), V, "padding"),
        Case("module x channels", module(4, 3, input=t(2, 8, 9, 9)), V, "x"),
        Case("module x dtype", module(4, 3, dynamic=True, input=t(2, 4, 9, 9, dtype=torch.float64)),
             T, "x"),
        Case("module x list", module(4, 3, input=[1.0]), T, "x"),
        Case("module x size", module(4, 3, share="none", input_size=(9, 9), input=t(2, 4, 8, 9)),
             V, "x"),
        Case("module weight arg", lambda be: localconn.LocalConn2d(4, 3, backend=be)(
            x, weight=t(1, 3, 3, 3, 1, 1)), V, "weight"),
        # ------------------------------------------------------------ LocalAttention2d
        Case("attention dim 0", attention(0, 1, 3), V, "dim"),
        Case("attention heads divisor", attention(4, 3, 3), V, "num_heads"),
        Case("attention heads bool", attention(4, True, 3), T, "num_heads"),
        Case("attention kernel 0", attention(4, 2, 0), V, "kernel"),
        Case("attention window", attention(4, 2, 3, window="x"), V, "window"),
        Case("attention shift neighborhood", attention(4, 2, 3, shift=1), V, "shift"),
        Case("attention shift too big", attention(4, 2, 3, window="block", shift=3), V, "shift"),
        Case("attention qk_scale", attention(4, 2, 3, qk_scale="a"), T, "qk_scale"),
        Case("attention attn_drop", attention(4, 2, 3, attn_drop=2.0), V, "attn_drop"),
        Case("attention x channels", attention(4, 2, 3, input=t(2, 8, 9, 9)), V, "x"),
        Case("attention x dtype", attention(4, 2, 3, input=t(2, 4, 9, 9, dtype=torch.int64)), T,
             "x"),
        Case("attention x small", attention(4, 2, 5, input=t(2, 4, 3, 3)), V, "neighborhood"),
        Case("attention block size", attention(4, 2, 2, window="block"), V, "block"),
        # ------------------------------------------------------------ converters, selection
        Case("from_conv2d not conv", lambda be: localconn.LocalConn2d.from_conv2d(
            nn.Linear(4, 4), backend=be), T, "conv"),
        Case("from_conv2d dense conv", lambda be: localconn.LocalConn2d.from_conv2d(
            nn.Conv2d(4, 4, 3), backend=be), V, "conv"),
        Case("padding_mode unknown", lambda be: localconn.LocalConn2d(
            4, 3, padding_mode="mirror", backend=be), V, "padding_mode"),
        Case("padding_mode block window", lambda be: localconn.LocalConn2d(
            4, 2, window="block", padding_mode="reflect", backend=be), V, "padding_mode"),
        Case("module dtype int", lambda be: localconn.LocalConn2d(
            4, 3, dtype=torch.int32, backend=be), T, "dtype"),
        Case("module x 2-D", lambda be: localconn.LocalConn2d(4, 3, backend=be)(t(9, 9)), V,
             "(4, H, W)"),
        Case("use_backend name", lambda be: localconn.use_backend("nope").__enter__(), V,
             "backend"),
        Case("use_backend int", lambda be: localconn.use_backend(3).__enter__(), T, "backend"),
        Case("models unknown", lambda be: models.create("dwnet_huge"), V, "model"),
        Case("models name list", lambda be: models.create(["dwnet_tiny"]), T, "name"),
        Case("models even kernel", lambda be: models.create("dwnet_tiny", kernel_size=4), V,
             "kernel_size"),
        Case("models layers", lambda be: models.create("swin_tiny", layers="torch"), V, "layers"),
        Case("models heads per stage", lambda be: models.create("swin_tiny", num_heads=(1, 2)), V,
             "num_heads"),
    ]


def _backend_setup(backend: str) -> None:
    """Make ``backend`` runnable on the CPU in this process."""
    if backend == "cuda":
        sys.path.insert(0, str(ROOT / "tests"))
        import importlib

        from cuda_emulator import Emulator, build

        import localconn
        from localconn.backends import Backend

        registry = importlib.import_module("localconn.backends")  # (localconn.backends is
        # the status function)
        emu = Emulator(build())  # csrc/'s kernels, registered as the cuda backend (test_cuda.py)
        registry._REGISTRY["cuda"] = Backend("cuda", emu.conn2d, emu.conn2d_transpose,
                                             emu.corr2d, priority=5, auto_devices=("cuda",))
        assert localconn.backends()["cuda"].available


def main(backend: str) -> int:
    if backend == "triton":
        os.environ["TRITON_INTERPRET"] = "1"  # before Triton is first imported
    sys.path.insert(0, str(ROOT))
    _backend_setup(backend)

    def alarm(signum, frame):  # noqa: ANN001
        raise TimeoutError("the case hung for 60 s")

    signal.signal(signal.SIGALRM, alarm)
    for case in _cases():
        signal.alarm(60)
        try:
            case.call(backend)
            result = {"id": case.id, "raised": None, "message": ""}
        except BaseException as e:  # noqa: BLE001  (report everything, even a TimeoutError)
            result = {"id": case.id, "raised": type(e).__name__, "message": str(e)[:500]}
        finally:
            signal.alarm(0)
        result.update(expected=case.error, name=case.name)
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
