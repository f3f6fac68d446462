"""TCP tuning by port: connections to or from selected ports get their own socket options.

A sock_ops program attached to a cgroup sees every TCP connection of the cgroup's processes. When one is
established (actively, by connect(), or passively, by accept()), it looks its local port, then its remote port, up in
``tuned_ports`` (filled from user space: port -> Tuning) and sets, on that connection only:

- ``TCP_NODELAY`` (no Nagle delay: small requests leave at once),
- the congestion control ``cubic`` (``/proc/sys/net/ipv4/tcp_available_congestion_control`` must list it),
- ``TCP_NOTSENT_LOWAT`` and ``SO_SNDBUF`` when the port's entry gives them (0: leave the default).

``stats`` counts the connections tuned and the options the kernel refused.

    pybpfgen compile examples/gallery/tcp_tuning.py -o build/
    pybpfgen load build/tcp_tuning.bpf.o --cgroup /sys/fs/cgroup/unified/app
    pybpfgen map set tcp_tuning tuned_ports 6379 '{"nodelay": 1, "notsent_lowat": 16384, "sndbuf": 0}'
"""
from pybpfgen.lang import *


class Tuning(Struct):
    nodelay: u32  # 1: set TCP_NODELAY
    notsent_lowat: u32  # bytes of unsent data above which the socket is not writable (0: the default)
    sndbuf: u32  # the send buffer, in bytes (0: the default)


class Stats(Struct):
    tuned: u64  # connections tuned
    refused: u64  # options the kernel refused (a bpf_setsockopt that returned an error)


tuned_ports = Hash(key=u32, value=Tuning, max_entries=256)
stats = Array(value=Stats, max_entries=1)


@sock_ops
def tcp_tuning(ctx: SockOps) -> int:
    op = ctx.op
    if op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB and op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
        return 1
    t = tuned_ports.lookup(ctx.local_port)  # a server's port
    if t is None:
        t = tuned_ports.lookup(ctx.remote_port)  # the port a client connected to
    if t is None:
        return 1
    refused: u64 = 0
    if t.value.nodelay != 0:
        if bpf_setsockopt(ctx, SOL_TCP, TCP_NODELAY, 1) != 0:
            refused += 1
    if bpf_setsockopt(ctx, SOL_TCP, TCP_CONGESTION, "cubic") != 0:
        refused += 1
    if t.value.notsent_lowat != 0:
        if bpf_setsockopt(ctx, SOL_TCP, TCP_NOTSENT_LOWAT, t.value.notsent_lowat) != 0:
            refused += 1
    if t.value.sndbuf != 0:
        if bpf_setsockopt(ctx, SOL_SOCKET, SO_SNDBUF, t.value.sndbuf) != 0:
            refused += 1
    s = stats.lookup(0)
    if s is not None:
        atomic_add(s.value.tuned, 1)
        if refused != 0:
            atomic_add(s.value.refused, refused)
    return 1
