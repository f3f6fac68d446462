"""Bytes and packets per cgroup, received and sent (cgroup_skb ingress and egress).

Attached to a cgroup, ``count_ingress`` runs for every packet its sockets receive and ``count_egress`` for every
packet they send; both add the packet's length (from its network header: IP header included) to the counters
of the socket's cgroup, keyed by cgroup id (the inode number of the cgroup's directory, as ``stat`` shows it).
With the programs attached to a parent, every child cgroup gets its own line::

    pybpfgen compile examples/gallery/cgroup_bytes.py -o build/
    pybpfgen load build/cgroup_bytes.bpf.o --cgroup /sys/fs/cgroup/unified/myapp
    pybpfgen map dump cgroup_bytes traffic        # {cgroup id: {rx_bytes, rx_packets, tx_bytes, tx_packets}}

Both programs let every packet through.
"""
from pybpfgen.lang import *

ALLOW = 1


class Traffic(Struct):
    rx_bytes: u64
    rx_packets: u64
    tx_bytes: u64
    tx_packets: u64


# cgroup id -> what its sockets received and sent
traffic = Hash(key=u64, value=Traffic, max_entries=4096)


@cgroup_skb_ingress
def count_ingress(skb: SkBuff) -> int:
    cg: u64 = bpf_skb_cgroup_id(skb)
    t = traffic.lookup(cg)
    if t is None:
        traffic.update(cg, Traffic(), BPF_NOEXIST)  # the cgroup's first packet (another CPU may add it first)
        t = traffic.lookup(cg)
        if t is None:
            return ALLOW
    atomic_add(t.value.rx_bytes, skb.len)
    atomic_add(t.value.rx_packets, 1)
    return ALLOW


@cgroup_skb_egress
def count_egress(skb: SkBuff) -> int:
    cg: u64 = bpf_skb_cgroup_id(skb)
    t = traffic.lookup(cg)
    if t is None:
        traffic.update(cg, Traffic(), BPF_NOEXIST)
        t = traffic.lookup(cg)
        if t is None:
            return ALLOW
    atomic_add(t.value.tx_bytes, skb.len)
    atomic_add(t.value.tx_packets, 1)
    return ALLOW
