"""``torch.jit.script`` and localconn's modules: a clear refusal instead of a compiler trace.

Example::

    >>> import torch, localconn
    >>> try:
    ...     torch.jit.script(localconn.LocalConn2d(4, 3))
    ... except TypeError as e:
    ...     print(str(e).split(":")[0])
    torch.jit.script does not support LocalConn2d
"""

from __future__ import annotations

from torch import nn


class NotScriptable:
    """Mixed into an ``nn.Module``: ``torch.jit.script`` (which calls
    ``__prepare_scriptable__`` first) raises a TypeError naming what to use instead (the
    ops dispatch in Python, which TorchScript cannot compile)."""

    def __prepare_scriptable__(self) -> nn.Module:
        raise TypeError(f"torch.jit.script does not support {type(self).__name__}: use "
                        "torch.jit.trace, torch.export.export, torch.compile or "
                        "torch.onnx.export instead")
