"""The accelerator's known hazards: what the kernel's sockmap paths get wrong for applications, measured on the
kernel lines named, each with what to do (docs/hazards.md). ``pybpfgen doctor`` shows those of the running kernel.
"""
from __future__ import annotations

from typing import Any

# Hazards measured on the running kernel line; (first affected, last affected or None), text, what to do.
HAZARDS: list[dict[str, Any]] = [
    {"name": "splice-reader", "kernels": ((4, 14), None),
     "detail": "a splice(2) reader on an accelerated socket receives nothing, or bytes out of order: the "
               "sockmap ingress queue is invisible to splice (measured on 6.18: 0 of 1 048 576 bytes; after a "
               "demotion the newer TCP-path bytes came before the older redirected ones)",
     "fix": "keep applications that splice (e.g. splicing proxies) out of the policy (`pybpfgen policy remove "
            "--port N`) or out of the cgroup (`pybpfgen load --cgroup DIR`); see docs/hazards.md"},
    {"name": "msg-waitall", "kernels": ((4, 14), None),
     "detail": "recv(n, MSG_WAITALL) on an accelerated socket returns as soon as redirected bytes are there, not "
               "when n bytes are: tcp_bpf_recvmsg ignores MSG_WAITALL (measured on 6.18 with records written in "
               "parts: 16 of 16 reads short, e.g. 1 of 2 B, 100 of 200 B, 262144 of 1048576 B; after a demotion "
               "recv(19200) returned the 16384 redirected bytes; the kernel path returned every read in full; no "
               "byte lost or reordered). Applications that read fixed-size records with MSG_WAITALL and do not "
               "check the length misparse",
     "fix": "keep applications that rely on MSG_WAITALL out of the policy (`pybpfgen policy remove --port N`) or "
            "out of the cgroup (`pybpfgen load --cgroup DIR`), or make them loop until the record is complete; "
            "see docs/hazards.md"},
    {"name": "msg-oob", "kernels": ((4, 14), None),
     "detail": "TCP urgent data (MSG_OOB) is not urgent on an accelerated socket: an sk_msg program cannot see "
               "MSG_OOB, the sender's urgent byte is redirected into the peer's sockmap queue as ordinary data (no "
               "urgent pointer: no POLLPRI, SIOCATMARK never true, hence no SIGURG either), and recv(1, MSG_OOB) reads that "
               "queue like a plain recv (tcp_bpf_recvmsg/sk_msg_recvmsg look only at MSG_PEEK). Measured on 6.18: "
               "'abc', urgent '!', 'def' -> recv(1, MSG_OOB) returned 'a' and the inline stream was 'bc!def' "
               "(kernel path: '!' and 'abcdef'); with SO_OOBINLINE the bytes are right ('abc!def') but the mark "
               "is gone; 4 of 4 rounds wrong, both directions, no byte lost",
     "fix": "keep applications that use TCP urgent data (telnet, rlogin, FTP ABOR, ...) out of the policy "
            "(`pybpfgen policy remove --port N`) or out of the cgroup (`pybpfgen load --cgroup DIR`); see "
            "docs/hazards.md"},
    {"name": "socket-options", "kernels": ((4, 14), None),
     "detail": "the sockmap paths ignore some socket options and flags (measured on 6.18, "
               "tests/kernel/test_socket_options_hazards.py): SO_PEEK_OFF (every MSG_PEEK starts at the head of "
               "the queue: '0123' twice instead of '0123', '4567'), SO_RCVLOWAT (poll wakes and recv returns 50 B "
               "with a low-water mark of 100), MSG_ZEROCOPY (the data arrives, but the sender never gets the "
               "completion notifications it must wait for before reusing its buffers: 0 vs 2)",
     "fix": "keep applications that use SO_PEEK_OFF, SO_RCVLOWAT or MSG_ZEROCOPY out of the policy or the cgroup "
            "(`pybpfgen policy remove --port N`, `pybpfgen load --cgroup DIR`); see docs/hazards.md"},
    {"name": "blocking-recv-eagain", "kernels": ((4, 20), None),
     "detail": "a blocking recv() on a socket in the sockhash can fail with EAGAIN: tcp_bpf_recvmsg sleeps once and "
               "returns -EAGAIN when that wakeup brought no data. Wakeups without data come from the same socket's "
               "writer (sending on the TCP path, waiting for send space: the ACK's write-space wakeup) and from its "
               "own state changes (its FIN acknowledged): after a demotion, which leaves sockets in the sockhash "
               "sending on the TCP path, and also without one (deterministic: tests/kernel/test_blocking_recv_eagain.py). "
               "Measured on 6.18, 2 vCPUs: bench/duplex_stress.py (16 MiB each way, 2 CPU hogs) 9 of 1000 rounds with "
               "the default budget, 24 of 500 with budget 8; the stress mode (`doctor --conformance --stress`, CPU "
               "limits, hogs, pauses) 327 of 1080 rounds (full_duplex 165 of 600, short_conns 65 of 120), with the "
               "socket-local design 388 of 1000 on a busier machine (81 vs 71 of 200 for the two designs on the same "
               "round plans); the kernel path 0 in all of them; no byte lost or reordered (a reader that retries gets "
               "everything). An "
               "application that takes EAGAIN on a blocking socket for an error stops reading and its peer blocks",
     "fix": "keep applications that read a socket with blocking calls (and write it from another thread) out of the "
            "policy or the cgroup (`pybpfgen policy remove --port N`, `pybpfgen load --cgroup DIR`), or make them "
            "retry EAGAIN; event-loop (non-blocking) applications are not affected. The kernel fix is in "
            "docs/upstream-tcp_bpf_recvmsg.md; see docs/hazards.md"},
    # limits of the current accelerator (programs/accel.py), measured on 6.18 (docs/benchmarks.md, tests/kernel)
    {"name": "bulk-streams-slower", "kernels": ((4, 17), None),
     "detail": "a socket in the sockhash sends through the sockmap (tcp_bpf) path even on the TCP path; a stream "
               "demoted by the unanswered budget leaves the sockhash only when its peer never redirected (one-way "
               "streams: iperf3 0.90-1.08x the kernel path's throughput on 6.18, 2 vCPUs); a stream whose peer sent "
               "first (a request, then a bulk response) stays inserted: 0.75-0.91x; kernel memory stays flat",
     "fix": "keep bulk-transfer ports out of the policy; accelerate request/response traffic (docs/benchmarks.md)"},
    {"name": "unpaired-end", "kernels": ((4, 17), None), "status": "info",
     "detail": "a selected socket whose peer is not accelerated (peer outside the cgroup or the policy, or on "
               "another host) is inserted and waits for its peer; its first write misses, and once its data is "
               "acknowledged it leaves the sockhash (measured: redirected 0, missed 1, released 1, data intact)",
     "fix": "nothing to do for correctness; to accelerate such connections, load into a cgroup holding both ends "
            "and use policies that select both ends (e.g. `policy add --cidr NET --side any`)"},
    {"name": "mptcp", "kernels": ((5, 6), None), "status": "info",
     "detail": "MPTCP connections are never accelerated: the sockhash refuses their subflows, and the program "
               "then leaves them unpaired (measured: 0 inserted, 0 paired, 0 redirected, 4 MiB each way intact)",
     "fix": "nothing to do; use TCP for connections that should be accelerated"},
    {"name": "tcp-counters", "kernels": ((4, 14), None), "status": "info",
     "detail": "redirected bytes bypass TCP, so TCP_INFO byte counters (ss -ti, monitoring agents) do not count "
               "them (measured on 6.18: 100 001 B exchanged, tcpi_bytes_acked 1 and tcpi_bytes_received 0 "
               "accelerated, 100 002 / 100 001 on the kernel path)",
     "fix": "count accelerated traffic with `pybpfgen status` (redirected messages) or at the application"},
    {"name": "reset-socket-stays", "kernels": ((4, 17), None), "status": "info",
     "detail": "a socket reset by its peer stays in the sockhash until its owner closes it (no unhash hook; "
               "measured: 1 entry after RST, 0 after close)",
     "fix": "applications should close sockets after errors (they usually do)"},
]


def doctor_checks(report: dict) -> list[dict]:
    """The hazards of the running kernel, as ``doctor`` checks (``hazard:<name>``)."""
    ver = tuple(report["kernel"]["version"])
    out = []
    for hz in HAZARDS:
        first, last = hz["kernels"]
        if ver >= first and (last is None or ver <= last):
            out.append({"name": f"hazard:{hz['name']}", "status": hz.get("status", "warn"), "detail": hz["detail"],
                        "fix": hz["fix"]})
    return out
