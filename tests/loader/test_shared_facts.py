"""The loader's BPF facts are the compiler's tables (issue 12), with the values the loader always used."""
from kernel_loader import attach, elf, kinfo, lifecycle, mapapi, maps
from pybpfgen.target import maps as tmaps, progtypes


def test_the_loader_reads_the_shared_tables():
    assert elf.PROG_TYPES is progtypes.PROG_TYPES and attach.PROG_TYPES is progtypes.PROG_TYPES
    assert elf.MAP_TYPE_NAMES is tmaps.MAP_TYPE_NAMES and kinfo.PROG_TYPE_NAMES is progtypes.PROG_TYPE_NAMES
    assert kinfo.ATTACH_TYPE_NAMES is progtypes.ATTACH_TYPE_NAMES and kinfo.MAP_TYPE_NAMES is tmaps.MAP_TYPE_NAMES
    assert attach.LINK_TYPE_NAMES is kinfo.LINK_TYPE_NAMES  # generated from the kernel's BTF (gen_kinfo)


def test_the_values_did_not_change():
    got = {p.name: (p.section, p.prog_type, p.attach_type, p.prog_flags, p.attach)
           for p in progtypes.PROG_TYPES.values()}
    assert {k: got[k] for k in ("sock_ops", "sk_msg", "socket_filter", "syscall")} == {
        "sock_ops": ("sockops", 13, 3, 0, "cgroup"), "sk_msg": ("sk_msg", 16, 7, 0, "map"),
        "socket_filter": ("socket", 1, 0, 0, None), "syscall": ("syscall", 31, 0, 0x10, None)}
    for section, kind in (("sockops", "sock_ops"), ("sockops/x", "sock_ops"), ("sk_msg", "sk_msg"),
                          ("socket", "socket_filter"), ("socket/1", "socket_filter"), ("syscall", "syscall"),
                          ("cgroup_skb/egress", "cgroup_skb_egress"), ("cgroup_skb/ingress", "cgroup_skb_ingress"),
                          ("xdp", "xdp"), ("xdp/veth0", "xdp"), ("tcx/ingress", "tc_ingress"),
                          ("tc/ingress", "tc_ingress"), ("tcx/egress", "tc_egress"),
                          ("sk_skb/stream_parser", "sk_skb_stream_parser"),
                          ("sk_skb/stream_verdict", "sk_skb_stream_verdict")):
        assert progtypes.by_section(section).name == kind, section
    assert progtypes.by_section("xdpx") is None and progtypes.by_section("sockopsx") is None
    assert progtypes.by_section("sk_skb") is None and progtypes.by_section("tc") is None
    for alias, kind in (("sockops", "sock_ops"), ("socket", "socket_filter"), ("socket_filter", "socket_filter")):
        assert progtypes.by_name(alias).name == kind
    assert (attach.ATTACH_CGROUP_SOCK_OPS, attach.ATTACH_SK_MSG_VERDICT) == (3, 7)
    assert (elf.MAP_SOCKMAP, elf.MAP_SOCKHASH, lifecycle.MAP_SOCKMAP, lifecycle.MAP_SOCKHASH) == (15, 18, 15, 18)
    assert maps.PERCPU_TYPES == {5, 6, 10} and maps.ARRAY_TYPES == {2, 6}
    # ring buffers, queues, stacks; local storage (sk, inode, task, cgroup): keyed by an fd, never walked
    assert mapapi.UNITERABLE_TYPES == {27, 31, 22, 23, 24, 28, 29, 32}
    assert mapapi.LOCAL_STORAGE_MAP_TYPES == {24, 28, 29, 32}
    assert {1: "hash", 2: "array", 15: "sockmap", 18: "sockhash", 27: "ringbuf", 24: "sk_storage"}.items() \
        <= elf.MAP_TYPE_NAMES.items()
    assert progtypes.PROG_TYPE_NAMES[8] == "cgroup_skb" and progtypes.PROG_TYPE_NAMES[1] == "socket_filter"
