"""`pybpfgen status` handles every map kind the language can declare (ring buffers have no keys to count)."""
import textwrap

import pytest

import kernel_loader as kl
from pybpfgen.driver import compile_file

SRC = textwrap.dedent("""
    from pybpfgen.lang import *

    class Prefix(Struct):
        prefixlen: u32
        addr: u32

    hits = LRUHash(key=u32, value=u64, max_entries=8)
    per = PerCPUHash(key=u32, value=u64, max_entries=8)
    cidrs = LPMTrie(key=Prefix, value=u32, max_entries=8)
    rb = RingBuf(max_entries=4096)
    sm = SockMap(max_entries=4)
    sm8 = SockMap(max_entries=4, value=u64)
    counter = Global(u64)

    @sock_ops
    def p(ctx: SockOps) -> int:
        counter.value += 1
        rb.output(u64(ctx.op))
        return 1
""")


@pytest.mark.kernel
def test_status_of_every_map_kind(tmp_path, pin_root, child_cgroup):
    src = tmp_path / "kinds.py"
    src.write_text(SRC)
    obj = compile_file(str(src), str(tmp_path)).output
    kl.load(obj, cgroup=str(child_cgroup), pin_root=pin_root)
    try:
        maps = {m["name"]: m for m in kl.status(pin_root=pin_root)["objects"][0]["maps"]}
        assert maps["rb"]["entries"] is None and maps["rb"]["type"] == "ringbuf"
        assert maps["sm"]["entries"] is None  # u32 values: the kernel cannot tell occupied slots from empty
        assert maps["sm8"]["entries"] == 0  # u64 values: empty slots are told apart
        assert maps["cidrs"]["type"] == "lpm_trie" and maps["cidrs"]["entries"] == 0
        assert maps["hits"]["type"] == "lru_hash" and maps["per"]["type"] == "percpu_hash"
    finally:
        kl.unload("kinds", pin_root=pin_root)
