"""A service VIP answered by a local backend, the way Cilium's socket LB and Merbridge do it: connect() itself
is redirected, so no packet is ever addressed to the VIP and no NAT is needed.

``cgroup_connect4`` runs when a process of the cgroup connects an IPv4 socket (TCP, or UDP): when the
destination is a service of ``services`` (a VIP and port, e.g. 198.18.200.1:80, that nothing listens on), it
rewrites the destination to the service's backend (e.g. 127.0.0.1:8080) and remembers, by the socket's cookie,
which VIP the application asked for. ``cgroup_getpeername4`` shows the application that VIP again, so it cannot
tell: its peer is the address it connected to.

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
origins = LRUHash(key=u64, value=Service, max_entries=65536)  # socket cookie -> the VIP:port it connected to


@cgroup_connect4
def to_backend(ctx: SockAddr) -> int:
    vip = Service(ctx.user_ip4, ctx.user_port)
    backend = services.lookup(vip)
    if backend is None:
        return ALLOW  # not a service: connect where the application asked
    origins.update(bpf_get_socket_cookie(ctx), vip)
    ctx.user_ip4 = backend.value.ip4
    ctx.user_port = backend.value.port
    return ALLOW


@cgroup_getpeername4
def show_vip(ctx: SockAddr) -> int:
    vip = origins.lookup(bpf_get_socket_cookie(ctx))
    if vip is not None:
        ctx.user_ip4 = vip.value.ip4
        ctx.user_port = vip.value.port
    return ALLOW
