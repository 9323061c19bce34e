"""SASS as data: instructions, basic blocks and the control-flow graph of one function.

Input is ``nvdisasm -c -gi`` text (the source line of every instruction, with
the chain of inlined calls it sits in, comes from the cubin's line table:
``-lineinfo`` for nvcc, always on for Triton).
Each instruction is classified once (:func:`classify`) into the unit that
executes it, and memory instructions get their space and width per lane:

=========  =============================================================
class      opcodes (sm_90)
=========  =============================================================
fp32       FFMA FADD FMUL FMNMX FSETP FSEL FCHK  (128 lanes/clk/SM)
fp16x2     HFMA2 HADD2 HMUL2 HMNMX2 HSETP2       (128 lanes/clk/SM, 2 values each)
fp64       DFMA DADD DMUL DSETP                  (64 lanes/clk/SM)
int        IMAD IADD3 LEA LOP3 SHF ISETP SEL ... (64 lanes/clk/SM)
conv       F2F F2I I2F I2FP F2FP FRND            (16 lanes/clk/SM)
mufu       MUFU                                  (16 lanes/clk/SM)
tensor     HMMA HGMMA IMMA DMMA                  (tensor cores)
uniform    U*  (the uniform datapath: one issue slot, no vector lanes)
memory     LDG STG LDS STS LD ST LDL STL LDSM LDGSTS ATOM RED LDC ...
control    BRA EXIT BAR BSSY BSYNC CALL RET NOP ...
=========  =============================================================

(Per-SM rates: the CUDA C++ Programming Guide's arithmetic-instruction
throughput table for compute capability 9.0.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

_LINE = re.compile(r'//## File "([^"]+)", line (\d+)(?: inlined at "([^"]+)", line (\d+))?')
_INSTR = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
_LABEL = re.compile(r"^\s*([.$][\w$.]+):\s*$")  # .L_x_12: and subroutines ($__internal_0_...:)
_TARGET = re.compile(r"`\(([^)]+)\)")
# a kernel starts at ``.global NAME`` or, with internal linkage (an anonymous namespace,
# e.g. PyTorch's), at ``.type NAME,@function``; ``$__internal_*`` subroutines stay part of
# the kernel before them (their CALLs are edges of its flow)
_FUNC = re.compile(r"^\s*(?:\.global\s+(\S+)|\.type\s+([^$\s,][^\s,]*),\s*@function)")

BRANCHES = ("BRA", "BRX", "JMP", "JMX", "CALL", "BRA.DIV")

_CLASS_BY_PREFIX: list[tuple[str, tuple[str, ...]]] = [
    ("fp32", ("FFMA", "FADD", "FMUL", "FMNMX", "FSETP", "FSEL", "FCHK", "FSET", "FSWZADD")),
    ("fp16x2", ("HFMA2", "HADD2", "HMUL2", "HMNMX2", "HSETP2", "HSET2")),
    ("fp64", ("DFMA", "DADD", "DMUL", "DSETP", "DMNMX")),
    ("conv", ("F2F", "F2I", "I2F", "I2FP", "F2FP", "FRND", "I2I")),
    ("mufu", ("MUFU",)),
    ("tensor", ("HMMA", "HGMMA", "IMMA", "DMMA", "BMMA", "QGMMA", "IGMMA")),
    ("control", ("BRA", "BRX", "JMP", "JMX", "CALL", "RET", "EXIT", "BAR", "BSSY", "BSYNC",
                 "WARPSYNC", "NOP", "YIELD", "DEPBAR", "MEMBAR", "ERRBAR", "CCTL", "KILL",
                 "BPT", "WARPGROUP", "SYNCS", "ELECT", "ENDCOLLECTIVE", "ACQBULK", "FENCE")),
]
_MEMORY = ("LDG", "STG", "LDS", "STS", "LDSM", "STSM", "LD", "ST", "LDL", "STL", "ATOM",
           "ATOMS", "ATOMG", "RED", "REDG", "LDGSTS", "LDGDEPBAR", "LDC", "ULDC", "UTMALDG",
           "UTMASTG", "UBLKCP", "UTMAPF", "MATCH", "SHFL", "TLD", "TEX", "SUST", "SULD")

#: memory opcodes and (space, reads, writes); widths come from the modifiers
MEMORY_SPACE = {
    "LDG": ("global", True, False), "STG": ("global", False, True),
    "LD": ("global", True, False), "ST": ("global", False, True),
    "LDS": ("shared", True, False), "STS": ("shared", False, True),
    "LDSM": ("shared", True, False), "STSM": ("shared", False, True),
    "LDL": ("local", True, False), "STL": ("local", False, True),
    "ATOM": ("global", True, True), "ATOMG": ("global", True, True),
    "RED": ("global", False, True), "REDG": ("global", False, True),
    "ATOMS": ("shared", True, True),
    "LDGSTS": ("global", True, False),  # global -> shared copy (cp.async): also a shared store
}


def classify(opcode: str) -> str:
    """The execution class of a SASS opcode (``"int"`` for the integer/logic rest)."""
    base = opcode.split(".")[0]
    if base in _MEMORY or base.startswith("UTMA"):
        return "memory"
    for cls, prefixes in _CLASS_BY_PREFIX:
        if base in prefixes:
            return cls
    if base.startswith("U") and base not in ("UNDEF",):
        return "uniform"
    return "int"


def width_bytes(opcode: str) -> int:
    """Bytes per lane of a memory instruction from its modifiers (32-bit by default)."""
    parts = opcode.split(".")
    base = parts[0]
    if base == "LDSM":  # ldmatrix: .x1/.x2/.x4 8x8 matrices of 16-bit values
        for p in parts:
            if p in ("x1", "x2", "x4"):  # not printed by nvdisasm; count .4/.2 below
                return 4 * int(p[1])
        return 16 if "4" in parts else 8 if "2" in parts else 4
    for p in parts[1:]:
        if p in ("128", "64", "32", "U16", "S16", "U8", "S8", "16", "8"):
            return {"128": 16, "64": 8, "32": 4, "U16": 2, "S16": 2, "16": 2, "U8": 1,
                    "S8": 1, "8": 1}[p]
    return 4


@dataclass
class Instr:
    """One SASS instruction."""

    offset: int
    opcode: str
    operands: str
    predicate: str = ""
    file: str = ""
    line: int = 0
    target: Optional[str] = None  # a branch's label
    chain: tuple[tuple[str, int], ...] = ()  # (file, line), innermost first, then its callers

    @property
    def base(self) -> str:
        return self.opcode.split(".")[0]

    @property
    def cls(self) -> str:
        return classify(self.opcode)

    @property
    def is_branch(self) -> bool:
        return self.target is not None and self.base in ("BRA", "BRX", "JMP", "JMX", "CALL")

    @property
    def memory(self) -> Optional[tuple[str, bool, bool, int]]:
        """``(space, reads, writes, bytes per lane)`` for global/shared/local accesses
        (none under the never-true predicate ``@!PT``: ptxas's ``@!PT LDS RZ, [RZ]``
        before a run of ``LDGSTS`` issues but touches no memory)."""
        info = MEMORY_SPACE.get(self.base)
        if info is None or self.predicate == "@!PT":
            return None
        return (*info, width_bytes(self.opcode))

    @property
    def accesses(self) -> list[tuple[str, bool, bool, int]]:
        """Every memory access of this instruction as :attr:`memory` gives them: one, or
        for ``LDGSTS`` (cp.async) its global load and its shared store."""
        mem = self.memory
        if mem is None:
            return []
        if self.base == "LDGSTS":
            return [mem, ("shared", False, True, mem[3])]
        return [mem]

    @property
    def fma_lanes(self) -> int:
        """Multiply-adds one lane does: 1 (FFMA, DFMA), 2 (HFMA2), 0 otherwise.

        ``HFMA2.MMA Rd, -RZ, RZ, a, b`` is ptxas's way to set a register to a
        constant (no multiply-add) and counts 0.
        """
        if self.base in ("FFMA", "DFMA"):
            return 1
        if self.base == "HFMA2":
            ops = [o.strip() for o in self.operands.split(",")]
            return 0 if len(ops) > 2 and ops[1].lstrip("-|") == "RZ" and ops[2] == "RZ" else 2
        return 0

    @property
    def mma_macs(self) -> int:
        """Multiply-adds a warp issues with one tensor instruction (0 for the others):
        ``HMMA.MNK`` (``16816``, ``1688``: m16 n8 k16 / k8) ``M * N * K``; Hopper's warpgroup
        ``HGMMA.64xNxK`` ``64 * N * K / 4`` (each of the 4 warps issues it)."""
        if self.cls != "tensor":
            return 0
        parts = self.opcode.split(".")
        if self.base == "HGMMA" and len(parts) > 1 and parts[1].count("x") == 2:
            m, n, k = (int(x) for x in parts[1].split("x"))
            return m * n * k // 4
        if self.base == "HMMA" and len(parts) > 1 and parts[1] in ("16816", "1688"):
            return 16 * 8 * (16 if parts[1] == "16816" else 8)
        return 16 * 8 * 16

    @property
    def mma_units(self) -> float:
        """A tensor instruction in ``HMMA.16816`` warp-instructions (the unit of the GPU's
        ``mma_per_sm`` rate); 0 for the others."""
        return self.mma_macs / 2048

    @property
    def mul_lanes(self) -> int:
        """Multiplies one lane does, fused or not: FFMA/FMUL/DFMA/DMUL 1, HFMA2/HMUL2 2.

        A masked multiply-add (``acc += where(mask, w * x, 0)``) compiles to
        FMUL + FSEL + FADD, not FFMA: counting multiplies counts its work too.
        """
        if self.base in ("FMUL", "DMUL"):
            return 1
        if self.base == "HMUL2":
            return 2
        return self.fma_lanes

    @property
    def source(self) -> str:
        return f"{self.file.rsplit('/', 1)[-1]}:{self.line}"

    @property
    def site(self) -> str:
        """Where in a kernel body this is: :func:`site_key` of its inline chain."""
        return site_key(self.chain or ((self.file, self.line),))


#: files of the launch harness (GPU wrapper, emulator), not of kernel bodies
HARNESS = ("launch.cuh", "emulator.cpp", "dispatch.h")


def site_key(chain: tuple[tuple[str, int], ...]) -> str:
    """``"portable.h:108<conn_tile.cuh:76"``: the innermost source line and the line that
    called (inlined) it, harness frames dropped. nvcc's line table and the emulator's
    (``addr2line -i``) give the same key for the same load or store."""
    frames = [(f.rsplit("/", 1)[-1], line) for f, line in chain]
    frames = [fr for fr in frames if fr[0] not in HARNESS] or frames[:1]
    return "<".join(f"{f}:{line}" for f, line in frames[:2])


@dataclass
class Block:
    """A basic block: instructions ``[start, end)`` of the function, and its successors."""

    index: int
    instrs: list[Instr]
    succ: list[int] = field(default_factory=list)
    exits: bool = False  # control can leave the kernel here (EXIT)
    calls: Optional[str] = None  # the label a CALL in this block jumps to
    returns: bool = False  # ends with RET

    @property
    def start(self) -> int:
        return self.instrs[0].offset


@dataclass
class Function:
    """One kernel: its instructions and basic blocks."""

    name: str
    instrs: list[Instr]
    labels: dict[str, int]  # label -> instruction index
    blocks: list[Block] = field(default_factory=list)

    def block_of(self, label: str) -> int:
        """Index of the block that starts at ``label``."""
        idx = self.labels[label]
        for b in self.blocks:
            if b.instrs[0] is self.instrs[idx]:
                return b.index
        raise KeyError(label)


def parse(text: str) -> dict[str, Function]:
    """Functions of an ``nvdisasm -c -g`` listing, by (mangled) name."""
    funcs: dict[str, Function] = {}
    cur: Optional[Function] = None
    file, line = "", 0
    chain: list[tuple[str, int]] = []
    fresh = False  # the next //## line starts a new chain
    pending: list[str] = []
    for raw in text.splitlines():
        if m := _FUNC.match(raw):
            name = m[1] or m[2]
            if cur is not None and cur.name == name and not cur.instrs:
                continue  # .type after .global
            cur = Function(name, [], {})
            funcs[name] = cur
            file, line, pending, chain = "", 0, [], []
            continue
        if cur is None:
            continue
        if m := _LINE.search(raw):
            if fresh:
                chain, fresh = [], False
            if not chain:
                file, line = m[1], int(m[2])
                chain = [(file, line)]
            if m[3]:
                chain.append((m[3], int(m[4])))
            continue
        if m := _LABEL.match(raw):
            pending.append(m[1])
            continue
        if m := _INSTR.match(raw):
            text_ = m[2]
            pred = ""
            if text_.startswith("@"):
                pred, text_ = text_.split(None, 1)
            opcode, _, operands = text_.partition(" ")
            t = _TARGET.search(operands)
            ins = Instr(int(m[1], 16), opcode, operands.strip(), pred, file, line,
                        t[1] if t and opcode.split(".")[0] in ("BRA", "BRX", "JMP", "JMX",
                                                               "CALL") else None,
                        tuple(chain))
            fresh = True
            for lab in pending:
                cur.labels[lab] = len(cur.instrs)
            pending = []
            cur.instrs.append(ins)
    for f in funcs.values():
        _trim_padding(f)
        _build_blocks(f)
    return funcs


def _trim_padding(f: Function) -> None:
    """Drop the ``BRA self`` + ``NOP`` padding after the last real instruction."""
    n = len(f.instrs)
    while n and f.instrs[n - 1].base == "NOP":
        n -= 1
    if n and f.instrs[n - 1].base == "BRA" and f.instrs[n - 1].target is not None:
        idx = f.labels.get(f.instrs[n - 1].target)
        if idx == n - 1:
            n -= 1
    f.instrs = f.instrs[:n]
    f.labels = {k: v for k, v in f.labels.items() if v < n}


def _build_blocks(f: Function) -> None:
    starts = {0} | set(f.labels.values())
    for i, ins in enumerate(f.instrs):
        if ins.is_branch or ins.base in ("EXIT", "RET") or ins.base == "CALL":
            starts.add(i + 1)
    starts = sorted(s for s in starts if s < len(f.instrs))
    index_of = {s: k for k, s in enumerate(starts)}
    bounds = list(zip(starts, starts[1:] + [len(f.instrs)]))
    f.blocks = [Block(k, f.instrs[a:b]) for k, (a, b) in enumerate(bounds)]
    for blk, (_a, b) in zip(f.blocks, bounds):
        last = f.instrs[b - 1]
        fallthrough = b < len(f.instrs)
        predicated = bool(last.predicate) and last.predicate not in ("@PT",)
        if last.opcode.startswith("BRA.DIV"):  # taken only by a diverged warp: else falls through
            predicated = True
        if last.base == "EXIT":
            blk.exits = True
            if predicated and fallthrough:
                blk.succ.append(index_of[b])
        elif last.base == "RET":
            blk.returns = True
            if predicated and fallthrough:
                blk.succ.append(index_of[b])
        elif last.base == "CALL" and last.target is not None:
            blk.calls = last.target
            if fallthrough:
                blk.succ.append(index_of[b])  # the return continues here
        elif last.is_branch and last.target is not None and last.target in f.labels:
            blk.succ.append(index_of[f.labels[last.target]])
            if predicated and fallthrough:
                blk.succ.append(index_of[b])
        elif fallthrough:
            blk.succ.append(index_of[b])
