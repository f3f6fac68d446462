"""The floor of any design that must keep a socket in a sockhash while it sends on the TCP path (bench only).

Every TCP socket of a port in ``floor_ports`` is put into a sockhash when it becomes established; the sk_msg
program redirects nothing: it passes each socket's first message and applies that verdict to the next GiB
(``bpf_msg_apply_bytes``), exactly what ``programs/accel.py`` does for a socket on the TCP path for good. So a
stream measured with this object pays only what the kernel charges a socket for being in a sockhash with an sk_msg
program (``tcp_bpf_sendmsg`` and ``tcp_bpf_recvmsg`` instead of TCP's own), and nothing of the accelerator's.

``bench/iperf_bench.py --modes kernel,accel,floor`` measures it beside the kernel path and the accelerator: a
socket whose inbox was fed (something was redirected into it) must stay in the sockhash for as long as its
sockmap queue may hold bytes (docs/accel-design.md), so when it sends in bulk it cannot be faster than this floor.
"""
from pybpfgen.lang import *

floor_socks = SockHash(key=u64, value=u64, max_entries=65536)
floor_ports = Hash(key=u32, value=u32, max_entries=64)  # `pybpfgen map set sockhash_floor floor_ports PORT 1`


@sock_ops
def floor_sockops(ctx: SockOps) -> int:
    op = ctx.op
    if op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB and op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
        return 1
    if ctx.local_port not in floor_ports and ctx.remote_port not in floor_ports:
        return 1
    floor_socks.update(ctx, bpf_get_socket_cookie(ctx), BPF_ANY)
    return 1


@sk_msg(floor_socks)
def floor_pass(msg: SkMsg) -> int:
    bpf_msg_apply_bytes(msg, 1 << 30)
    return SK_PASS
