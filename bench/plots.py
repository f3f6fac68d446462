#!/usr/bin/env python3
"""Plot benchmark JSON as PNGs for docs/benchmarks.md (matplotlib: `pip install -e '.[bench]'`).

    .venv/bin/python bench/plots.py FILE.json [FILE.json ...] [-o docs/img] [--json]

Give it whichever result files you have; each is recognised by its content:

* sockperf   `bench/sockperf_bench.py --json`: latency percentiles (avg, p50, p99) per setup, kernel path
             vs accelerated (and the C twin when measured)            -> sockperf_latency.png
* redis      `bench/redis_bench.py --json` (or "bench": "redis", or "redis" in the file name): p99
             latency (µs) per command / client count and mode          -> redis_p99.png
* iperf3     `bench/iperf_bench.py --json` (or "bench": "iperf3", or "iperf" in the file name):
             throughput ("gbps") per setup / stream shape and mode   -> iperf_throughput.png
* anything else with the common shape below: one bar chart per file   -> <stem>.png

The common shape (what sockperf_bench.py prints, and what other benches are asked to print):

    {"bench": "redis", "summary": {CONFIG: {MODE: {METRIC: number, ...}, ...}, ...}, ...}

CONFIG is a setup ("veth", "loopback", "64B x 4", ...), MODE one of "kernel", "accel", "c-twin" (others are
plotted too), METRIC a number such as "p50", "p99", "avg" (latency, µs) or "gbps" / "mbps" /
"bits_per_second" (throughput). A "summary" may also be a list of rows {"config"|"setup": .., "mode": ..,
METRIC: ..}. Progress and the list of written files go to stderr; `--json` prints that list as JSON on
stdout. Exit 1 when a file has nothing plottable.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODE_ORDER = ["kernel", "accel", "c-twin"]
MODE_LABEL = {"kernel": "kernel path", "accel": "pybpfgen accelerator", "c-twin": "C twin (clang + bpftool)"}
MODE_COLOR = {"kernel": "#8c8c8c", "accel": "#1f77b4", "c-twin": "#ff7f0e"}
LATENCY_METRICS = ["avg", "p50", "p90", "p99", "p99.9", "p999"]
THROUGHPUT_KEYS = re.compile(r"(gbps|gbit|mbps|mbit|bits_per_second|bps|throughput|ops_per_sec|rps)", re.I)


def log(msg: str) -> None:
    print(f"[plots] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ reading
def mode_table(summary) -> dict[str, dict[str, dict[str, float]]]:
    """{config: {mode: {metric: value}}} from a "summary" (dict of dicts, or a list of rows)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    if isinstance(summary, list):
        for row in summary:
            if not isinstance(row, dict) or "mode" not in row:
                continue
            cfg = str(row.get("config", row.get("setup", row.get("name", ""))))
            out.setdefault(cfg, {})[str(row["mode"])] = _numbers(row)
        return {c: m for c, m in out.items() if m}
    if isinstance(summary, dict):
        # {mode: {metric}} directly (one configuration)?
        if any(k in summary for k in MODE_ORDER) and all(isinstance(v, dict) for v in summary.values()):
            if all(_numbers(v) for v in summary.values()):
                return {"": {m: _numbers(v) for m, v in summary.items()}}
        for cfg, modes in summary.items():
            if isinstance(modes, dict):
                tbl = {m: _numbers(v) for m, v in modes.items() if isinstance(v, dict) and _numbers(v)}
                if tbl:
                    out[str(cfg)] = tbl
    return out


