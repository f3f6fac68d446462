"""Relocate/link programs and load them with PROG_LOAD."""
from __future__ import annotations

import errno
import struct
import time
from pybpfgen.target.records import LIST, Record

from .btf import LineInfo
from .elf import R_BPF_64_64, BpfObject, Function, Program
from .errors import BpfSyscallError, LoaderError, ObjectFormatError, PERMISSION_HINT
from .verifier import VerifierError

from pybpfgen.target.insn import CALL as BPF_CALL, LD_IMM64 as BPF_LD_IMM64  # noqa: E402,F401  (the one codec)
from pybpfgen.target.insn import PSEUDO_CALL as BPF_PSEUDO_CALL, PSEUDO_MAP_FD as BPF_PSEUDO_MAP_FD  # noqa: E402
from pybpfgen.target.insn import PSEUDO_MAP_VALUE as BPF_PSEUDO_MAP_VALUE  # noqa: E402
from pybpfgen.target.insn import fields_at as _insn, set_imm as _set_imm, set_src as _set_src  # noqa: E402

LOG_START = 64 * 1024
LOG_MAX = 1 << 30     # the kernel's own limit (UINT_MAX >> 2)
EAGAIN_RETRIES = 5


class LinkedProgram(Record, eq=True):
    program: Program
    insns: bytearray
    func_info: list[tuple[int, int]] = LIST     # (insn index, btf type id)
    line_info: list[LineInfo] = LIST            # insn_off = insn index
    subprograms: list[str] = LIST               # appended .text functions
    map_refs: list[tuple[int, str]] = LIST      # (insn index, map name)

    def func_info_bytes(self) -> bytes:
        return b"".join(struct.pack("<II", i, t) for i, t in self.func_info)

    def line_info_bytes(self) -> bytes:
        return b"".join(struct.pack("<IIII", li.insn_off, li.file_name_off, li.line_off, li.line_col)
                        for li in self.line_info)

    def source_at(self, insn_idx: int) -> LineInfo | None:
        best = None
        for li in self.line_info:
            if li.insn_off <= insn_idx and (best is None or li.insn_off >= best.insn_off):
                best = li
        return best


