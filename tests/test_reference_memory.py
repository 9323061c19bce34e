"""The reference backend is memory-light: no K*K-times copy of the input.

A ``TorchDispatchMode`` counts the bytes of every new storage the reference
allocates while it runs (views, in-place and ``out=`` results share an input's storage and add nothing) and frees
them when their tensors die, giving the peak of extra live memory. With a
7x7 kernel a full ``unfold`` would need 49 times the input; the reference must
stay within a few output-sized buffers (docs/design.md / README: "of the order of
one output tensor").
"""

from __future__ import annotations

import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from localconn import reference
from localconn.geometry import make_geometry

#: peak extra memory allowed, in output-sized buffers: the result, the
#: float accumulator, the padded input or one tap row's gathered/scattered
#: values, one tap's product, and the small index tables. A K-times copy
#: would be 7, an unfold K*K = 49.
MAX_BUFFERS = 5.0


class PeakMemory(TorchDispatchMode):
    """Peak bytes of storages allocated (and still alive) inside the mode."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: set[int] = set()

    def _free(self, key: int, nbytes: int) -> None:
        self._seen.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        inputs = {
            a.untyped_storage().data_ptr()
            for a in tree_leaves((args, kwargs))
            if isinstance(a, torch.Tensor)
        }
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            key = t.untyped_storage().data_ptr()
            nbytes = t.untyped_storage().nbytes()
            if key in inputs or key in self._seen or nbytes == 0:
                continue  # a view, an in-place or out= result, or nothing allocated
            self._seen.add(key)
            self.live += nbytes
            self.peak = max(self.peak, self.live)
            weakref.finalize(t, self._free, key, nbytes)
        return out


def _case(window: str) -> tuple[dict, tuple[int, int, int, int], tuple[int, ...]]:
    N, C, H, W, K, G = 4, 16, 28, 28, 7, 4
    kw = {"padding": 3} if window == "sliding" else {}
    return kw, (N, C, H, W), (N, G, K, K, H, W)


@pytest.mark.parametrize("window", ["sliding", "neighborhood", "block"])
@pytest.mark.parametrize("primitive", ["conn2d", "conn2d_transpose", "corr2d"])
def test_reference_extra_memory_is_a_few_outputs(primitive: str, window: str) -> None:
    kw, shape, wshape = _case(window)
    geo = make_geometry(shape[2:], wshape[2:4], window=window, **kw)
    g = torch.Generator().manual_seed(0)
    image = torch.randn(shape, generator=g)
    weight = torch.randn(wshape, generator=g)
    image_bytes = image.numel() * image.element_size()
    with PeakMemory() as mem:
        if primitive == "conn2d":
            out = reference.conn2d(image, weight, None, geo)
        elif primitive == "conn2d_transpose":
            out = reference.conn2d_transpose(image, weight, geo)
        else:
            out = reference.corr2d(image, image, wshape, geo)
        out_bytes = max(out.numel() * out.element_size(), image_bytes)
    assert mem.peak > 0, "the dispatch mode saw no allocation: the test measures nothing"
    ratio = mem.peak / out_bytes
    assert ratio <= MAX_BUFFERS, (
        f"{primitive}/{window}: peak extra memory {mem.peak / 2**20:.1f} MiB = {ratio:.1f} "
        f"output-sized buffers (allowed {MAX_BUFFERS})"
    )


def test_peak_memory_mode_sees_an_unfold() -> None:
    """The meter is able to fail: F.unfold of a 7x7 window costs ~49 inputs."""
    x = torch.randn(2, 8, 20, 20)
    with PeakMemory() as mem:
        torch.nn.functional.unfold(x, 7, padding=3)
    assert mem.peak / (x.numel() * x.element_size()) > 40
