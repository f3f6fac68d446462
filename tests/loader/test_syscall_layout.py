"""Our bpf(2) attr structs against the kernel, and our attr builders against what they must send.

* Layout: every field that kernel_loader/_cdef.py declares (as cffi compiled it) is at the offset and of the
  size that the running kernel's own BTF (/sys/kernel/btf/vmlinux, read with kernel_loader.btf) gives the
  member of ``union bpf_attr`` with that name path. Fields the kernel has and we do not declare are fine.
* Builders: each ``Syscall`` method, driven through the real ``_raw_bpf`` with a fake ``libc.syscall`` at the
  chokepoint, passes the struct of its command, with exactly the fields it was asked to set and every other
  byte zero, also when an earlier call set more fields.
"""
import os
import re

import pytest

from kernel_loader import _cdef
from kernel_loader import btf as B
from kernel_loader import syscall as S
from kernel_loader.errors import BpfSyscallError

ffi = S.ffi
VMLINUX = os.environ.get("PYBPFGEN_VMLINUX_BTF", "/sys/kernel/btf/vmlinux")

OUR_STRUCTS = re.findall(r"^\s*(struct \w+_attr) \{", _cdef.CDEF, re.M)

# Where each of our structs lives in union bpf_attr: a named member ("test." ...), else the union itself, whose
# anonymous members are transparent (a field name there must be unique).
PREFIX = {"struct info_attr": "info.", "struct prog_query_attr": "query.", "struct link_create_attr": "link_create.",
          "struct link_update_attr": "link_update.", "struct test_run_attr": "test."}
# Our names for kernel members with another name, as full paths (every listed path is checked).
KERNEL_PATHS = {
    ("struct get_id_attr", "id"): ("start_id", "prog_id", "map_id", "btf_id", "link_id"),
    ("struct map_elem_attr", "value"): ("value", "next_key"),       # MAP_GET_NEXT_KEY passes its buffer there
    ("struct link_create_attr", "relative_fd"): ("link_create.cgroup.relative_fd",),
    ("struct link_create_attr", "expected_revision"): ("link_create.cgroup.expected_revision",),
    ("struct fd_attr", "fd"): ("map_fd", "link_detach.link_fd", "enable_stats.type"),   # MAP_FREEZE, LINK_DETACH,
}                                                                                         # ENABLE_STATS


