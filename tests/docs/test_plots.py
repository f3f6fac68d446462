"""bench/plots.py turns whichever benchmark JSON it is given into PNGs (no root; needs matplotlib)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLOTS = REPO / "bench" / "plots.py"

pytest.importorskip("matplotlib", reason="matplotlib missing: pip install -e '.[bench]' (scripts/setup.sh does)")

SOCKPERF = {"params": {"rounds": 3, "seconds": 3.0, "setups": ["veth", "loopback"], "modes": ["kernel", "accel"]},
            "summary": {s: {"kernel": {"avg": 12.0, "p50": 11.0, "p99": 20.0, "rounds": 3},
                            "accel": {"avg": 9.0, "p50": 8.0, "p99": 15.0, "rounds": 3,
                                      "ratio_vs_kernel": {"avg": 0.75, "p50": 0.73, "p99": 0.75}}}
                        for s in ("veth", "loopback")},
            "results": []}
REDIS = {"bench": "redis", "summary": {"GET c=1": {"kernel": {"p50": 30.0, "p99": 55.0},
                                                    "accel": {"p50": 24.0, "p99": 41.0}},
                                        "SET c=8": {"kernel": {"p99": 90.0}, "accel": {"p99": 70.0}}}}
IPERF_ROWS = {"bench": "iperf3", "summary": [{"config": "128K x 1", "mode": "kernel", "bits_per_second": 9.1e9},
                                             {"config": "128K x 1", "mode": "accel", "bits_per_second": 10.2e9}]}


def run(tmp_path, *files, ok=True):
    r = subprocess.run([sys.executable, str(PLOTS), *map(str, files), "-o", str(tmp_path / "img"), "--json"],
                       capture_output=True, text=True, timeout=120)
    assert (r.returncode == 0) == ok, r.stderr
    return json.loads(r.stdout), r.stderr


def is_png(p: Path) -> bool:
    return p.is_file() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 2000


def test_all_kinds_at_once(tmp_path):
    files = []
    for name, data in (("sockperf.json", SOCKPERF), ("r.json", REDIS), ("i.json", IPERF_ROWS)):
        (tmp_path / name).write_text(json.dumps(data))
        files.append(tmp_path / name)
    out, err = run(tmp_path, *files)
    names = sorted(Path(w["output"]).name for w in out["written"])
    assert names == ["iperf_throughput.png", "redis_p99.png", "sockperf_latency.png"]
    assert all(is_png(Path(w["output"])) for w in out["written"])
    assert "[3/3]" in err  # progress


def test_only_what_is_given(tmp_path):
    (tmp_path / "redis_bench.json").write_text(json.dumps({"summary": REDIS["summary"]}))  # kind from the name
    out, _ = run(tmp_path, tmp_path / "redis_bench.json")
    assert [Path(w["output"]).name for w in out["written"]] == ["redis_p99.png"]


def test_unplottable_file_is_reported(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    out, err = run(tmp_path, tmp_path / "x.json", ok=False)
    assert out["failed"] and "skipped" in err


def test_committed_plots_exist():
    """docs/benchmarks.md shows these; regenerate with bench/plots.py (see there)."""
    assert is_png(REPO / "docs" / "img" / "sockperf_latency.png")


def test_shapes_of_redis_and_iperf_benches(tmp_path):
    """The --json of bench/redis_bench.py and bench/iperf_bench.py (no "bench" key: recognised by params)."""
    redis = {"params": {"rounds": 3, "requests": 100000, "clients": [1, 8], "modes": ["kernel", "accel"]},
             "summary": {"get c=1": {"kernel": {"p50": 30.0, "p99": 55.0, "avg": 31.0, "rps": 30000, "rounds": 3},
                                     "accel": {"p50": 24.0, "p99": 41.0, "avg": 25.0, "rps": 38000, "rounds": 3,
                                               "ratio_vs_kernel": {"p99": 0.75}, "p99_improvement_pct": 25.4}}},
             "results": []}
    iperf = {"params": {"rounds": 2, "seconds": 2, "setups": ["loopback"], "streams": [1], "modes": ["kernel", "accel"]},
             "summary": {"loopback P1 oneway 128K": {"kernel": {"rounds": 2, "aborted": 0, "gbps": 30.1},
                                                     "accel": {"rounds": 2, "aborted": 0, "gbps": 33.5,
                                                               "ratio_vs_kernel": 1.11}},
                         "loopback P1 bidir 64B": {"kernel": {"rounds": 2, "gbps": 0.5},
                                                   "accel": {"rounds": 2, "gbps": None}}},
             "results": []}
    (tmp_path / "a.json").write_text(json.dumps(redis))
    (tmp_path / "b.json").write_text(json.dumps(iperf))
    out, _ = run(tmp_path, tmp_path / "a.json", tmp_path / "b.json")
    assert sorted(Path(w["output"]).name for w in out["written"]) == ["iperf_throughput.png", "redis_p99.png"]
