"""Accelerate only the web app's connections to redis (the tutorial's policy, docs/tutorial.md).

Load it into the cgroup that holds the web app and redis (``pybpfgen load --cgroup``): only
sockets created by processes in that cgroup's subtree reach ``track``. Of those, a TCP
connection is accelerated when its local or remote port is in ``policy_ports``
(``pybpfgen policy add --port 6379 --object webapp_redis``).

Deliberately small: IPv4 only, both ends in one network namespace. Its one safety rule is
that a connection's first message decides its path for good: if the peer is not in the
sockhash yet, the connection stays on the TCP path, so bytes never overtake each other.
``programs/accel.py`` adds IPv6, pairing across namespaces and a memory budget for one-way
streams (docs/hazards.md).
"""
from pybpfgen.lang import *

REDIRECT = 1  # conns value: messages go straight to the peer socket
KERNEL = 2  # conns value: messages take the TCP path for the rest of the connection


class SockKey(Struct):
    """One socket, as it sees its connection."""

    netns: u64
    local_ip: u32
    remote_ip: u32
    local_port: u32
    remote_port: u32


class Counters(Struct):
    redirected: u64
    missed: u64


socks = SockHash(key=SockKey, value=u64, max_entries=4096)
conns = LRUHash(key=SockKey, value=u32, max_entries=8192)
policy_ports = Hash(key=u32, value=u32, max_entries=16)
stats = PerCPUArray(value=Counters, max_entries=1)


def count(redirected: bool):
    s = stats.lookup(0)
    if s is not None:
        if redirected:
            s.value.redirected += 1
        else:
            s.value.missed += 1


@sock_ops
def track(ctx: SockOps) -> int:
    op = ctx.op
    if op == BPF_SOCK_OPS_STATE_CB:
        if ctx.args1 == BPF_TCP_CLOSE:
            conns.delete(SockKey(bpf_get_netns_cookie(ctx), ctx.local_ip4, ctx.remote_ip4,
                                 ctx.local_port, ctx.remote_port))
        return 1
    if op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB and op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
        return 1
    if ctx.family != AF_INET:
        return 1
    if ctx.local_port not in policy_ports and ctx.remote_port not in policy_ports:
        return 1
    me = SockKey(bpf_get_netns_cookie(ctx), ctx.local_ip4, ctx.remote_ip4, ctx.local_port, ctx.remote_port)
    socks.update(ctx, me, BPF_ANY)
    bpf_sock_ops_cb_flags_set(ctx, BPF_SOCK_OPS_STATE_CB_FLAG)  # tell us when it closes
    return 1


@sk_msg(socks)
def redirect(msg: SkMsg) -> int:
    netns = bpf_get_netns_cookie(msg)
    me = SockKey(netns, msg.local_ip4, msg.remote_ip4, msg.local_port, msg.remote_port)
    peer = SockKey(netns, msg.remote_ip4, msg.local_ip4, msg.remote_port, msg.local_port)
    mode = conns.lookup(me)
    if mode is not None and mode.value == KERNEL:
        count(False)
        return SK_PASS
    if socks.redirect(msg, peer, BPF_F_INGRESS) == SK_PASS:
        if mode is None:
            conns.update(me, REDIRECT)
        count(True)
        return SK_PASS
    conns.update(me, KERNEL)  # first message, or the peer is gone: the TCP path from now on
    count(False)
    return SK_PASS
