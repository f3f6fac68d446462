"""Per-connection RTT statistics streamed to user space through a ring buffer.

When a TCP connection of the cgroup is established (either side), the program asks the kernel for an RTT
callback (``BPF_SOCK_OPS_RTT_CB_FLAG``); on each one it reserves a record in the ring buffer, fills it with the
connection's identity (socket cookie, ports) and its RTT statistics, and submits it. Read them with
``pybpfgen events rtt_events events`` (or ``kernel_loader.events.read_events`` from Python).
"""
from pybpfgen.lang import (
    BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB, BPF_SOCK_OPS_RTT_CB,
    BPF_SOCK_OPS_RTT_CB_FLAG, RingBuf, SockOps, Struct, bpf_get_socket_cookie, bpf_sock_ops_cb_flags_set, sock_ops,
    u32, u64,
)


class RttEvent(Struct):
    cookie: u64          # the socket's cookie: one per connection end
    bytes_acked: u64     # bytes the peer acknowledged so far
    srtt_us: u32         # smoothed RTT in microseconds (the kernel keeps it << 3)
    rtt_min_us: u32      # the minimum RTT seen
    snd_cwnd: u32        # congestion window (segments)
    local_port: u32      # host byte order
    remote_port: u32     # host byte order


events = RingBuf(event=RttEvent, max_entries=1 << 16)


@sock_ops
def rtt_events(ctx: SockOps) -> int:
    op = ctx.op
    if op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB or op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
        bpf_sock_ops_cb_flags_set(ctx, ctx.cb_flags | BPF_SOCK_OPS_RTT_CB_FLAG)
        return 1
    if op != BPF_SOCK_OPS_RTT_CB:
        return 1
    ev = events.reserve(RttEvent)
    if ev is None:          # the buffer is full: user space is behind; this sample is lost
        return 1
    ev.cookie = bpf_get_socket_cookie(ctx)
    ev.srtt_us = ctx.srtt_us >> 3
    ev.rtt_min_us = ctx.rtt_min
    ev.snd_cwnd = ctx.snd_cwnd
    ev.bytes_acked = ctx.bytes_acked
    ev.local_port = ctx.local_port
    ev.remote_port = ctx.remote_port
    events.submit(ev)
    return 1
