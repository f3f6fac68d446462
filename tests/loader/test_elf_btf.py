"""ELF/BTF/BTF.ext parsing (no root)."""
import os
import shutil
import struct
import sys

import pytest

from kernel_loader import btf as B
from kernel_loader.elf import object_name, parse_object
from kernel_loader.errors import ObjectFormatError


@pytest.fixture(scope="module")
def twin(twin_object):
    return parse_object(twin_object)


@pytest.fixture(scope="module")
def feat(features_object):
    return parse_object(features_object)


def test_twin_programs(twin):
    progs = {p.name: p for p in twin.programs}
    assert set(progs) == {"accel_sockops", "accel_redirect"}
    so, sm = progs["accel_sockops"], progs["accel_redirect"]
    assert (so.kind, so.prog_type, so.expected_attach_type) == ("sock_ops", 13, 3)
    assert (sm.kind, sm.prog_type, sm.expected_attach_type) == ("sk_msg", 16, 7)
    assert so.insn_count == 44 and sm.insn_count == 19
    assert sm.attach_map == "sock_hash"          # the only sockhash, no .pybpfgen section
    assert twin.license == "GPL" and twin.meta is None and twin.name == "accel"


def test_twin_maps(twin):
    sh, ap = twin.maps["sock_hash"], twin.maps["accel_ports"]
    assert (sh.type, sh.key_size, sh.value_size, sh.max_entries) == (18, 16, 4, 65536)
    assert (ap.type, ap.key_size, ap.value_size, ap.max_entries) == (1, 4, 4, 1024)
    assert twin.btf.type_name(sh.key_type_id) == "struct sock_key"
    assert twin.btf.size_of(ap.value_type_id) == 4
    assert (ap.offset, sh.offset) == (0, 32)


def test_twin_relocations(twin):
    rel = {s: [(r.insn_index, r.type, r.symbol.name) for r in twin.sections[s].relocations]
           for s in ("sockops", "sk_msg")}
    assert [n for _i, _t, n in rel["sockops"]] == ["accel_ports", "accel_ports", "sock_hash"]
    assert rel["sk_msg"] == [(13, 1, "sock_hash")]


def test_datasec_fixup(twin):
    ds = twin.btf.find(".maps", B.DATASEC)
    assert ds.size_or_type == twin.sections[".maps"].size == 64
    entries = [(twin.btf[e[0]].name, e[1], e[2]) for e in ds.extra]
    assert entries == sorted(entries, key=lambda e: e[1])
    assert dict((n, off) for n, off, _s in entries) == {"accel_ports": 0, "sock_hash": 32}
    # the fixed-up BTF we would load parses back identically
    again = B.Btf.parse(twin.btf_raw)
    assert [t.extra for t in again.types[1:]] == [t.extra for t in twin.btf.types[1:]]


def test_datasec_fixup_from_zero():
    b = B.BtfBuilder()
    u32 = b.int_("unsigned int", 4)
    va = b.var("a", u32)
    vb = b.var("b", u32)
    b.datasec(".data", 0, [(vb, 0, 4), (va, 0, 4)])
    btf = b.build()
    btf.fixup_datasecs({".data": 16}, {".data": {"a": 0, "b": 8}})
    ds = btf.find(".data", B.DATASEC)
    assert ds.size_or_type == 16
    assert ds.extra == [[va, 0, 4], [vb, 8, 4]]


def test_btf_ext(twin):
    ext = twin.btf_ext
    assert set(ext.func_info) == {"sockops", "sk_msg"}
    (off, tid), = ext.func_info["sk_msg"]
    assert off == 0 and twin.btf[tid].kind == B.FUNC and twin.btf[tid].name == "accel_redirect"
    li = ext.line_info["sk_msg"]
    assert li and all(x.insn_off % 8 == 0 for x in li)          # bytes in the ELF
    assert li[0].file.endswith(("accel.bpf.c", "accel_twin.bpf.c")) and "family" in li[0].text and li[0].line > 0


