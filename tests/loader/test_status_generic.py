"""`status` is generic: any program gets its per-CPU counter structs summed over CPUs with the field names from
BTF, its maps' key / value types and entries, and its global data decoded, with no program-specific names
(fake syscall layer, no root)."""
import textwrap

import pytest

import pybpfgen_accel as accel
import kernel_loader as kl
from kernel_loader import cli, features
from kernel_loader.maps import possible_cpus
from loader_fakes import FakeSyscall
from pybpfgen.driver import compile_file

SRC = textwrap.dedent("""
    from pybpfgen.lang import *

    class Counts(Struct):
        opened: u64
        closed: u64

    counts = PerCPUArray(value=Counts, max_entries=1)
    per_port = PerCPUArray(value=u64, max_entries=4)
    seen = Hash(key=u32, value=u64, max_entries=16)
    total = Global(u64)

    @sock_ops
    def watch(ctx: SockOps) -> int:
        c = counts.lookup(0)
        if c is not None:
            c.value.opened += 1
        total.value += 1
        return 1
""")


@pytest.fixture
def loaded(tmp_path):
    src = tmp_path / "watch.py"
    src.write_text(SRC)
    obj = compile_file(str(src), str(tmp_path)).output
    (tmp_path / "bpffs").mkdir()
    (tmp_path / "cg").mkdir()
    sc = FakeSyscall(str(tmp_path / "bpffs"), str(tmp_path / "cg"))
    sc.report_btf = True
    features.has(sc, "sk_msg_link")
    root = str(tmp_path / "bpffs" / "pybpfgen")
    kl.load(obj, cgroup=str(tmp_path / "cg"), pin_root=root, sc=sc)
    return sc, root


def test_counters_entries_and_types_without_program_names(loaded):
    sc, root = loaded
    n = possible_cpus()
    kw = dict(pin_root=root, sc=sc)
    kl.map_set("watch", "counts", 0, [{"opened": i + 1, "closed": i} for i in range(n)], **kw)
    kl.map_set("watch", "per_port", 2, 5, **kw)
    kl.map_set("watch", "seen", 80, 1, **kw)
    kl.map_set("watch", "bss", 0, {"total": 9}, **kw)
    assert kl.map_get("watch", ".bss", 0, **kw) == kl.map_get("watch", "watch.bss", 0, **kw) == {"total": 9}
    (o,) = kl.status(**kw)["objects"]
    assert o["counters"]["counts"] == {"opened": n * (n + 1) // 2, "closed": n * (n - 1) // 2}
    assert o["counters"]["per_port"][2] == 5 * n
    assert o["accelerator"] is None
    maps = {m["pin_name"]: m for m in o["maps"]}
    assert (maps["counts"]["key_type"], maps["counts"]["value_type"]) == ("__u32", "struct Counts")
    assert maps["seen"]["entries"] == 1 and maps["seen"]["values"] is None
    assert maps["bss"]["values"] == [{"total": 9}] and maps["bss"]["value_type"] == ".bss"
    text = cli.format_status(kl.status(**kw))
    assert '{"opened": ' in text and "accelerator" not in text
    assert sc.open_fds == []


def test_accelerator_summary_is_unchanged(tmp_path, accel_object):
    (tmp_path / "bpffs").mkdir()
    (tmp_path / "cg").mkdir()
    sc = FakeSyscall(str(tmp_path / "bpffs"), str(tmp_path / "cg"))
    sc.report_btf = True
    root = str(tmp_path / "bpffs" / "pybpfgen")
    kl.load(accel_object, cgroup=str(tmp_path / "cg"), pin_root=root, sc=sc)
    kw = dict(pin_root=root, sc=sc)
    accel.policy_add(8080, **kw)
    kl.map_set("accel", "stats", 0, {"redirected": 3, "missed": 1}, **kw)
    (o,) = kl.status(**kw)["objects"]
    n = possible_cpus()
    assert o["accelerator"] == {"sockhash": "socks", "sockets": 0, "policy_map": "policy_ports",
                                "policy_ports": [8080], "redirected": 3 * n, "missed": n}
    assert o["counters"]["stats"]["paired"] == 0 and set(o["counters"]) == {"stats"}
    assert (f"  accelerator: 0 sockets in socks; redirected {3 * n}, missed {n}; ports 8080"
            in cli.format_status(kl.status(**kw)).splitlines())
