"""XDP drop counter: drop IPv4 TCP and UDP packets sent to blocked ports at the interface, before the kernel's
network stack sees them, and count what was dropped per port.

    pybpfgen compile examples/gallery/xdp_drop_counter.py -o build/
    pybpfgen load build/xdp_drop_counter.bpf.o --ifname eth0
    pybpfgen map set xdp_drop_counter blocked 6379 '{"packets": 0, "bytes": 0}'   # block port 6379
    pybpfgen map dump xdp_drop_counter blocked                                     # what was dropped

The packet is read through views (``ctx.bytes(offset, n)``): each is None when the packet is shorter, and the
compiler refuses a read before that check, so a short packet cannot be misread (docs/language.md, "Packet and
message bytes"). Ports are in host byte order in the map.
"""
from pybpfgen.lang import *

ETH_P_IP = 0x0800
IP_FRAG_OFFSET = 0x1FFF    # the fragment offset bits of the IPv4 header's frag_off
UDP = 17


class Dropped(Struct):
    packets: u64
    bytes: u64


# destination port (host byte order) -> what was dropped; a port is blocked while it is in the map
blocked = Hash(key=u32, value=Dropped, max_entries=1024)


@xdp
def drop_blocked_ports(ctx: XdpMd) -> int:
    ip = ctx.bytes(12, 12)               # the EtherType, then the IPv4 header up to its protocol
    if ip is None:
        return XDP_PASS
    proto = ip[11]
    if ip.u16be(0) != ETH_P_IP or (proto != IPPROTO_TCP and proto != UDP):
        return XDP_PASS
    if ip.u16be(8) & IP_FRAG_OFFSET != 0:
        return XDP_PASS                  # a later fragment: no ports in it
    l4 = ctx.bytes(14 + (ip[2] & 0xF) * 4, 4)   # after the IPv4 header and its options: both ports
    if l4 is None:
        return XDP_PASS
    d = blocked.lookup(u32(l4.u16be(2)))
    if d is None:
        return XDP_PASS
    atomic_add(d.value.packets, 1)
    atomic_add(d.value.bytes, bpf_xdp_get_buff_len(ctx))
    return XDP_DROP