def test_map_definition_builder():
    b = B.BtfBuilder()
    i32 = b.int_("int", 4, signed=True)
    u32 = b.int_("unsigned int", 4)
    u64 = b.int_("unsigned long long", 8)
    idx = b.int_("__ARRAY_SIZE_TYPE__", 4)
    val = b.struct("stats_val", 16, [("redirected", u64, 0), ("missed", u64, 64)])
    arr2 = b.array(i32, 2, idx)
    arr8 = b.array(i32, 8, idx)
    st = b.struct("", 32, [("type", b.ptr(arr2), 0), ("max_entries", b.ptr(arr8), 64),
                           ("key", b.ptr(u32), 128), ("value", b.ptr(val), 192)])
    b.var("stats", st)
    btf = B.Btf.parse(b.build().to_bytes())
    d = btf.map_definition("stats")
    assert d == {"type": 2, "max_entries": 8, "map_flags": 0, "key_size": 4, "value_size": 16,
                 "key_type_id": u32, "value_type_id": val}


def test_decode_values():
    b = B.BtfBuilder()
    u8c = b.int_("char", 1, signed=True, char=True)
    u32 = b.int_("unsigned int", 4)
    s16 = b.int_("short", 2, signed=True)
    idx = b.int_("__ARRAY_SIZE_TYPE__", 4)
    td = b.typedef("__u32", u32)
    en = b.enum("color", 4, [("RED", 0), ("BLUE", 7)])
    name = b.array(u8c, 4, idx)
    pair = b.array(td, 2, idx)
    st = b.struct("s", 24, [("n", td, 0), ("d", s16, 32), ("c", en, 64), ("name", name, 96), ("p", pair, 128)])
    btf = B.Btf.parse(b.build().to_bytes())
    raw = struct.pack("<Ih2xI4sII", 5, -3, 7, b"ab\0\0", 1, 2)
    assert btf.decode(st, raw) == {"n": 5, "d": -3, "c": "BLUE", "name": "ab", "p": [1, 2]}
    assert btf.size_of(st) == 24 and btf.size_of(pair) == 8


def test_sum_percpu_values():
    assert B.sum_values([{"a": 1, "b": [1, 2]}, {"a": 2, "b": [3, 4]}]) == {"a": 3, "b": [4, 6]}
    assert B.sum_values([1, 2, 3]) == 6


def test_btf_errors():
    with pytest.raises(B.BtfError, match="magic"):
        B.Btf.parse(b"\xeb\x9f\x01\x00" + bytes(28))
    good = B.BtfBuilder()
    good.int_("int", 4)
    raw = good.build().to_bytes()
    with pytest.raises(B.BtfError, match="truncated"):
        B.Btf.parse(raw[:-6])


def test_features_object(feat):
    assert feat.meta["module"] == "features"
    progs = {p.name: p for p in feat.programs}
    assert progs["feat_run"].kind == "syscall" and progs["feat_run"].prog_flags == 0x10
    assert progs["feat_msg"].attach_map == "socks"
    ro = feat.maps[".rodata"]
    assert ro.internal and ro.freeze and ro.map_flags == 0x80 and struct.unpack("<I", ro.data) == (3,)
    assert feat.maps[".bss"].data == bytes(4)
    assert {f.name for f in feat.functions if f.section == ".text"} == {"bump", "count_hit"}


def test_object_name():
    assert object_name("build/accel.bpf.o") == "accel"
    assert object_name("/x/my.prog.bpf.o") == "my_prog"
    assert object_name("foo.o") == "foo"


def _write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def test_object_errors(tmp_path, twin_object):
    data = open(twin_object, "rb").read()
    with pytest.raises(ObjectFormatError, match="no such file"):
        parse_object(str(tmp_path / "missing.bpf.o"))
    with pytest.raises(ObjectFormatError, match="not an ELF file"):
        parse_object(_write(tmp_path, "text.bpf.o", b"hello world\n" * 10))
    with pytest.raises(ObjectFormatError, match="not EM_BPF"):
        parse_object(sys.executable if os.path.exists(sys.executable) else shutil.which("true"))
    be = bytearray(data)
    be[5] = 2
    with pytest.raises(ObjectFormatError, match="big-endian"):
        parse_object(_write(tmp_path, "be.bpf.o", bytes(be)))
    with pytest.raises(ObjectFormatError, match="truncated"):
        parse_object(_write(tmp_path, "short.bpf.o", data[: len(data) // 2]))
    with pytest.raises(ObjectFormatError, match="truncated"):
        parse_object(_write(tmp_path, "tiny.bpf.o", data[:40]))
    with pytest.raises(ObjectFormatError, match="is a directory"):
        parse_object(str(tmp_path))
