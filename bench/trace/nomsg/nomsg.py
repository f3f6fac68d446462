"""Issue 11 experiment: sockets in a sockhash with no sk_msg program at all.

Both ends of every connection whose port is in ``policy_ports`` go into ``socks`` at ESTABLISHED. Without an
sk_msg program the kernel keeps tcp_sendmsg for sending (TCP_BPF_BASE), but every recv() goes through
tcp_bpf_recvmsg. Nothing is ever redirected, so a spurious EAGAIN here cannot come from the redirect path, the
budget or tcp_bpf_push.
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


