"""Golden checks on compiled objects: the facts the loader and users rely on, not IR text snapshots.

Sections, BTF names of map keys and values, helper calls, and per-program instruction counts within a
band (so that an optimisation or code-generation regression shows up, while small changes in LLVM's
choices do not fail the suite). When a change moves a count out of its band on purpose, update the
baseline here and in docs/benchmarks.md.
"""
import os

import pytest

from kernel_loader.elf import parse_object
from pybpfgen.disasm import decode
from pybpfgen.driver import compile_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

REQUIRED_SECTIONS = {"license", ".maps", ".BTF", ".BTF.ext", ".pybpfgen", ".symtab", ".strtab"}

GOLDEN = {
    "programs/accel.py": {
        "programs": {"accel_sockops": ("sockops", 724), "accel_redirect": ("sk_msg", 600)},
        "maps": {  # name: (BPF map type, key BTF name, value BTF name, max_entries)
            "socks": (18, "__u64", "__u64", 65536),
            "sk_state": (24, "__s32", "struct SockState", 0),
            "pending": (9, "struct Tuple", "struct Pending", 16384),
            "links": (2, "__u32", "struct Link", 32768),
            "policy_ports": (1, "__u32", "__u32", 1024),
            "policy_cidrs": (11, "struct Prefix", "__u32", 1024),
            "policy_tuples": (1, "struct Tuple", "__u32", 65536),
            "stats": (6, "__u32", "struct AccelStats", 1),
            "settings": (2, "__u32", "struct Settings", 1),
        },
        # map lookup/update/delete, sk_storage_get, get_socket_cookie, sock_ops_cb_flags_set, sock_hash_update;
        # msg_apply_bytes, msg_redirect_hash
        "helpers": {"accel_sockops": {1, 2, 3, 46, 59, 70, 107}, "accel_redirect": {1, 61, 71, 107}},
    },
    "bench/twin/accel_twin.py": {
        "programs": {"accel_sockops": ("sockops", 40), "accel_redirect": ("sk_msg", 19)},
        "maps": {
            "sock_hash": (18, "struct sock_key", "__u32", 65536),
            "accel_ports": (1, "__u32", "__u32", 1024),
        },
        "helpers": {"accel_sockops": {1, 70}, "accel_redirect": {71}},
    },
}


def band(n: int) -> range:
    """±15%, at least ±3 instructions."""
    d = max(3, round(n * 0.15))
    return range(n - d, n + d + 1)


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    out = tmp_path_factory.mktemp("golden")
    objs = {}
    for src in GOLDEN:
        r = compile_file(os.path.join(ROOT, src), str(out))
        assert r.output, [d.message for d in r.diagnostics]
        objs[src] = parse_object(r.output)
    return objs


@pytest.mark.parametrize("src", sorted(GOLDEN))
def test_sections(objects, src):
    obj = objects[src]
    names = set(obj.sections)
    assert REQUIRED_SECTIONS <= names, REQUIRED_SECTIONS - names
    assert {sec for sec, _ in GOLDEN[src]["programs"].values()} <= names
    assert ".eh_frame" not in names
    assert obj.license == "GPL"
    assert obj.meta["format"] == 1


@pytest.mark.parametrize("src", sorted(GOLDEN))
def test_map_btf_types(objects, src):
    obj = objects[src]
    want = GOLDEN[src]["maps"]
    assert set(obj.maps) == set(want)
    for name, (mtype, key, value, max_entries) in want.items():
        m = obj.maps[name]
        assert (m.type, m.max_entries) == (mtype, max_entries), name
        assert obj.btf.type_name(m.key_type_id) == key, name
        assert obj.btf.type_name(m.value_type_id) == value, name
        if mtype in (15, 18):  # a sockmap/sockhash value is a socket fd (u32) or cookie (u64)
            assert m.value_size in (4, 8)


@pytest.mark.parametrize("src", sorted(GOLDEN))
def test_instruction_counts_within_band(objects, src):
    obj = objects[src]
    got = {p.name: (p.section, p.insn_count) for p in obj.programs}
    for prog, (section, n) in GOLDEN[src]["programs"].items():
        assert got[prog][0] == section
        assert got[prog][1] in band(n), f"{src}:{prog}: {got[prog][1]} instructions, golden {n} (band {band(n)})"


@pytest.mark.parametrize("src", sorted(GOLDEN))
def test_helper_calls(objects, src):
    obj = objects[src]
    for p in obj.programs:
        calls = {i.imm for i in decode(p.insns) if i.code == 0x85 and i.src == 0}
        assert calls == GOLDEN[src]["helpers"][p.name], p.name
        assert not any(i.code == 0x8D for i in decode(p.insns)), "callx"
