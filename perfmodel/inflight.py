"""Bytes a warp keeps in flight: the memory-level parallelism that Little's law needs.

A kernel streams from DRAM at most ``bytes in flight / latency``: with too few loads
outstanding, the memory system idles whatever its bandwidth. For one kernel's SASS and
the per-warp execution count of each basic block (:mod:`perfmodel.flow`) this walks
the executed blocks in program order, the way a warp issues them, and tracks its
outstanding global loads (``LDG``, ``LD``; their destination registers; ``LDGSTS``,
cp.async's copies to shared memory, until the ``DEPBAR`` that waits for them, each
counted as often as its block runs a wait: a loop of copies before one wait keeps all of
them in flight). A warp stalls
on memory when an instruction reads (or overwrites) a register an outstanding load
will write: every load outstanding then was issued within a few cycles of the others
since the last stall, so all of them return during that one round trip, and their
bytes are what the warp had in flight for it (after the stall nothing is
outstanding). Loads never waited on inside the walk count as one more round trip at
the end. The result is the average over these round trips, each weighted by its
block's execution count: a warp's bytes in flight per memory round trip.

This is a static estimate: it follows straight-line program order (a loop's loads
used in its next iteration are counted where the walk next reads them), it assumes
every load goes to DRAM, and a warp's other work between the stall points is not
overlapped with the next round trip. The GPU check's calibration says how far it holds.
"""

from __future__ import annotations

import re
from typing import Callable, Optional

import numpy as np

from .sass import Function, Instr

_REG = re.compile(r"(?<![\w.])R(\d+)((?:\.(?:64|128))?)")
_LOADS = ("LDG", "LD")
#: opcodes with no destination register (every register operand is read)
_NO_DEST = ("STG", "ST", "STS", "STL", "RED", "REDG", "BRA", "EXIT", "BAR", "STSM", "BSYNC",
            "BSSY", "WARPSYNC", "CALL", "RET", "NOP", "DEPBAR", "MEMBAR", "YIELD", "LDGSTS",
            "LDGDEPBAR")
#: the pseudo-register of a thread's asynchronous copies (``LDGSTS``: cp.async, global to
#: shared memory, no register written), which the wait (``DEPBAR``) reads
_ASYNC = -1


def _regs(text: str) -> set[int]:
    """The registers an operand list names (``R4.64`` is R4 and R5)."""
    out: set[int] = set()
    for num, wide in _REG.findall(text):
        n = int(num)
        count = {"": 1, ".64": 2, ".128": 4}[wide]
        out.update(range(n, n + count))
    return out


def _split(ins: Instr) -> tuple[set[int], set[int]]:
    """(registers written, registers read) by ``ins``."""
    ops = [o.strip() for o in ins.operands.split(",")] if ins.operands else []
    if not ops or ins.base in _NO_DEST:
        return set(), _regs(ins.operands)
    dest = _regs(ops[0])
    if ins.base in _LOADS:  # a wide load writes a run of registers from its first
        first = min(dest) if dest else None
        width = ins.memory[3] if ins.memory else 4
        dest = set(range(first, first + max(1, width // 4))) if first is not None else set()
    return dest, _regs(",".join(ops[1:]))


def inflight_bytes(f: Function, blocks: np.ndarray,
                   share: Optional[Callable[[Instr], float]] = None) -> float:
    """Average bytes of global loads one warp has in flight when it stalls on one
    (per memory round trip; 0 when the kernel loads nothing from global memory).
    ``share(ins)``: of a load's issued bytes, the share requested (counts.py
    with_active_shares: a load predicated off on every lane requests nothing); 1 if
    not given."""
    pending: list[tuple[set[int], float, float]] = []  # (registers, bytes a warp, weight)
    total = weight = 0.0
    for b, n in zip(f.blocks, blocks):
        if n <= 0:
            continue
        for ins in b.instrs:
            writes, reads = _split(ins)
            touched = reads | writes | ({_ASYNC} if ins.base == "DEPBAR" else set())
            if any(regs & touched for regs, _, _ in pending):
                # (an asynchronous copy in a loop before the wait is issued n_copy / n times
                # a wait, not once: its bytes scaled so)
                total += sum(p[1] * (p[2] if _ASYNC in p[0] else n) for p in pending)
                weight += n
                pending = []
            part = share(ins) if share is not None else 1.0
            if ins.base in _LOADS and ins.memory and ins.memory[0] == "global":
                pending.append((writes, 32.0 * ins.memory[3] * part, float(n)))
            elif ins.base == "LDGSTS" and ins.memory:
                pending.append(({_ASYNC}, 32.0 * ins.memory[3] * part, float(n)))
    if pending:
        w = min(p[2] for p in pending)
        total += w * sum(p[1] for p in pending)
        weight += w
    return total / weight if weight else 0.0
