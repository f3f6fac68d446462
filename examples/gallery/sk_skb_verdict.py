"""sk_skb stream verdict: an echo service answered in the kernel.

sock_ops puts the server side of every TCP connection to an echo port (a port listed in ``echo_ports``) into the
sockhash ``socks``; the stream verdict program runs on the data those sockets receive and redirects it to the
egress of the same socket: the client gets its bytes back, the server process never reads or writes them. The
bytes echoed are counted per port. Data that starts with ``QUIT`` is dropped instead (read through a packet view,
``skb.bytes(0, 4)``). Data for a port that is not (or no longer) an echo port goes to the application as usual
(SK_PASS).

The kernel runs the verdict program from the socket's data-ready callback, which needs the accepted socket: bytes
that arrive before the server's ``accept()`` wait in the receive queue until more data arrives (then the verdict
sees them all). A client that writes at once and waits for the echo can therefore wait until it writes again; the
test waits until the server has accepted.

    pybpfgen compile examples/gallery/sk_skb_verdict.py -o build/
    pybpfgen load build/sk_skb_verdict.bpf.o --cgroup /sys/fs/cgroup/unified/echo
    pybpfgen map set sk_skb_verdict echo_ports 7007 0     # port 7007 echoes (connections made from now on)
    pybpfgen map dump sk_skb_verdict echo_ports           # bytes echoed per port
"""
from pybpfgen.lang import *


class SockKey(Struct):
    """A connection, seen from the server: addresses in network byte order, ports in host byte order."""
    local_ip4: u32
    remote_ip4: u32
    local_port: u32
    remote_port: u32


QUIT = 0x51554954                          # "QUIT" in network byte order

socks = SockHash(key=SockKey, value=u64, max_entries=4096)
echo_ports = Hash(key=u32, value=u64, max_entries=64)   # local port -> bytes echoed


@sock_ops
def add_echo_sockets(ctx: SockOps) -> int:
    if ctx.op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB or ctx.family != AF_INET:
        return 1
    if ctx.local_port not in echo_ports:
        return 1
    key = SockKey(local_ip4=ctx.local_ip4, remote_ip4=ctx.remote_ip4, local_port=ctx.local_port,
                  remote_port=ctx.remote_port)
    socks.update(ctx, key, BPF_ANY)
    return 1


@sk_skb_stream_verdict(socks)
def echo(skb: SkBuff) -> int:
    echoed = echo_ports.lookup(skb.local_port)
    if echoed is None:
        return SK_PASS
    bpf_skb_pull_data(skb, 4)              # the first 4 bytes into the directly readable part (if there are 4)
    head = skb.bytes(0, 4)                 # the first bytes of what arrived (None: fewer than 4)
    if head is not None and head.u32be(0) == QUIT:
        return SK_DROP                     # not echoed: dropped
    atomic_add(echoed.value, skb.len)
    key = SockKey(local_ip4=skb.local_ip4, remote_ip4=skb.remote_ip4, local_port=skb.local_port,
                  remote_port=skb.remote_port)
    return i32(bpf_sk_redirect_hash(skb, socks, key, 0))   # to the socket's egress: back to the client
