"""Socket options: which ``(level, optname)`` pairs the kernel's ``bpf_setsockopt`` / ``bpf_getsockopt`` accept,
and the type of each option's value.

The kernel (net/core/filter.c: ``sol_socket_sockopt``, ``sol_tcp_sockopt``, ``bpf_sol_tcp_setsockopt``,
``sol_ip_sockopt``, ``sol_ipv6_sockopt``, Linux 6.18) accepts a short list of options per level and refuses the
others with -EINVAL at run time; pybpfgen checks the list at compile time instead, together with the type of the
value: ``"int"`` options take a C ``int`` (4 bytes; an ``i32`` in the DSL), ``"str"`` options a name
(``TCP_CONGESTION``: a congestion-control algorithm, at most ``TCP_CA_NAME_MAX - 1`` characters; ``SO_BINDTODEVICE``:
an interface name, at most 15 characters). Some options can only be set (``TCP_BPF_*``, ``SO_BINDTODEVICE``).

Import-free but for :mod:`.constants`. ``tests/loader/test_sockopt_kernel.py`` checks the table against the
running kernel: every option listed is accepted by ``bpf_setsockopt``/``bpf_getsockopt`` as listed.
"""
from __future__ import annotations

from . import constants as K

LEVELS: dict[int, str] = {K.SOL_SOCKET: "SOL_SOCKET", K.SOL_TCP: "SOL_TCP", K.SOL_IP: "SOL_IP", K.SOL_IPV6: "SOL_IPV6"}


class SockOpt:
    __slots__ = ("level", "name", "optname", "kind", "size", "can_set", "can_get")

    def __init__(self, level: int, name: str, kind: str = "int", size: int = 4, can_set: bool = True,
                 can_get: bool = True):
        self.level = level  # SOL_*
        self.name = name  # the constant's name: "TCP_NODELAY"
        self.optname = getattr(K, name)
        self.kind = kind  # "int" (a C int) | "str" (a NUL-terminated name of at most size - 1 characters)
        self.size = size  # bytes passed to the helper (optlen)
        self.can_set = can_set
        self.can_get = can_get

    def __repr__(self) -> str:
        return f"SockOpt({LEVELS[self.level]}, {self.name})"


def _opts() -> list[SockOpt]:
    S, T, IP, IP6 = K.SOL_SOCKET, K.SOL_TCP, K.SOL_IP, K.SOL_IPV6
    ints = [(S, n) for n in ("SO_REUSEADDR", "SO_SNDBUF", "SO_RCVBUF", "SO_KEEPALIVE", "SO_PRIORITY", "SO_REUSEPORT",
                             "SO_RCVLOWAT", "SO_MARK", "SO_MAX_PACING_RATE", "SO_BINDTOIFINDEX", "SO_TXREHASH")]
    ints += [(T, n) for n in ("TCP_NODELAY", "TCP_MAXSEG", "TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT",
                              "TCP_SYNCNT", "TCP_WINDOW_CLAMP", "TCP_THIN_LINEAR_TIMEOUTS", "TCP_USER_TIMEOUT",
                              "TCP_NOTSENT_LOWAT", "TCP_SAVE_SYN", "TCP_BPF_SOCK_OPS_CB_FLAGS")]
    ints += [(IP, "IP_TOS"), (IP6, "IPV6_TCLASS"), (IP6, "IPV6_AUTOFLOWLABEL")]
    out = [SockOpt(level, name) for level, name in ints]
    # set-only: the TCP_BPF_* knobs of bpf_sol_tcp_setsockopt
    out += [SockOpt(T, n, can_get=False) for n in ("TCP_BPF_IW", "TCP_BPF_SNDCWND_CLAMP", "TCP_BPF_DELACK_MAX",
                                                     "TCP_BPF_RTO_MIN")]
    out.append(SockOpt(T, "TCP_CONGESTION", "str", K.TCP_CA_NAME_MAX))
    out.append(SockOpt(S, "SO_BINDTODEVICE", "str", 16, can_get=False))  # IFNAMSIZ
    return out


OPTIONS: dict[tuple[int, int], SockOpt] = {(o.level, o.optname): o for o in _opts()}


def lookup(level: int, optname: int) -> SockOpt | None:
    return OPTIONS.get((level, optname))


def names_for(level: int, setting: bool) -> list[str]:
    """The options of ``level`` that bpf_setsockopt (``setting``) or bpf_getsockopt accepts."""
    return [o.name for o in OPTIONS.values() if o.level == level and (o.can_set if setting else o.can_get)]
