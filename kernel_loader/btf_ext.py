""".BTF.ext: the line and function info of an object's programs (which source line each instruction comes from)."""
from __future__ import annotations

import struct

from pybpfgen.target.records import DICT, Record

from .btf import Btf
from .btf_kinds import BTF_MAGIC, BtfError


class LineInfo(Record, eq=True):
    insn_off: int            # bytes in the ELF section (as read); indices after linking
    file_name_off: int
    line_off: int
    line_col: int
    file: str = ""
    text: str = ""

    @property
    def line(self) -> int:
        return self.line_col >> 10

    @property
    def col(self) -> int:
        return self.line_col & 0x3FF


class BtfExt(Record, eq=True):
    func_info_rec_size: int = 8
    line_info_rec_size: int = 16
    func_info: dict[str, list[tuple[int, int]]] = DICT
    line_info: dict[str, list[LineInfo]] = DICT

    @classmethod
    def parse(cls, data: bytes, btf: Btf) -> "BtfExt":
        if len(data) < 24:
            raise BtfError(".BTF.ext truncated")
        magic, version, flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != BTF_MAGIC:
            raise BtfError(f"bad .BTF.ext magic 0x{magic:04x}")
        fi_off, fi_len, li_off, li_len = struct.unpack_from("<IIII", data, 8)
        ext = cls()
        if fi_len:
            ext.func_info_rec_size, recs = _ext_block(data, hdr_len + fi_off, fi_len, btf)
            ext.func_info = {sec: [struct.unpack_from("<II", r) for r in rs] for sec, rs in recs.items()}
        if li_len:
            ext.line_info_rec_size, recs = _ext_block(data, hdr_len + li_off, li_len, btf, min_rec=16)
            li: dict[str, list[LineInfo]] = {}
            for sec, rs in recs.items():
                out = []
                for r in rs:
                    off, fno, lno, lc = struct.unpack_from("<IIII", r)
                    out.append(LineInfo(off, fno, lno, lc, btf.str_at(fno), btf.str_at(lno)))
                li[sec] = out
            ext.line_info = li
        return ext


def _ext_block(data: bytes, start: int, length: int, btf: Btf, min_rec: int = 8):
    end = start + length
    if end > len(data) or length < 4:
        raise BtfError(".BTF.ext info block past the end of the section")
    (rec_size,) = struct.unpack_from("<I", data, start)
    if rec_size < min_rec or rec_size > 256:
        raise BtfError(f".BTF.ext record size {rec_size} is invalid (expected {min_rec}..256)")
    pos = start + 4
    out: dict[str, list[bytes]] = {}
    while pos < end:
        if pos + 8 > end:
            raise BtfError(".BTF.ext section header past the end of its block")
        sec_off, num = struct.unpack_from("<II", data, pos)
        pos += 8
        if num == 0 or pos + num * rec_size > end:        # checked before building anything
            raise BtfError(".BTF.ext record past the end of its block")
        recs = [bytes(data[pos + i * rec_size: pos + (i + 1) * rec_size]) for i in range(num)]
        pos += num * rec_size
        out.setdefault(btf.str_at(sec_off), []).extend(recs)
    return rec_size, out
