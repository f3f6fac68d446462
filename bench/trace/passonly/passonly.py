"""Issue 11 experiment: sockets in a sockhash whose sk_msg program never redirects (always SK_PASS).

Both ends of every connection whose port is in ``policy_ports`` go into ``socks`` at ESTABLISHED; every message
takes the TCP path through tcp_bpf_sendmsg -> tcp_bpf_push, and every recv() goes through tcp_bpf_recvmsg.
Nothing is ever redirected, so a spurious EAGAIN here cannot come from the redirect path or the budget.
"""
from pybpfgen.lang import *


class Key(Struct):
    netns: u64
    local_port: u32
    remote_port: u32
    local_ip: u32
    remote_ip: u32


socks = SockHash(key=Key, value=u64, max_entries=1024)
policy_ports = Hash(key=u32, value=u32, max_entries=64)


@sock_ops
def pass_sockops(ctx: SockOps) -> int:
    op = ctx.op
    if op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB and op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
        return 1
    if ctx.family != AF_INET:
        return 1
    if ctx.local_port not in policy_ports and ctx.remote_port not in policy_ports:
        return 1
    k = Key(netns=bpf_get_netns_cookie(ctx), local_port=ctx.local_port, remote_port=ctx.remote_port,
            local_ip=ctx.local_ip4, remote_ip=ctx.remote_ip4)
    socks.update(ctx, k, BPF_ANY)
    return 1


@sk_msg(socks)
def pass_msg(msg: SkMsg) -> int:
    return SK_PASS
