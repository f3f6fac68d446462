"""The kernel constants a policy compares with or passes to helpers: one import-free table.

Every name here is exported by ``pybpfgen.lang`` (``from pybpfgen.lang import *``) and usable anywhere a constant
is (a comparison, a helper argument, a return value). The values are the kernel's UAPI values; the groups below say
where each comes from. ``tests/compiler/test_constants.py`` compares every value with the installed UAPI/libc headers
(``/usr/include``: compiled with clang) and with the running kernel's BTF enums where they exist, and fails on a name
found in neither.

Plain data with no imports, so that the loader, the compiler and the socket-option table (:mod:`.sockopts`) can all
read it. A new constant: add it to its group (and to ``GROUPS``); the test checks it.
"""

# every constant, as `from pybpfgen.lang import *` brings them (a literal, for type checkers; the test checks it)
__all__ = [
    "SK_PASS", "SK_DROP", "XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT", "TC_ACT_UNSPEC",
    "TC_ACT_OK", "TC_ACT_RECLASSIFY", "TC_ACT_SHOT", "TC_ACT_PIPE", "TC_ACT_STOLEN", "TC_ACT_QUEUED",
    "TC_ACT_REPEAT", "TC_ACT_REDIRECT", "TC_ACT_TRAP", "TCX_NEXT", "TCX_PASS", "TCX_DROP", "TCX_REDIRECT", "BPF_ANY", "BPF_NOEXIST", "BPF_EXIST", "BPF_F_INGRESS",
    "BPF_F_NO_PREALLOC", "BPF_SK_STORAGE_GET_F_CREATE", "BPF_RB_NO_WAKEUP", "BPF_RB_FORCE_WAKEUP", "BPF_SOCK_OPS_VOID",
    "BPF_SOCK_OPS_TIMEOUT_INIT", "BPF_SOCK_OPS_RWND_INIT", "BPF_SOCK_OPS_TCP_CONNECT_CB",
    "BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB", "BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB", "BPF_SOCK_OPS_NEEDS_ECN",
    "BPF_SOCK_OPS_BASE_RTT", "BPF_SOCK_OPS_RTO_CB", "BPF_SOCK_OPS_RETRANS_CB", "BPF_SOCK_OPS_STATE_CB",
    "BPF_SOCK_OPS_TCP_LISTEN_CB", "BPF_SOCK_OPS_RTT_CB", "BPF_SOCK_OPS_PARSE_HDR_OPT_CB",
    "BPF_SOCK_OPS_HDR_OPT_LEN_CB", "BPF_SOCK_OPS_WRITE_HDR_OPT_CB", "BPF_SOCK_OPS_TSTAMP_SCHED_CB",
    "BPF_SOCK_OPS_TSTAMP_SND_SW_CB", "BPF_SOCK_OPS_TSTAMP_SND_HW_CB", "BPF_SOCK_OPS_TSTAMP_ACK_CB",
    "BPF_SOCK_OPS_TSTAMP_SENDMSG_CB", "BPF_SOCK_OPS_RTO_CB_FLAG", "BPF_SOCK_OPS_RETRANS_CB_FLAG",
    "BPF_SOCK_OPS_STATE_CB_FLAG", "BPF_SOCK_OPS_RTT_CB_FLAG", "BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG",
    "BPF_SOCK_OPS_PARSE_UNKNOWN_HDR_OPT_CB_FLAG", "BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG",
    "BPF_SOCK_OPS_ALL_CB_FLAGS", "BPF_TCP_ESTABLISHED", "BPF_TCP_SYN_SENT", "BPF_TCP_SYN_RECV",
    "BPF_TCP_FIN_WAIT1", "BPF_TCP_FIN_WAIT2", "BPF_TCP_TIME_WAIT", "BPF_TCP_CLOSE", "BPF_TCP_CLOSE_WAIT",
    "BPF_TCP_LAST_ACK", "BPF_TCP_LISTEN", "BPF_TCP_CLOSING", "BPF_TCP_NEW_SYN_RECV", "BPF_TCP_BOUND_INACTIVE",
    "AF_UNSPEC", "AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET", "AF_VSOCK", "AF_XDP",
    "SOCK_STREAM", "SOCK_DGRAM", "IPPROTO_IP", "IPPROTO_ICMP", "IPPROTO_TCP", "IPPROTO_UDP", "IPPROTO_IPV6", "IPPROTO_ICMPV6",
    "IPPROTO_MPTCP", "SOL_IP", "SOL_SOCKET", "SOL_TCP", "SOL_IPV6", "SO_REUSEADDR", "SO_SNDBUF", "SO_RCVBUF",
    "SO_KEEPALIVE", "SO_PRIORITY", "SO_REUSEPORT", "SO_RCVLOWAT", "SO_BINDTODEVICE", "SO_MARK",
    "SO_MAX_PACING_RATE", "SO_BINDTOIFINDEX", "SO_TXREHASH", "TCP_NODELAY", "TCP_MAXSEG", "TCP_KEEPIDLE",
    "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_SYNCNT", "TCP_WINDOW_CLAMP", "TCP_CONGESTION",
    "TCP_THIN_LINEAR_TIMEOUTS", "TCP_USER_TIMEOUT", "TCP_NOTSENT_LOWAT", "TCP_SAVE_SYN", "TCP_BPF_IW",
    "TCP_BPF_SNDCWND_CLAMP", "TCP_BPF_DELACK_MAX", "TCP_BPF_RTO_MIN", "TCP_BPF_SOCK_OPS_CB_FLAGS",
    "TCP_CA_NAME_MAX", "IP_TOS", "IPV6_TCLASS", "IPV6_AUTOFLOWLABEL",
]

