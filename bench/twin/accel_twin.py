"""DSL transcription of ``accel_twin.bpf.c`` (the C reference accelerator) with exactly its semantics.

Used only to compare pybpfgen's code with clang's for the same program
(``python3 bench/insn_count.py``). The product's accelerator is ``programs/accel.py``.
"""
from pybpfgen.lang import *


class sock_key(Struct):
    sip4: u32
    dip4: u32
    sport: u32  # host byte order
    dport: u32  # host byte order


sock_hash = SockHash(key=sock_key, value=u32, max_entries=65536)
accel_ports = Hash(key=u32, value=u32, max_entries=1024)  # ports to accelerate; value unused


@sock_ops
def accel_sockops(skops: SockOps) -> int:
    op = skops.op
    if op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB and op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
        return 1
    if skops.family != AF_INET:
        return 1
    lport = skops.local_port
    rport = skops.remote_port
    if lport not in accel_ports and rport not in accel_ports:
        return 1
    key = sock_key(sip4=skops.local_ip4, dip4=skops.remote_ip4, sport=lport, dport=rport)
    bpf_sock_hash_update(skops, sock_hash, key, BPF_ANY)
    return 1


@sk_msg(sock_hash)
def accel_redirect(msg: SkMsg) -> int:
    if msg.family != AF_INET:
        return SK_PASS
    peer = sock_key(sip4=msg.remote_ip4, dip4=msg.local_ip4, sport=msg.remote_port, dport=msg.local_port)
    bpf_msg_redirect_hash(msg, sock_hash, peer, BPF_F_INGRESS)
    return SK_PASS