def _numbers(d: dict) -> dict[str, float]:
    return {k: float(v) for k, v in d.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def kind_of(path: Path, data: dict) -> str:
    b = str(data.get("bench", "")).lower() if isinstance(data, dict) else ""
    name = path.name.lower()
    for kind in ("sockperf", "redis", "iperf"):
        if kind in b or kind in name:
            return kind
    params = data.get("params", {}) if isinstance(data, dict) else {}
    if isinstance(params, dict):  # the benches' own --json has no "bench" key: recognise their params
        if "requests" in params and "clients" in params:
            return "redis"  # bench/redis_bench.py
        if "streams" in params or "lengths" in params:
            return "iperf"  # bench/iperf_bench.py
        if "setups" in params and "modes" in params:
            return "sockperf"  # bench/sockperf_bench.py
    return "generic"


def sorted_modes(modes) -> list[str]:
    return sorted(modes, key=lambda m: (MODE_ORDER.index(m) if m in MODE_ORDER else len(MODE_ORDER), m))


# ------------------------------------------------------------------ plotting
def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 110, "font.size": 9,
                         "axes.spines.top": False, "axes.spines.right": False})
    return plt


def grouped_bars(ax, groups: list[str], modes: list[str], value, label_fmt="{:.1f}", ratio_to=None):
    """Bars for each group (x) and mode (colour); value(group, mode) -> float | None."""
    n = len(modes)
    width = 0.8 / max(n, 1)
    for i, mode in enumerate(modes):
        xs, ys = [], []
        for g, group in enumerate(groups):
            v = value(group, mode)
            if v is not None:
                xs.append(g - 0.4 + width * (i + 0.5))
                ys.append(v)
        bars = ax.bar(xs, ys, width * 0.92, label=MODE_LABEL.get(mode, mode), color=MODE_COLOR.get(mode))
        for bar, y, x in zip(bars, ys, xs):
            text = label_fmt.format(y)
            if ratio_to and mode != ratio_to:
                g = round(x + 0.4 - width * (i + 0.5))
                base = value(groups[g], ratio_to)
                if base:
                    text += f"\n{y / base:.2f}×"
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, y), ha="center", va="bottom", fontsize=7,
                        xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups, rotation=30 if max(len(g) for g in groups) > 12 else 0, ha="right" if max(len(g) for g in groups) > 12 else "center")
    vals = [v for g in groups for m in modes if (v := value(g, m))]
    if vals and min(vals) > 0 and max(vals) / min(vals) > 20:  # e.g. a noisy p99 next to p50: log scale
        ax.set_yscale("log")
        ax.set_ylim(min(vals) / 2, max(vals) * 4)
    else:
        ax.margins(y=0.2)


def plot_latency(plt, table, metrics, title, ylabel, out: Path, note: str = "") -> Path:
    configs = [c for c in table]
    fig, axes = plt.subplots(1, len(configs), figsize=(4.2 * len(configs) + 0.6, 3.6), squeeze=False)
    for ax, cfg in zip(axes[0], configs):
        modes = sorted_modes(table[cfg])
        present = [m for m in metrics if any(m in table[cfg][md] for md in modes)]
        grouped_bars(ax, present, modes, lambda met, md: table[cfg][md].get(met), ratio_to="kernel")
        ax.set_title(cfg or title, fontsize=9)
        ax.set_ylabel(ylabel)
    axes[0][0].legend(fontsize=7, loc="upper left", frameon=False)
    fig.suptitle(title, fontsize=10)
    if note:
        fig.text(0.01, 0.01, note, fontsize=6.5, color="#555555")
    fig.tight_layout(rect=(0, 0.04 if note else 0, 1, 1))
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_metric_by_config(plt, table, metric, title, ylabel, out: Path, note: str = "", fmt="{:.1f}") -> Path:
    configs = list(table)
    modes = sorted_modes({m for c in configs for m in table[c]})
    fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * len(configs) + 2), 3.6))
    grouped_bars(ax, configs, modes, lambda cfg, md: table[cfg].get(md, {}).get(metric), fmt, ratio_to="kernel")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    if note:
        fig.text(0.01, 0.01, note, fontsize=6.5, color="#555555")
    fig.tight_layout(rect=(0, 0.04 if note else 0, 1, 1))
    fig.savefig(out)
    plt.close(fig)
    return out


