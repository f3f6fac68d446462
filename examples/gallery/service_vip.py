"""A service VIP answered by a local backend, the way Cilium's socket LB and Merbridge do it: connect() itself
is redirected, so no packet is ever addressed to the VIP and no NAT is needed.

``cgroup_connect4`` runs when a process of the cgroup connects an IPv4 socket (TCP, or UDP): when the
destination is a service of ``services`` (a VIP and port, e.g. 198.18.200.1:80, that nothing listens on), it
rewrites the destination to the service's backend (e.g. 127.0.0.1:8080) and remembers, in the socket's own storage
(freed with the socket), which VIP the application asked for. ``cgroup_getpeername4`` shows the application that
VIP again, so it cannot tell: its peer is the address it connected to.

    pybpfgen compile examples/gallery/ -o build/
    pybpfgen load build/service_vip.bpf.o --cgroup /sys/fs/cgroup/unified/myapp
    # 198.18.200.1:80 -> 127.0.0.1:8080; addresses as the kernel's u32, network byte order
    # (int.from_bytes(socket.inet_aton(ip), "little")), ports in host byte order as everywhere in pybpfgen
    pybpfgen map set service_vip services '{"ip4": 29889222, "port": 80}' '{"ip4": 16777343, "port": 8080}'

"""
from pybpfgen.lang import *

ALLOW = 1


class Service(Struct):
    ip4: u32  # network byte order
    port: u32  # host byte order


services = Hash(key=Service, value=Service, max_entries=256)  # VIP:port -> backend address:port
origins = SkStorage(value=Service)  # per socket: the VIP:port it connected to


@cgroup_connect4
def to_backend(ctx: SockAddr) -> int:
    vip = Service(ctx.user_ip4, ctx.user_port)
    backend = services.lookup(vip)
    if backend is None:
        origins.delete(ctx.sk)  # a UDP socket may connect again: forget an earlier VIP
        return ALLOW  # not a service: connect where the application asked
    origin = origins.get(ctx.sk, create=True)
    if origin is not None:
        origin.value = vip
    ctx.user_ip4 = backend.value.ip4
    ctx.user_port = backend.value.port
    return ALLOW


@cgroup_getpeername4
def show_vip(ctx: SockAddr) -> int:
    vip = origins.get(ctx.sk)
    if vip is not None:
        ctx.user_ip4 = vip.value.ip4
        ctx.user_port = vip.value.port
    return ALLOW
