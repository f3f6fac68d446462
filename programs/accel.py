"""Sockmap accelerator for same-host TCP (IPv4).

When a TCP connection whose local or remote port is in ``policy_ports`` becomes
established, ``accel_sockops`` puts the socket into the ``socks`` sockhash under
the connection's 4-tuple as that socket sees it. ``accel_redirect`` runs on every
message sent by a socket in ``socks``: it looks up the peer (the same 4-tuple seen
from the other end) and, when the peer is there, moves the message straight into
the peer's receive queue, skipping TCP/IP, routing and veth. A miss always falls
back to the normal TCP path.

Addresses are in network byte order; ports in host byte order.
"""
from pybpfgen.lang import *


class SockKey(Struct):
    """One end of a TCP connection, as seen by the socket that owns it."""

    local_ip: u32
    remote_ip: u32
    local_port: u32
    remote_port: u32


class AccelStats(Struct):
    """Per-CPU counters of the redirect program (``pybpfgen status`` sums them)."""

    redirected: u64  # messages moved straight into the peer socket
    missed: u64  # messages that took the normal TCP path (peer not in the sockhash)


socks = SockHash(key=SockKey, value=u32, max_entries=65536)
policy_ports = Hash(key=u32, value=u32, max_entries=1024)  # `pybpfgen policy add --port N`
stats = PerCPUArray(value=AccelStats, max_entries=1)


@sock_ops
def accel_sockops(ctx: SockOps) -> int:
    op = ctx.op
    if op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB and op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
        return 1
    if ctx.family != AF_INET:
        return 1
    lport = ctx.local_port
    rport = ctx.remote_port
    if lport not in policy_ports and rport not in policy_ports:
        return 1
    socks.update(ctx, SockKey(ctx.local_ip4, ctx.remote_ip4, lport, rport), BPF_ANY)
    return 1


@sk_msg(socks)
def accel_redirect(msg: SkMsg) -> int:
    if msg.family != AF_INET:
        return SK_PASS
    peer = SockKey(local_ip=msg.remote_ip4, remote_ip=msg.local_ip4,
                   local_port=msg.remote_port, remote_port=msg.local_port)
    verdict = socks.redirect(msg, peer, BPF_F_INGRESS)
    counters = stats.lookup(0)
    if counters is not None:
        if verdict == SK_PASS:
            counters.value.redirected += 1
        else:
            counters.value.missed += 1
    return SK_PASS