def pick_metric(table, pattern) -> str | None:
    names = [k for c in table.values() for m in c.values() for k in m]
    for n in names:
        if pattern.search(n):
            return n
    return None


def throughput_unit(metric: str) -> tuple[str, float]:
    m = metric.lower()
    if "bits_per_second" in m or m == "bps":
        return "Gbit/s", 1e-9
    if "gbit" in m or "gbps" in m:
        return "Gbit/s", 1.0
    if "mbit" in m or "mbps" in m:
        return "Mbit/s", 1.0
    return metric, 1.0


def params_note(data: dict) -> str:
    p = data.get("params") if isinstance(data, dict) else None
    if not isinstance(p, dict):
        return ""
    keep = {k: v for k, v in p.items() if isinstance(v, (int, float, str)) and k not in ("port",)}
    return "  ".join(f"{k}={v}" for k, v in keep.items())


def plot_file(plt, path: Path, outdir: Path) -> list[Path]:
    data = json.loads(path.read_text())
    kind = kind_of(path, data)
    table = mode_table(data.get("summary", data) if isinstance(data, dict) else data)
    if not table:
        raise ValueError(f"{path}: no {{config: {{mode: {{metric: number}}}}}} summary found")
    note = params_note(data)
    log(f"{path}: {kind}, configurations {', '.join(c or '-' for c in table)}")
    if kind == "sockperf":
        return [plot_latency(plt, table, [m for m in LATENCY_METRICS if m in ("avg", "p50", "p99")],
                             "sockperf TCP ping-pong latency (half round trip, median over rounds; lower is better)",
                             "µs", outdir / "sockperf_latency.png", note)]
    if kind == "redis":
        metric = "p99" if any("p99" in m for c in table.values() for m in c.values()) else \
            pick_metric(table, re.compile(r"p99|latency", re.I))
        if metric is None:
            raise ValueError(f"{path}: no p99 metric")
        return [plot_metric_by_config(plt, table, metric, f"redis-benchmark {metric} latency (lower is better)",
                                      "ms" if metric.endswith("ms") else "µs",
                                      outdir / "redis_p99.png", note, "{:.3g}")]
    if kind == "iperf":
        metric = pick_metric(table, THROUGHPUT_KEYS)
        if metric is None:
            raise ValueError(f"{path}: no throughput metric")
        unit, scale = throughput_unit(metric)
        scaled = {c: {md: {metric: v[metric] * scale} for md, v in modes.items() if metric in v}
                  for c, modes in table.items()}
        return [plot_metric_by_config(plt, scaled, metric, "iperf3 throughput (higher is better)", unit,
                                      outdir / "iperf_throughput.png", note, "{:.3g}")]
    metric = pick_metric(table, re.compile(r"p99")) or pick_metric(table, re.compile(".*"))
    return [plot_metric_by_config(plt, table, metric, f"{path.stem}: {metric}", metric,
                                  outdir / f"{path.stem}.png", note, "{:.3g}")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path, metavar="FILE.json", help="benchmark results (--json output)")
    ap.add_argument("-o", "--outdir", type=Path, default=REPO / "docs" / "img", help="default docs/img")
    ap.add_argument("--json", action="store_true", help="print the written files as JSON on stdout")
    args = ap.parse_args(argv)
    try:
        plt = _plt()
    except ImportError:
        print("plots.py: matplotlib is not installed: pip install -e '.[bench]' (scripts/setup.sh does)",
              file=sys.stderr)
        return 1
    args.outdir.mkdir(parents=True, exist_ok=True)
    written, failed = [], []
    for i, f in enumerate(args.files, 1):
        log(f"[{i}/{len(args.files)}] {f}")
        try:
            for out in plot_file(plt, f, args.outdir):
                written.append({"input": str(f), "output": str(out)})
                log(f"  wrote {out}")
        except (OSError, ValueError, KeyError, TypeError) as e:
            failed.append({"input": str(f), "error": str(e)})
            log(f"  skipped: {e}")
    if args.json:
        print(json.dumps({"written": written, "failed": failed}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