def link_program(obj: BpfObject, prog: Program, map_fds: dict[str, int]) -> LinkedProgram:
    """Copy ``prog``'s instructions, append reachable ``.text`` subprograms
    once, fix call immediates and ``ld_imm64`` map references (``map_fds``:
    map name → fd; section name for .data/.rodata/.bss), and rebase
    func_info/line_info to instruction indices.  No syscalls."""
    lp = LinkedProgram(prog, bytearray(prog.insns))
    ext = obj.btf_ext
    # pieces: (section, start byte offset, end byte offset, base insn index)
    pieces: list[tuple[str, int, int, int]] = [(prog.section, prog.offset, prog.offset + len(prog.insns), 0)]
    placed: dict[tuple[str, int], int] = {}          # (section, func offset) → base index
    placed[(prog.section, prog.offset)] = 0
    text = obj.sections.get(".text")

    def place(func: Function) -> int:
        key = (func.section, func.offset)
        if key in placed:
            return placed[key]
        base = len(lp.insns) // 8
        sec = obj.sections[func.section]
        lp.insns += sec.data[func.offset:func.end]
        placed[key] = base
        pieces.append((func.section, func.offset, func.end, base))
        lp.subprograms.append(func.name)
        return base

    i = 0
    while i < len(pieces):
        sec_name, start, end, base = pieces[i]
        i += 1
        sec = obj.sections[sec_name]
        relocs = {r.offset: r for r in sec.relocations if start <= r.offset < end}
        # BTF.ext records for this piece
        if ext is not None:
            for off, tid in ext.func_info.get(sec_name, []):
                if start <= off < end:
                    lp.func_info.append((base + (off - start) // 8, tid))
            for li in ext.line_info.get(sec_name, []):
                if start <= li.insn_off < end:
                    lp.line_info.append(LineInfo(base + (li.insn_off - start) // 8, li.file_name_off, li.line_off,
                                                 li.line_col, li.file, li.text))
        off = start
        while off < end:
            idx = base + (off - start) // 8
            code, dst, src, _o, imm = _insn(lp.insns, idx)
            r = relocs.get(off)
            if code == BPF_LD_IMM64:
                if r is not None:
                    _relocate_ld_imm64(obj, lp, idx, r, map_fds)
                off += 16
                continue
            if code == BPF_CALL and src == BPF_PSEUDO_CALL:
                if r is not None:
                    sym = r.symbol
                    tsec = obj.sections_by_index.get(sym.shndx)
                    if tsec is None:
                        raise ObjectFormatError(f"{obj.path}: call to undefined function {sym.name!r} in {prog.name}")
                    if sym.type == "STT_SECTION":
                        target_off = sym.value + (imm + 1) * 8
                    else:
                        target_off = sym.value
                    tsec_name = tsec.name
                else:
                    tsec_name = sec_name
                    target_off = off + (imm + 1) * 8
                if tsec_name == sec_name and start <= target_off < end:
                    target_idx = base + (target_off - start) // 8
                else:
                    func = obj.function_at(tsec_name, target_off)
                    if func is None:
                        raise ObjectFormatError(f"{obj.path}: {prog.name}: call target {tsec_name}+{target_off} "
                                                "is not inside a function")
                    if tsec_name != ".text":
                        raise ObjectFormatError(f"{obj.path}: {prog.name} calls {func.name} in section "
                                                f"{tsec_name}; subprograms must be in .text")
                    fbase = place(func)
                    target_idx = fbase + (target_off - func.offset) // 8
                _set_imm(lp.insns, idx, target_idx - (idx + 1))
            elif r is not None and r.type == R_BPF_64_64:
                raise ObjectFormatError(f"{obj.path}: {prog.name}: R_BPF_64_64 relocation on a non-ld_imm64 insn")
            off += 8
    del text
    lp.func_info.sort()
    lp.line_info.sort(key=lambda li: li.insn_off)
    return lp


def _relocate_ld_imm64(obj: BpfObject, lp: LinkedProgram, idx: int, r, map_fds: dict[str, int]) -> None:
    if r.type != R_BPF_64_64:
        raise ObjectFormatError(f"{obj.path}: {lp.program.name}: unsupported relocation type {r.type} on ld_imm64")
    sym = r.symbol
    sec = obj.sections_by_index.get(sym.shndx)
    if sec is None:
        raise ObjectFormatError(f"{obj.path}: {lp.program.name}: reference to undefined symbol {sym.name!r} "
                                "(externs are not supported)")
    if sec.name == ".maps":
        mname = next((m.name for m in obj.maps.values() if m.section == ".maps" and m.offset == sym.value), None)
        if mname is None:
            raise ObjectFormatError(f"{obj.path}: {lp.program.name}: no map at .maps+{sym.value} ({sym.name})")
        _set_src(lp.insns, idx, BPF_PSEUDO_MAP_FD)
        _set_imm(lp.insns, idx, map_fds[mname])
        lp.map_refs.append((idx, mname))
        return
    if sec.name in obj.maps and obj.maps[sec.name].internal:
        _c, _d, _s, _o, imm0 = _insn(lp.insns, idx)
        value_off = imm0 if sym.type == "STT_SECTION" else imm0 + sym.value
        _set_src(lp.insns, idx, BPF_PSEUDO_MAP_VALUE)
        _set_imm(lp.insns, idx, map_fds[sec.name])
        _set_imm(lp.insns, idx + 1, value_off)
        lp.map_refs.append((idx, sec.name))
        return
    raise ObjectFormatError(f"{obj.path}: {lp.program.name}: ld_imm64 relocation against section {sec.name!r} "
                            "is not supported")


def load_program(sc, obj: BpfObject, lp: LinkedProgram, btf_fd: int | None, *, log_level: int = 1,
                 sleep=time.sleep) -> int:
    """PROG_LOAD with the libbpf retry policy: first without a log; on
    failure retry with ``log_level`` and a log buffer grown to
    ``log_true_size`` (or doubled) on ENOSPC; retry EAGAIN.  Raises
    :class:`VerifierError` when the kernel rejects the program."""
    prog = lp.program
    kwargs = dict(prog_type=prog.prog_type, insns=bytes(lp.insns), license=obj.license,
                  name=_kernel_name(prog.name), expected_attach_type=prog.expected_attach_type,
                  prog_flags=prog.prog_flags)
    if btf_fd:
        kwargs.update(prog_btf_fd=btf_fd,
                      func_info=lp.func_info_bytes(), func_info_cnt=len(lp.func_info), func_info_rec_size=8,
                      line_info=lp.line_info_bytes(), line_info_cnt=len(lp.line_info), line_info_rec_size=16)
    level, size = 0, 0
    eagain = 0
    first_error: BpfSyscallError | None = None
    while True:
        try:
            return sc.prog_load(**kwargs, log_level=level, log_size=size)
        except BpfSyscallError as e:
            if e.errno == errno.EAGAIN and eagain < EAGAIN_RETRIES:
                eagain += 1
                sleep(0.01 * eagain)
                continue
            if level == 0 and log_level:
                first_error = e
                level, size = log_level, LOG_START
                continue
            if e.errno == errno.ENOSPC and level and size < LOG_MAX:
                size = max(e.log_true_size if e.log_true_size > size else 0, size * 2)
                size = min(size, LOG_MAX)
                continue
            if e.errno == errno.E2BIG and not e.log.strip():
                raise LoaderError(f"cannot load program {prog.name}: the kernel says E2BIG ({len(lp.insns) // 8} "
                                  "instructions): the program is too large or uses attributes this kernel does "
                                  "not know; split it or use a newer kernel") from e
            if e.errno == errno.EPERM and not e.log.strip():
                # EPERM without a verifier log: privileges, not the program
                raise LoaderError(f"cannot load program {prog.name}: permission denied (EPERM); {PERMISSION_HINT}") from e
            raise VerifierError(prog.name, e, e.log, lp, obj.path, first_errno=first_error.errno if first_error else None) from e


def _kernel_name(name: str) -> str:
    import re
    return re.sub(r"[^A-Za-z0-9_.]", "_", name)[:15]
