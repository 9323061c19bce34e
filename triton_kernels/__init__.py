"""localconn's Triton backend (installed as ``localconn.triton_kernels``).

Files, one idea each:

* ``window.py`` - the window index arithmetic (forward ``i(o, k)`` and its
  inverse, the candidate outputs of an input) as ``@triton.jit`` helpers,
  used by all three kernels;
* ``tiles.py`` - channel tiles and weight groups;
* ``conn.py``, ``conn_transpose.py``, ``corr.py`` - the three kernels;
* ``attention.py``, ``attention_backward.py`` - fused neighborhood attention, forward and
  backward, beside the primitives;
* ``configs.py`` - tiles, autotuning and the fixed tile;
* ``layout.py`` - strides, layouts, int64 detection on the host;
* ``launch.py`` - allocation and launch (imports Triton);
* ``backend.py`` - ``available()``/``supports()`` and lazy entry points.

Importing this package does not import Triton; the kernels are defined on
first use. Fastest layouts: NCHW and channels_last inputs are both tiled
along their contiguous dim; the weight may have any strides (stride 0 along
broadcast dims).
"""

from .backend import NEEDS_CUDA, available, conn2d, conn2d_transpose, corr2d, supports

__all__ = ["NEEDS_CUDA", "available", "conn2d", "conn2d_transpose", "corr2d", "supports"]