# ---------------------------------------------------------------- linux/bpf.h: enum sk_action, enum xdp_action
SK_DROP = 0
SK_PASS = 1

XDP_ABORTED = 0
XDP_DROP = 1
XDP_PASS = 2
XDP_TX = 3
XDP_REDIRECT = 4

# ---------------------------------------------------------------- linux/pkt_cls.h: tc verdicts
TC_ACT_UNSPEC = -1
TC_ACT_OK = 0
TC_ACT_RECLASSIFY = 1
TC_ACT_SHOT = 2
TC_ACT_PIPE = 3
TC_ACT_STOLEN = 4
TC_ACT_QUEUED = 5
TC_ACT_REPEAT = 6
TC_ACT_REDIRECT = 7
TC_ACT_TRAP = 8
# linux/bpf.h, enum tcx_action_base (Linux >= 6.6): what tcx programs return
TCX_NEXT = -1
TCX_PASS = 0
TCX_DROP = 2
TCX_REDIRECT = 7

# ---------------------------------------------------------------- linux/bpf.h: map update and helper flags
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2
BPF_F_INGRESS = 1
BPF_F_NO_PREALLOC = 1
BPF_SK_STORAGE_GET_F_CREATE = 1
BPF_RB_NO_WAKEUP = 1
BPF_RB_FORCE_WAKEUP = 2

# ---------------------------------------------------------------- linux/bpf.h: sock_ops callbacks (SockOps.op)
BPF_SOCK_OPS_VOID = 0
BPF_SOCK_OPS_TIMEOUT_INIT = 1
BPF_SOCK_OPS_RWND_INIT = 2
BPF_SOCK_OPS_TCP_CONNECT_CB = 3
BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB = 4
BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB = 5
BPF_SOCK_OPS_NEEDS_ECN = 6
BPF_SOCK_OPS_BASE_RTT = 7
BPF_SOCK_OPS_RTO_CB = 8
BPF_SOCK_OPS_RETRANS_CB = 9
BPF_SOCK_OPS_STATE_CB = 10
BPF_SOCK_OPS_TCP_LISTEN_CB = 11
BPF_SOCK_OPS_RTT_CB = 12
BPF_SOCK_OPS_PARSE_HDR_OPT_CB = 13
BPF_SOCK_OPS_HDR_OPT_LEN_CB = 14
BPF_SOCK_OPS_WRITE_HDR_OPT_CB = 15
BPF_SOCK_OPS_TSTAMP_SCHED_CB = 16  # Linux >= 6.14 (kernel BTF; not in older headers)
BPF_SOCK_OPS_TSTAMP_SND_SW_CB = 17
BPF_SOCK_OPS_TSTAMP_SND_HW_CB = 18
BPF_SOCK_OPS_TSTAMP_ACK_CB = 19
BPF_SOCK_OPS_TSTAMP_SENDMSG_CB = 20

# ---------------------------------------------------------------- linux/bpf.h: bpf_sock_ops_cb_flags_set flags
BPF_SOCK_OPS_RTO_CB_FLAG = 1
BPF_SOCK_OPS_RETRANS_CB_FLAG = 2
BPF_SOCK_OPS_STATE_CB_FLAG = 4
BPF_SOCK_OPS_RTT_CB_FLAG = 8
BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG = 16
BPF_SOCK_OPS_PARSE_UNKNOWN_HDR_OPT_CB_FLAG = 32
BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG = 64
BPF_SOCK_OPS_ALL_CB_FLAGS = 127

# ---------------------------------------------------------------- linux/bpf.h: TCP states (SockOps.state, STATE_CB args)
BPF_TCP_ESTABLISHED = 1
BPF_TCP_SYN_SENT = 2
BPF_TCP_SYN_RECV = 3
BPF_TCP_FIN_WAIT1 = 4
BPF_TCP_FIN_WAIT2 = 5
BPF_TCP_TIME_WAIT = 6
BPF_TCP_CLOSE = 7
BPF_TCP_CLOSE_WAIT = 8
BPF_TCP_LAST_ACK = 9
BPF_TCP_LISTEN = 10
BPF_TCP_CLOSING = 11
BPF_TCP_NEW_SYN_RECV = 12
BPF_TCP_BOUND_INACTIVE = 13  # Linux >= 6.7 (kernel BTF; not in older headers)

