"""pybpfgen/target/constants.py against the kernel's own definitions: the UAPI and libc headers under /usr/include
(compiled, so macros that expand to other macros are followed) and the running kernel's BTF enums. Every constant
must be confirmed by at least one of them, and disagree with none."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

import pybpfgen.lang as lang
from pybpfgen.target import constants as C

HEADERS = ("sys/socket.h", "netinet/in.h", "netinet/tcp.h", "linux/bpf.h", "linux/pkt_cls.h")
# in no header: the kernel's include/net/tcp.h (TCP_CA_NAME_MAX is also checked against the kernel's struct)
KERNEL_INTERNAL = {"TCP_CA_NAME_MAX": 16}


def _clang() -> str:
    cc = shutil.which("clang-19") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler (apt-get install clang-19)")
    return cc


@pytest.fixture(scope="module")
def header_values(tmp_path_factory) -> dict[str, int]:
    """name -> value for every constant the headers define (as a macro or an enumerator)."""
    cc = _clang()
    d = tmp_path_factory.mktemp("constants")
    includes = "".join(f"#include <{h}>\n" for h in HEADERS)
    macros = subprocess.run([cc, "-dM", "-E", "-x", "c", "-"], input=includes, capture_output=True, text=True,
                            check=True).stdout
    defined = set(re.findall(r"^#define (\w+)", macros, re.M))
    text = subprocess.run([cc, "-E", "-x", "c", "-"], input=includes, capture_output=True, text=True,
                          check=True).stdout
    enumerators = {item.split("=")[0].strip() for body in re.findall(r"\benum\b[^{;]*\{([^}]*)\}", text)
                   for item in body.split(",")}
    present = [n for n in C.VALUES if n in defined or n in enumerators]
    src = d / "values.c"
    src.write_text(includes + "#include <stdio.h>\nint main(void) {\n"
                   + "".join(f'    printf("{n} %lld\\n", (long long)({n}));\n' for n in present) + "    return 0;\n}\n")
    exe = d / "values"
    subprocess.run([cc, "-o", str(exe), str(src)], check=True, capture_output=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return {line.split()[0]: int(line.split()[1]) for line in out.splitlines()}


@pytest.fixture(scope="module")
def btf_values() -> dict[str, int]:
    path = "/sys/kernel/btf/vmlinux"
    if not os.path.exists(path):
        pytest.skip("no kernel BTF")
    from kernel_loader.btf import ENUM, Btf

    with open(path, "rb") as f:
        btf = Btf.parse(f.read())
    out: dict[str, int] = {}
    for t in btf.defined():
        if t.kind == ENUM:
            for name_off, v in t.extra:
                name = btf.str_at(name_off)
                if name in C.VALUES:
                    out[name] = v - (1 << 32) if v >= 1 << 31 else v
    return out


def test_every_value_matches_the_headers(header_values):
    wrong = {n: (C.VALUES[n], v) for n, v in header_values.items() if C.VALUES[n] != v}
    assert not wrong, f"pybpfgen value vs header value: {wrong}"
    assert len(header_values) > 100  # the headers were read (all but the newest kernel's names)


def test_every_value_matches_the_kernel_btf(btf_values):
    wrong = {n: (C.VALUES[n], v) for n, v in btf_values.items() if C.VALUES[n] != v}
    assert not wrong, f"pybpfgen value vs kernel BTF enum: {wrong}"
    # the enums of linux/bpf.h are all in the kernel's BTF, TIME_WAIT included
    for n in ("BPF_TCP_TIME_WAIT", "BPF_SOCK_OPS_ALL_CB_FLAGS", "SK_PASS", "XDP_REDIRECT", "TCP_BPF_IW"):
        assert n in btf_values


def test_every_constant_is_confirmed(header_values, btf_values):
    unconfirmed = [n for n in C.VALUES if n not in header_values and n not in btf_values and n not in KERNEL_INTERNAL]
    assert not unconfirmed, f"in neither /usr/include nor the kernel BTF: {unconfirmed}"
    assert all(C.VALUES[n] == v for n, v in KERNEL_INTERNAL.items())


def test_tcp_ca_name_max_is_the_kernels():
    from kernel_loader.btf import STRUCT, Btf

    with open("/sys/kernel/btf/vmlinux", "rb") as f:
        btf = Btf.parse(f.read())
    ops = btf.find("tcp_congestion_ops", STRUCT)
    assert ops is not None
    name = next(m for m in btf.members(ops.id) if m.name == "name")
    assert btf.size_of(name.type_id) == C.TCP_CA_NAME_MAX


def test_lang_exports_every_constant():
    assert C.__all__ == list(C.VALUES)
    for n, v in C.VALUES.items():
        assert n in lang.__all__ and getattr(lang, n) == v
    assert sum(len(g) for g in C.GROUPS.values()) == len(C.VALUES)


def test_constants_compile_and_fold(tmp_path):
    """TIME_WAIT (once "not defined") and the new groups are usable in programs."""
    from pybpfgen.frontend.module import parse_module

    src = tmp_path / "states.py"
    src.write_text(
        "from pybpfgen.lang import *\n\n"
        "@sock_ops\n"
        "def states(ctx: SockOps) -> int:\n"
        "    if ctx.op == BPF_SOCK_OPS_STATE_CB and ctx.args1 == BPF_TCP_TIME_WAIT:\n"
        "        return 1\n"
        "    if ctx.family == AF_INET6 and ctx.state == BPF_TCP_NEW_SYN_RECV:\n"
        "        return 1\n"
        "    bpf_sock_ops_cb_flags_set(ctx, BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_RTT_CB_FLAG)\n"
        "    return 1\n")
    parse_module(str(src))
