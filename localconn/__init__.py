"""localconn: the channel-wise locally-connected layer, in one operator.

Depth-wise convolution, dynamic depth-wise convolution, involution and local
(window / neighborhood) attention differ only in how their weights are
shared and computed (Han et al., ICLR 2022). localconn implements the layer
once, with three primitives that close under differentiation:

* :func:`local_conn2d` - the layer (attention's ``A @ V``),
* :func:`local_conn2d_transpose` - its gradient with respect to the input,
* :func:`local_corr2d` - its gradient with respect to the weight (attention's ``q . k``),

and the module :class:`LocalConn2d`. See docs/design.md for the contract.
"""

import torch

from . import (
    autoselect,  # noqa: F401  (auto's measured choice: localconn.autoselect.choices())
    convert,  # noqa: F401  (peers' checkpoints: localconn.convert.natten)
    decompositions,  # noqa: F401  (the ops in standard ATen ops, for export: export_onnx)
    flops,  # noqa: F401  (FLOP formulas of the localconn:: ops for torch.utils.flop_counter)
    ops,  # noqa: F401  (registers the localconn:: custom ops)
    reference,
)
from .attention import LocalAttention2d
from .backends import (
    Backend,
    BackendStatus,
    BackendUnavailableError,
    backends,
    register_backend,
    use_backend,
)
from .decompositions import export_onnx
from .functional import local_conn2d, local_conn2d_transpose, local_corr2d
from .layer import LocalConn2d
from .neighborhood import na2d, na2d_av, na2d_qk

# FX leaf calls: `localconn.local_conn2d(...)` in user code is recorded as one call by
# torch.fx.symbolic_trace (and torchvision's create_feature_extractor), not traced into
for _name in ("local_conn2d", "local_conn2d_transpose", "local_corr2d", "na2d", "na2d_qk",
              "na2d_av"):
    torch.fx.wrap(_name)
del _name


register_backend(
    Backend(
        "reference",
        reference.conn2d,
        reference.conn2d_transpose,
        reference.corr2d,
        priority=0,
    )
)

try:  # the Triton backend; Triton itself is imported on first use, not here
    from . import triton_kernels as _triton
except ImportError:  # not part of this build: backends() says so (backends.KNOWN)
    _triton = None

if _triton is not None:
    register_backend(
        Backend(
            "triton",
            _triton.conn2d,
            _triton.conn2d_transpose,
            _triton.corr2d,
            priority=10,
            available=_triton.available,
            supports=_triton.supports,
            auto_devices=("cuda",),  # the CPU interpreter only when forced
        )
    )

# The CUDA backend: kernels of csrc/ in the extension localconn._C (when built).
# Where both it and Triton support a problem, `auto` times both once per
# problem signature and keeps the faster (localconn.autoselect); the priority
# (Triton 10, CUDA 5) only orders them where nothing is timed.
from . import cuda_backend as _cuda  # noqa: E402  (imports no extension yet)

register_backend(
    Backend(
        "cuda",
        _cuda.conn2d,
        _cuda.conn2d_transpose,
        _cuda.corr2d,
        priority=5,
        available=_cuda.available,
        supports=_cuda.supports,
        auto_devices=("cuda",),
    )
)

# The CPU backend: kernels of csrc/cpu/ in the extension localconn._cpu (when built),
# preferred over the reference for CPU tensors.
from . import cpu_backend as _cpu  # noqa: E402  (imports no extension yet)

register_backend(
    Backend(
        "cpu",
        _cpu.conn2d,
        _cpu.conn2d_transpose,
        _cpu.corr2d,
        priority=3,
        available=_cpu.available,
        supports=_cpu.supports,
        auto_devices=("cpu",),
    )
)

# PyTorch's own convolution kernels (cuDNN, ATen) for static depth-wise problems: `auto`
# times them beside ours on CUDA tensors and runs them where they are faster
# (localconn.native_backend); on the CPU only when forced.
from . import native_backend as _native  # noqa: E402

register_backend(
    Backend(
        "native",
        _native.conn2d,
        _native.conn2d_transpose,
        _native.corr2d,
        priority=1,
        available=_native.available,
        supports=_native.supports,
        auto_devices=("cuda",),
    )
)

from .version import __version__  # noqa: E402, F401  (the one place it is written)

__all__ = [
    "Backend",
    "BackendStatus",
    "BackendUnavailableError",
    "LocalAttention2d",
    "LocalConn2d",
    "backends",
    "export_onnx",
    "local_conn2d",
    "local_conn2d_transpose",
    "local_corr2d",
    "na2d",
    "na2d_av",
    "na2d_qk",
    "register_backend",
    "use_backend",
]