# ---------------------------------------------------------------- linux/socket.h: address families
AF_UNSPEC = 0
AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10
AF_NETLINK = 16
AF_PACKET = 17
AF_VSOCK = 40
AF_XDP = 44

# ---------------------------------------------------------------- linux/net.h: socket types (SockAddr.type)
SOCK_STREAM = 1
SOCK_DGRAM = 2

# ---------------------------------------------------------------- linux/in.h: IP protocols
IPPROTO_IP = 0
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_IPV6 = 41
IPPROTO_ICMPV6 = 58
IPPROTO_MPTCP = 262

# ---------------------------------------------------------------- socket option levels (bpf_setsockopt/getsockopt)
SOL_IP = 0
SOL_SOCKET = 1
SOL_TCP = 6
SOL_IPV6 = 41

# ---------------------------------------------------------------- asm-generic/socket.h: SOL_SOCKET options
SO_REUSEADDR = 2
SO_SNDBUF = 7
SO_RCVBUF = 8
SO_KEEPALIVE = 9
SO_PRIORITY = 12
SO_REUSEPORT = 15
SO_RCVLOWAT = 18
SO_BINDTODEVICE = 25
SO_MARK = 36
SO_MAX_PACING_RATE = 47
SO_BINDTOIFINDEX = 62
SO_TXREHASH = 74

# ---------------------------------------------------------------- linux/tcp.h and linux/bpf.h: SOL_TCP options
TCP_NODELAY = 1
TCP_MAXSEG = 2
TCP_KEEPIDLE = 4
TCP_KEEPINTVL = 5
TCP_KEEPCNT = 6
TCP_SYNCNT = 7
TCP_WINDOW_CLAMP = 10
TCP_CONGESTION = 13
TCP_THIN_LINEAR_TIMEOUTS = 16
TCP_USER_TIMEOUT = 18
TCP_NOTSENT_LOWAT = 25
TCP_SAVE_SYN = 27
TCP_BPF_IW = 1001
TCP_BPF_SNDCWND_CLAMP = 1002
TCP_BPF_DELACK_MAX = 1003
TCP_BPF_RTO_MIN = 1004
TCP_BPF_SOCK_OPS_CB_FLAGS = 1008  # Linux >= 6.10 (kernel BTF; not in older headers)
TCP_CA_NAME_MAX = 16  # net/tcp.h: the longest congestion-control name, with its NUL

# ---------------------------------------------------------------- linux/in.h, linux/in6.h: SOL_IP / SOL_IPV6 options
IP_TOS = 1
IPV6_TCLASS = 67
IPV6_AUTOFLOWLABEL = 70

_NAMES = [n for n in globals() if n[:1].isupper()]
# name -> the group it belongs to (docs/language.md, "Constants", lists them by group)
GROUPS: dict[str, tuple[str, ...]] = {
    "sk_msg / sk_skb verdicts": ("SK_PASS", "SK_DROP"),
    "XDP actions": ("XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"),
    "tc verdicts": ("TC_ACT_UNSPEC", "TC_ACT_OK", "TC_ACT_RECLASSIFY", "TC_ACT_SHOT", "TC_ACT_PIPE", "TC_ACT_STOLEN",
                    "TC_ACT_QUEUED", "TC_ACT_REPEAT", "TC_ACT_REDIRECT", "TC_ACT_TRAP", "TCX_NEXT", "TCX_PASS", "TCX_DROP",
                    "TCX_REDIRECT"),
    "map and helper flags": ("BPF_ANY", "BPF_NOEXIST", "BPF_EXIST", "BPF_F_INGRESS", "BPF_F_NO_PREALLOC",
                             "BPF_SK_STORAGE_GET_F_CREATE", "BPF_RB_NO_WAKEUP", "BPF_RB_FORCE_WAKEUP"),
    "sock_ops callbacks": tuple(n for n in _NAMES if n.startswith("BPF_SOCK_OPS_") and not n.endswith(("FLAG", "FLAGS"))),
    "sock_ops callback flags": tuple(n for n in _NAMES if n.startswith("BPF_SOCK_OPS_") and n.endswith(("FLAG", "FLAGS"))),
    "TCP states": tuple(n for n in _NAMES if n.startswith("BPF_TCP_")),
    "address families": tuple(n for n in _NAMES if n.startswith("AF_")),
    "socket types": ("SOCK_STREAM", "SOCK_DGRAM"),
    "IP protocols": tuple(n for n in _NAMES if n.startswith("IPPROTO_")),
    "socket option levels": ("SOL_IP", "SOL_SOCKET", "SOL_TCP", "SOL_IPV6"),
    "SOL_SOCKET options": tuple(n for n in _NAMES if n.startswith("SO_")),
    "SOL_TCP options": tuple(n for n in _NAMES if n.startswith("TCP_")),
    "SOL_IP and SOL_IPV6 options": tuple(n for n in _NAMES if n.startswith(("IP_", "IPV6_"))),
}
VALUES: dict[str, int] = {n: globals()[n] for names in GROUPS.values() for n in names}
del _NAMES
