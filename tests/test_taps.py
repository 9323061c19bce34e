"""The reference's strided runs (localconn/taps.py) against the window's index table.

For random axes of every window (sizes, kernels, strides, paddings,
dilations, even and odd kernels) and every tap, the runs must map exactly the
outputs whose tap lands inside the image to ``Axis.input_index`` (each output
once), and the padding ranges must be exactly the others.
"""

from __future__ import annotations

import random

import pytest

from localconn.geometry import make_geometry
from localconn.taps import padding_ranges, runs


def _axes(seed: int, count: int):
    rng = random.Random(seed)
    while count:
        window = rng.choice(["sliding", "neighborhood", "block"])
        K = rng.randint(1, 8)
        d = rng.randint(1, 3) if window != "block" else 1
        L = rng.randint(1, 40)
        kw = {}
        if window == "sliding":
            kw = {"stride": rng.randint(1, 3), "padding": rng.randint(0, 5), "dilation": d}
        elif window == "neighborhood":
            kw = {"dilation": d}
        try:
            geo = make_geometry((L, L), (K, K), window=window, **kw)
        except ValueError:
            continue
        count -= 1
        yield geo.h


@pytest.mark.parametrize("seed", range(4))
def test_runs_cover_the_index_table(seed: int) -> None:
    for axis in _axes(seed, 200):
        table = axis.input_index()
        for k in range(axis.kernel):
            want = {o: int(table[k, o]) for o in range(axis.out_size) if table[k, o] >= 0}
            got: dict[int, int] = {}
            for r in runs(axis, k):
                for j in range(r.n):
                    for t in range(r.rep):
                        o = r.o0 + r.o_step * (j * r.rep + t)
                        assert o not in got, (axis, k, r)
                        got[o] = r.i0 + r.i_step * j
            assert got == want, (axis, k)
            padded = {o for s in padding_ranges(axis, k) for o in range(s.start, s.stop)}
            assert padded == set(range(axis.out_size)) - set(want), (axis, k)


def test_runs_are_few() -> None:
    """A handful of runs per tap: one (sliding, block), at most 3 per dilation group."""
    geo = make_geometry((56, 56), (7, 7), window="neighborhood", dilation=2)
    assert max(len(runs(geo.h, k)) for k in range(7)) <= 6
    geo = make_geometry((56, 56), (7, 7), window="block")
    assert all(len(runs(geo.h, k)) == 1 for k in range(7))