@pytest.fixture(scope="module")
def kernel_bpf_attr():
    """{name path: [(byte offset, size, index of the top-level member of union bpf_attr)]}, and its size."""
    with open(VMLINUX, "rb") as f:
        btf = B.Btf.parse(f.read())
    union = btf.find("bpf_attr", B.UNION)
    assert union is not None, f"{VMLINUX} has no union bpf_attr"
    out: dict[str, list[tuple[int, int, int]]] = {}

    def walk(type_id, bit_base, prefix, top):
        for i, m in enumerate(btf.members(type_id)):
            assert m.bitfield_size == 0, (prefix, m)
            t = btf[btf.resolve(m.type_id)]
            bits, where = bit_base + m.bit_offset, i if top is None else top
            assert bits % 8 == 0, (prefix, m)
            if m.name:
                out.setdefault(prefix + m.name, []).append((bits // 8, btf.size_of(m.type_id), where))
            if t.kind in (B.STRUCT, B.UNION):
                walk(t.id, bits, prefix + m.name + "." if m.name else prefix, where)
    walk(union.id, 0, "", None)
    return out, union.size_or_type


def our_fields(struct_name):
    return [(n, f.offset, ffi.sizeof(f.type)) for n, f in ffi.typeof(struct_name).fields if not n.startswith("_pad")]


def test_every_declared_struct_is_checked():
    assert len(OUR_STRUCTS) >= 12 and "struct prog_load_attr" in OUR_STRUCTS and "struct fd_attr" in OUR_STRUCTS


@pytest.mark.parametrize("struct_name", OUR_STRUCTS)
def test_declared_fields_match_the_kernel_btf(struct_name, kernel_bpf_attr):
    kernel, union_size = kernel_bpf_attr
    assert ffi.sizeof(struct_name) <= union_size, (struct_name, ffi.sizeof(struct_name), union_size)
    tops = set()
    for name, off, size in our_fields(struct_name):
        paths = KERNEL_PATHS.get((struct_name, name), (PREFIX.get(struct_name, "") + name,))
        for path in paths:
            found = kernel.get(path)
            assert found, f"{struct_name}.{name}: union bpf_attr has no member {path}"
            assert len(found) == 1, f"{struct_name}.{name}: {path} is ambiguous in union bpf_attr: {found}"
            k_off, k_size, top = found[0]
            assert (off, size) == (k_off, k_size), (
                f"{struct_name}.{name}: ours at offset {off} size {size}, the kernel's {path} at offset {k_off} "
                f"size {k_size}")
            tops.add(top)
    if struct_name != "struct fd_attr":    # one struct of ours = one member of the union
        assert len(tops) == 1, f"{struct_name}: fields from several members of union bpf_attr ({sorted(tops)})"


# ------------------------------------------------------------------ attr builders, seen at the chokepoint
class Mem:
    """Expected value of a pointer field: non-NULL, pointing at these bytes."""

    def __init__(self, content: bytes):
        self.content = content

    def __repr__(self):
        return f"Mem({self.content!r})"


class FakeLibc:
    """Stands in for libc at syscall._libc: records what _raw_bpf passes to syscall(2)."""

    def __init__(self):
        self.calls = []
        self.pointees: dict = {}      # field name -> bytes to read behind the pointer during the call

    def syscall(self, nr, cmd, attr, size):
        raw = bytes(ffi.buffer(ffi.cast("char *", attr), int(size)))
        seen = {}
        for field, n in self.pointees.items():
            addr = int.from_bytes(raw[field[0]:field[0] + 8], "little")
            seen[field[1]] = bytes(ffi.buffer(ffi.cast("char *", addr), n)) if addr else None
        self.calls.append((int(nr), int(cmd), int(size), raw, seen))
        return 3


@pytest.fixture
def chokepoint(monkeypatch):
    fake = FakeLibc()
    monkeypatch.setattr(S, "_libc", fake)
    sc = S.Syscall()

    def check(method, args, kwargs, cmd, struct_name, want):
        fields = {n: (off, size) for n, off, size in
                  [(n, f.offset, ffi.sizeof(f.type)) for n, f in ffi.typeof(struct_name).fields]}
        assert set(want) <= set(fields), set(want) - set(fields)
        fake.pointees = {(fields[n][0], n): len(v.content) for n, v in want.items() if isinstance(v, Mem)}
        fake.calls.clear()
        getattr(sc, method)(*args, **kwargs)
        assert len(fake.calls) == 1, fake.calls
        nr, got_cmd, size, raw, pointees = fake.calls[0]
        assert (nr, got_cmd, size) == (S.syscall_number(), cmd, ffi.sizeof(struct_name)), (method, struct_name)
        unset = bytearray(raw)
        for n, v in want.items():
            off, sz = fields[n]
            b = raw[off:off + sz]
            if isinstance(v, Mem):
                assert pointees[n] == v.content, (method, n, pointees[n], v)
            elif isinstance(v, bytes):
                assert b == v.ljust(sz, b"\0"), (method, n, b, v)
            else:
                assert int.from_bytes(b, "little", signed=v < 0) == v, (method, n, b, v)
            unset[off:off + sz] = bytes(sz)
        stray = {n: raw[o:o + s].hex() for n, (o, s) in fields.items() if n not in want and any(raw[o:o + s])}
        assert unset == bytes(len(raw)) and not stray, f"{method}: bytes set that were not asked for: {stray}"
    return check


KEY, VALUE = b"\x01\x02\x03\x04", b"\xaa" * 8
INSNS = bytes.fromhex("b700000000000000" "9500000000000000")

# (method, args, kwargs, command, struct, the fields that must be set): calls that set many fields come first,
# so that the calls after them show that nothing is carried over.
BUILDS = [
    ("map_create", (1, 4, 8, 16), dict(map_flags=1, name="m", btf_fd=5, btf_key_type_id=6, btf_value_type_id=7,
                                       inner_map_fd=8, numa_node=9, map_extra=10),
     S.MAP_CREATE, "struct map_create_attr",
     dict(map_type=1, key_size=4, value_size=8, max_entries=16, map_flags=1, map_name=b"m", btf_fd=5,
          btf_key_type_id=6, btf_value_type_id=7, inner_map_fd=8, numa_node=9, map_extra=10)),
    ("map_create", (2, 4, 4, 1), {}, S.MAP_CREATE, "struct map_create_attr",
     dict(map_type=2, key_size=4, value_size=4, max_entries=1)),
    ("map_update", (7, KEY, VALUE, 2), {}, S.MAP_UPDATE_ELEM, "struct map_elem_attr",
     dict(map_fd=7, key=Mem(KEY), value=Mem(VALUE), flags=2)),
    ("map_lookup", (7, KEY, 8), {}, S.MAP_LOOKUP_ELEM, "struct map_elem_attr",
     dict(map_fd=7, key=Mem(KEY), value=Mem(bytes(8)))),
    ("map_delete", (7, KEY), {}, S.MAP_DELETE_ELEM, "struct map_elem_attr", dict(map_fd=7, key=Mem(KEY))),
    ("map_get_next_key", (7, None, 4), {}, S.MAP_GET_NEXT_KEY, "struct map_elem_attr",
     dict(map_fd=7, value=Mem(bytes(4)))),
    ("map_freeze", (7,), {}, S.MAP_FREEZE, "struct fd_attr", dict(fd=7)),
    ("prog_load", (13, INSNS), dict(license="Dual BSD/GPL", name="p", expected_attach_type=3, prog_flags=1,
                                    prog_btf_fd=4, func_info=b"F" * 8, func_info_cnt=1, line_info=b"L" * 16,
                                    line_info_cnt=1, log_level=1, log_size=64),
     S.PROG_LOAD, "struct prog_load_attr",
     dict(prog_type=13, insn_cnt=2, insns=Mem(INSNS), license=Mem(b"Dual BSD/GPL\0"), prog_name=b"p",
          expected_attach_type=3, prog_flags=1, prog_btf_fd=4, func_info=Mem(b"F" * 8), func_info_cnt=1,
          func_info_rec_size=8, line_info=Mem(b"L" * 16), line_info_cnt=1, line_info_rec_size=16, log_level=1,
          log_size=64, log_buf=Mem(bytes(64)))),
    ("prog_load", (16, INSNS), {}, S.PROG_LOAD, "struct prog_load_attr",
     dict(prog_type=16, insn_cnt=2, insns=Mem(INSNS), license=Mem(b"GPL\0"))),
    ("prog_test_run", (9,), dict(ctx=b"C" * 4, data=b"D" * 6, repeat=2), S.PROG_TEST_RUN, "struct test_run_attr",
     dict(prog_fd=9, repeat=2, ctx_in=Mem(b"C" * 4), ctx_size_in=4, data_in=Mem(b"D" * 6), data_size_in=6)),
    ("prog_test_run", (9,), {}, S.PROG_TEST_RUN, "struct test_run_attr", dict(prog_fd=9)),
    ("obj_get", ("/sys/fs/bpf/x",), dict(flags=1), S.OBJ_GET, "struct obj_pin_attr",
     dict(pathname=Mem(b"/sys/fs/bpf/x\0"), file_flags=1)),
    ("obj_pin", (6, "/sys/fs/bpf/y"), {}, S.OBJ_PIN, "struct obj_pin_attr",
     dict(pathname=Mem(b"/sys/fs/bpf/y\0"), bpf_fd=6)),
    ("obj_get_info_by_fd", (6, 16), {}, S.OBJ_GET_INFO_BY_FD, "struct info_attr",
     dict(bpf_fd=6, info_len=16, info=Mem(bytes(16)))),
    ("prog_query", (5, 3), dict(max_progs=2, query_flags=1), S.PROG_QUERY, "struct prog_query_attr",
     dict(target_fd=5, attach_type=3, query_flags=1, prog_ids=Mem(bytes(8)), link_ids=Mem(bytes(8)), prog_cnt=2)),
    ("btf_load", (b"BTFDATA",), dict(log_level=1, log_size=32), S.BTF_LOAD, "struct btf_load_attr",
     dict(btf=Mem(b"BTFDATA"), btf_size=7, btf_log_buf=Mem(bytes(32)), btf_log_size=32, btf_log_level=1)),
    ("btf_load", (b"BTF",), {}, S.BTF_LOAD, "struct btf_load_attr", dict(btf=Mem(b"BTF"), btf_size=3)),
    ("link_create", (9, 5, 3), dict(flags=1), S.LINK_CREATE, "struct link_create_attr",
     dict(prog_fd=9, target_fd=5, attach_type=3, flags=1)),
    ("link_create", (9, 5, 7), {}, S.LINK_CREATE, "struct link_create_attr",
     dict(prog_fd=9, target_fd=5, attach_type=7)),
    ("link_update", (4, 9, 8), {}, S.LINK_UPDATE, "struct link_update_attr",
     dict(link_fd=4, new_prog_fd=9, flags=4, old_prog_fd=8)),
    ("link_update", (4, 9), {}, S.LINK_UPDATE, "struct link_update_attr", dict(link_fd=4, new_prog_fd=9)),
    ("link_detach", (4,), {}, S.LINK_DETACH, "struct fd_attr", dict(fd=4)),
    ("prog_attach", (9, 5, 7), dict(flags=2), S.PROG_ATTACH, "struct prog_attach_attr",
     dict(target_fd=5, attach_bpf_fd=9, attach_type=7, attach_flags=2)),
    ("prog_detach", (9, 5, 7), {}, S.PROG_DETACH, "struct prog_attach_attr",
     dict(target_fd=5, attach_bpf_fd=9, attach_type=7)),
    ("prog_get_fd_by_id", (42,), {}, S.PROG_GET_FD_BY_ID, "struct get_id_attr", dict(id=42)),
    ("map_get_fd_by_id", (43,), {}, S.MAP_GET_FD_BY_ID, "struct get_id_attr", dict(id=43)),
    ("link_get_fd_by_id", (44,), {}, S.LINK_GET_FD_BY_ID, "struct get_id_attr", dict(id=44)),
    ("btf_get_fd_by_id", (45,), {}, S.BTF_GET_FD_BY_ID, "struct get_id_attr", dict(id=45)),
    ("get_next_id", ("prog", 46), {}, S.PROG_GET_NEXT_ID, "struct get_id_attr", dict(id=46)),
    ("get_next_id", ("link",), {}, S.LINK_GET_NEXT_ID, "struct get_id_attr", {}),
    ("enable_stats", (), {}, S.ENABLE_STATS, "struct fd_attr", {}),
    ("enable_stats", (1,), {}, S.ENABLE_STATS, "struct fd_attr", dict(fd=1)),
]


def test_attr_builders_send_only_what_they_set(chokepoint):
    for method, args, kwargs, cmd, struct_name, want in BUILDS:
        chokepoint(method, args, kwargs, cmd, struct_name, want)


def test_every_command_builder_is_covered():
    commands = {name for name, v in vars(S.Syscall).items() if callable(v) and not name.startswith("_")
                and name not in ("close", "fd_kind", "effective_caps", "statfs_type", "mount_bpffs",
                                 "prog_info", "map_info", "link_info", "btf_info")}   # the last four: *_info_by_fd
    assert commands == {b[0] for b in BUILDS}, commands ^ {b[0] for b in BUILDS}


def test_syscall_numbers():
    assert S.syscall_number("x86_64") == 321
    assert S.syscall_number("aarch64") == 280
    with pytest.raises(OSError):
        S.syscall_number("sparc")


def test_error_carries_errno_name():
    e = BpfSyscallError("MAP_CREATE", 524)
    assert e.errno == 524 and e.errno_name == "ENOTSUPP" and "ENOTSUPP" in str(e)
    e = BpfSyscallError("PROG_LOAD", 13)
    assert e.errno_name == "EACCES" and "PROG_LOAD" in str(e)
    assert S.errno_name(28) == "ENOSPC"


def test_generated_cffi_module_is_current():
    """kernel_loader/_bpf_cffi.py matches _cdef.CDEF (else: python -m kernel_loader._build_cffi)."""
    from kernel_loader import _bpf_cffi
    assert S.ffi is _bpf_cffi.ffi, "stale kernel_loader/_bpf_cffi.py: run python -m kernel_loader._build_cffi"
