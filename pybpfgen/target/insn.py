"""The BPF instruction codec: the one place that knows how an instruction is laid out (RFC 9669).

An instruction is 8 bytes: opcode, dst (low nibble) and src (high nibble) registers, a signed 16-bit offset,
a signed 32-bit immediate; ``ld_imm64`` takes two slots (the second holds the upper 32 bits of the
immediate). The loader (relocation, linking) and the disassembler (``pybpfgen disasm``) both decode and
patch instructions through here. Import-free (struct and the record base only).
"""
from __future__ import annotations

import struct

from .records import Record

# instruction classes
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)
LD_IMM64 = 0x18  # BPF_LD | BPF_IMM | BPF_DW
CALL = 0x85  # BPF_JMP | BPF_CALL
EXIT = 0x95  # BPF_JMP | BPF_EXIT
# src_reg of ld_imm64
PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, PSEUDO_BTF_ID, PSEUDO_FUNC = 1, 2, 3, 4
PSEUDO_MAP_IDX, PSEUDO_MAP_IDX_VALUE = 5, 6
# src_reg of call
PSEUDO_CALL, PSEUDO_KFUNC_CALL = 1, 2

_INSN = struct.Struct("<BBhi")


class Insn(Record, eq=True):
    index: int  # slot index (ld_imm64 takes two)
    raw: bytes  # 8 or 16 bytes
    code: int
    dst: int
    src: int
    off: int
    imm: int
    imm64: int | None = None  # ld_imm64: the full 64-bit immediate

    @property
    def cls(self) -> int:
        return self.code & 0x07

    @property
    def slots(self) -> int:
        return len(self.raw) // 8


def fields_at(buf, idx: int) -> tuple[int, int, int, int, int]:
    """(opcode, dst, src, off, imm) of the instruction in slot ``idx``."""
    code, regs, off, imm = _INSN.unpack_from(buf, idx * 8)
    return code, regs & 0xF, regs >> 4, off, imm


def decode(code: bytes) -> list[Insn]:
    """Every instruction of ``code`` (``ld_imm64`` as one instruction of two slots)."""
    out: list[Insn] = []
    i = 0
    n = len(code) // 8
    while i < n:
        op, dst, src, off, imm = fields_at(code, i)
        insn = Insn(i, bytes(code[i * 8:i * 8 + 8]), op, dst, src, off, imm)
        if op == LD_IMM64 and i + 1 < n:
            (hi,) = struct.unpack_from("<i", code, i * 8 + 12)
            insn.raw = bytes(code[i * 8:i * 8 + 16])
            insn.imm64 = ((hi & 0xFFFFFFFF) << 32) | (imm & 0xFFFFFFFF)
        out.append(insn)
        i += insn.slots
    return out


def encode(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return _INSN.pack(code, (src << 4) | dst, off, imm)


def set_imm(buf: bytearray, idx: int, imm: int) -> None:
    struct.pack_into("<i", buf, idx * 8 + 4, imm)


def set_src(buf: bytearray, idx: int, src: int) -> None:
    buf[idx * 8 + 1] = (buf[idx * 8 + 1] & 0x0F) | (src << 4)
