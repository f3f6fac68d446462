"""An egress port firewall for a cgroup, with a drop counter per port (cgroup_skb egress).

Every packet that sockets of processes in the cgroup (and its subtree) send runs ``firewall``. A packet whose
socket's remote port is a key of ``blocked`` is dropped, and that port's counter goes up: the sender's
``send()`` / ``sendto()`` / ``connect()`` then fails with EPERM (UDP; a TCP segment is retransmitted until it
times out). Everything else passes. Ports are added and removed from user space, while it runs::

    pybpfgen compile examples/gallery/egress_firewall.py -o build/
    pybpfgen load build/egress_firewall.bpf.o --cgroup /sys/fs/cgroup/unified/myapp
    pybpfgen map set egress_firewall blocked 6379 0        # block port 6379 (counting from 0)
    pybpfgen map dump egress_firewall blocked              # {port: packets dropped}

The socket's remote port is that of a connected socket (TCP, or UDP after ``connect()``); an unconnected UDP
socket has none (0), so its datagrams are not filtered here.
"""
from pybpfgen.lang import *

DROP = 0
ALLOW = 1

# remote port (host byte order) -> packets dropped on their way to it
blocked = Hash(key=u32, value=u64, max_entries=1024)


@cgroup_skb_egress
def firewall(skb: SkBuff) -> int:
    drops = blocked.lookup(skb.remote_port)
    if drops is None:
        return ALLOW
    atomic_add(drops.value, 1)
    return DROP
