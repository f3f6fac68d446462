"""Bounded runs of fuzz/fuzz_loader.py: mutated and truncated ELF / BTF / BTF.ext
inputs give only a LoaderError with a message (no other exception, no hang),
and with the kernel nothing is left behind."""
import json
import os
import struct
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "fuzz"))
import fuzz_loader  # noqa: E402


@pytest.fixture(scope="module")
def corpus():
    return fuzz_loader.build_corpus()


KINDS = ["truncate", "flip", "int16", "int32", "int64", "zero", "dup"]


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_hypothesis_mutations(corpus, tmp_path_factory, data):
    name, obj = data.draw(st.sampled_from(corpus))
    target = data.draw(st.sampled_from(["object", ".BTF", ".BTF.ext"]))
    base = obj if target == "object" else fuzz_loader.section_bytes(obj, target)
    if base is None:
        return
    regions = sorted(fuzz_loader.regions(base)) if target == "object" else ["file"]
    buf = bytearray(base)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(KINDS))
        if target == "object":
            lo, hi = fuzz_loader.regions(base)[data.draw(st.sampled_from(regions))]
        else:
            lo, hi = 0, len(base)
        if not buf or hi <= lo:
            break
        off = data.draw(st.integers(lo, max(lo, min(hi, len(buf)) - 1)))
        val = data.draw(st.sampled_from(fuzz_loader.INTERESTING) | st.integers(0, 255))
        fuzz_loader.apply(buf, kind, off, val)
    if target == "object":
        fuzz_loader.check_object_bytes(bytes(buf), str(tmp_path_factory.mktemp("case")))
    elif target == ".BTF":
        fuzz_loader.check_btf_bytes(bytes(buf), None)
    else:
        fuzz_loader.check_btf_bytes(fuzz_loader.section_bytes(obj, ".BTF"), bytes(buf))


def test_bounded_random_run(tmp_path, capsys):
    rc = fuzz_loader.main(["--seconds", "20", "--max-cases", "2000", "--seed", "20261126", "--json",
                           "--crash-dir", str(tmp_path / "crashes")])
    stats = json.loads(capsys.readouterr().out)
    assert rc == 0 and stats["bugs"] == 0, stats
    assert stats["parsed"] > 0 and stats["error"] > 0 and stats["btf_cases"] > 0


@pytest.mark.kernel
def test_bounded_kernel_run(tmp_path, capsys):
    rc = fuzz_loader.main(["--seconds", "20", "--max-cases", "600", "--seed", "7", "--kernel", "--kernel-every", "4",
                           "--json", "--crash-dir", str(tmp_path / "crashes")])
    stats = json.loads(capsys.readouterr().out)
    assert rc == 0 and stats["bugs"] == 0, stats
    assert stats["loaded"] > 0


def _btf(types: bytes, strings: bytes = b"\0x\0") -> bytes:
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return hdr + types + strings


@pytest.mark.parametrize("types", [
    # [1] VAR x -> [1]: a variable whose type is itself (found by fuzz_loader, seed 11: RecursionError)
    struct.pack("<IIII", 1, 14 << 24, 1, 0),
    # [1] ARRAY of [1]
    struct.pack("<III" "III", 0, 3 << 24, 0, 1, 1, 4),
], ids=["var-loop", "array-loop"])
def test_btf_type_loops_are_loader_errors(types):
    from kernel_loader.btf import Btf
    from kernel_loader.errors import LoaderError
    btf = Btf.parse(_btf(types))
    with pytest.raises(LoaderError, match="loop"):
        btf.size_of(1)
    assert fuzz_loader.check_btf_bytes(_btf(types), None) == "parsed"
