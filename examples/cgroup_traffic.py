"""Count the bytes each cgroup sends, and drop what it sends to one port (cgroup_skb egress programs).

``pybpfgen load --cgroup DIR`` attaches both programs to DIR's egress with bpf_links: every packet that sockets of
processes in DIR's subtree send runs them. ``pybpfgen map dump cgroup_traffic egress_bytes`` shows the bytes
(network header included) per cgroup id (the inode number of the cgroup's directory). A datagram or segment to
``BLOCKED_PORT`` is dropped: the sender's call fails with EPERM.
"""
from pybpfgen.lang import *

BLOCKED_PORT = 40999
DROP = 0
ALLOW = 1

egress_bytes = Hash(key=u64, value=u64, max_entries=1024)
egress_packets = Hash(key=u64, value=u64, max_entries=1024)


@cgroup_skb_egress
def count_egress(skb: SkBuff) -> int:
    cg: u64 = bpf_skb_cgroup_id(skb)
    b = egress_bytes.lookup(cg)
    if b is None:
        egress_bytes.update(cg, u64(skb.len))
    else:
        atomic_add(b.value, u64(skb.len))
    n = egress_packets.lookup(cg)
    if n is None:
        egress_packets.update(cg, u64(1))
    else:
        atomic_add(n.value, u64(1))
    return ALLOW


@cgroup_skb_egress
def block_port(skb: SkBuff) -> int:
    if skb.remote_port == BLOCKED_PORT:
        return DROP
    return ALLOW
