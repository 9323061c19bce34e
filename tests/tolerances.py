"""Tolerances per dtype, written down once, and a readable comparison.

Every test that compares a localconn result with an oracle or a PyTorch
equivalent goes through :func:`assert_close`. Inputs are rounded to the
tested dtype *before* the oracle runs, so the tolerance only has to cover
accumulation order and the final rounding of the output:

* float64 - summation order only.
* float32 - a few ulps of sums of up to K*K terms of unit size.
* float16 / bfloat16 - one rounding of the float32-accumulated result
  (11 and 8 significant bits) on outputs of size ~sqrt(K*K).
"""

from __future__ import annotations

import torch

TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    # dtype: (rtol, atol)
    torch.float64: (1e-9, 1e-10),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (1.6e-2, 1.6e-2),
}


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """(rtol, atol) for results computed in ``dtype``."""
    return TOLERANCES[dtype]


def assert_close(
    actual: torch.Tensor,
    expected: torch.Tensor,
    dtype: torch.dtype | None = None,
    what: str = "result",
    scale: float = 1.0,
) -> None:
    """Compare with the tolerance of ``dtype`` (default: ``actual.dtype``).

    ``scale`` widens the tolerance for results that sum many more terms
    than one output element (e.g. a weight gradient reduced over a batch).
    On failure the message says how many elements differ, the worst one,
    where it is, and both values there.
    """
    dtype = dtype or actual.dtype
    rtol, atol = TOLERANCES[dtype]
    rtol, atol = rtol * scale, atol * scale
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {tuple(actual.shape)} != expected {tuple(expected.shape)}")
    a = actual.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    nan_a, nan_e = torch.isnan(a), torch.isnan(e)
    if not torch.equal(nan_a, nan_e):
        where = (nan_a != nan_e).nonzero()[0].tolist()
        raise AssertionError(
            f"{what}: NaN pattern differs ({int((nan_a != nan_e).sum())} elements), first at "
            f"{where}: got {a[tuple(where)].item()}, expected {e[tuple(where)].item()}"
        )
    a = torch.where(nan_a, torch.zeros_like(a), a)
    e = torch.where(nan_e, torch.zeros_like(e), e)
    err = (a - e).abs()
    bad = err > atol + rtol * e.abs()
    if bad.any():
        worst = int(torch.argmax(torch.where(bad, err, torch.zeros_like(err))))
        idx = list(torch.unravel_index(torch.tensor(worst), a.shape))
        idx = [int(i) for i in idx]
        raise AssertionError(
            f"{what} ({dtype}): {int(bad.sum())} of {a.numel()} elements outside "
            f"rtol={rtol:g}, atol={atol:g}; worst at {idx}: got {a[tuple(idx)].item():.8g}, "
            f"expected {e[tuple(idx)].item():.8g} (|diff| = {err[tuple(idx)].item():.3g}); "
            f"max |diff| overall {err.max().item():.3g}"
        )
