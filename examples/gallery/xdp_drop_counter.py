"""XDP drop counter: drop IPv4 TCP and UDP packets sent to blocked ports at the interface, before the kernel's
network stack sees them, and count what was dropped per port.

    pybpfgen compile examples/gallery/xdp_drop_counter.py -o build/
    pybpfgen load build/xdp_drop_counter.bpf.o --ifname eth0
    pybpfgen map set xdp_drop_counter blocked 6379 '{"packets": 0, "bytes": 0}'   # block port 6379
    pybpfgen map dump xdp_drop_counter blocked                                     # what was dropped

The packet's bytes are read with ``bpf_xdp_load_bytes`` (bounds-checked by the kernel: reading past the end of
the packet fails instead of reading garbage). Ports are in host byte order in the map.
"""
from pybpfgen.lang import *

ETH_P_IP = 0x0008          # htons(0x0800): the Ethernet type as it is in the packet, read as a little-endian u16
IP_FRAG_OFFSET = 0xFF1F    # htons(0x1FFF): the fragment offset bits of frag_off
UDP = 17


class Ipv4Start(Struct):
    """The Ethernet type and the first bytes of the IPv4 header (packet offset 12)."""
    eth_proto: u16
    ver_ihl: u8
    tos: u8
    tot_len: u16
    id: u16
    frag_off: u16
    ttl: u8
    protocol: u8


class Ports(Struct):
    """The start of a TCP or UDP header: both ports, network byte order."""
    source: u16
    dest: u16


class Dropped(Struct):
    packets: u64
    bytes: u64


# destination port (host byte order) -> what was dropped; a port is blocked while it is in the map
blocked = Hash(key=u32, value=Dropped, max_entries=1024)


@xdp
def drop_blocked_ports(ctx: XdpMd) -> int:
    ip = Ipv4Start()
    if bpf_xdp_load_bytes(ctx, 12, ip) < 0:
        return XDP_PASS                                  # shorter than an IPv4 header
    if ip.eth_proto != ETH_P_IP or (ip.protocol != IPPROTO_TCP and ip.protocol != UDP):
        return XDP_PASS
    if ip.frag_off & IP_FRAG_OFFSET != 0:
        return XDP_PASS                                  # a later fragment: no ports in it
    ports = Ports()
    if bpf_xdp_load_bytes(ctx, 14 + u32(ip.ver_ihl & 0xF) * 4, ports) < 0:
        return XDP_PASS
    port = u32(u16((ports.dest >> 8) | (ports.dest << 8)))   # network to host byte order
    d = blocked.lookup(port)
    if d is None:
        return XDP_PASS
    atomic_add(d.value.packets, 1)
    atomic_add(d.value.bytes, bpf_xdp_get_buff_len(ctx))
    return XDP_DROP
