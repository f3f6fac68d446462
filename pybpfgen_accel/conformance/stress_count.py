"""Stress mode: counting and judging (pure; no sockets, no kernel).

``tally`` turns the two ends' results of one path of one round into counts; ``judge`` compares the accelerated
path's counts with the kernel path's (a count the accelerated path shows and the kernel path does not fails the
round); ``summarize`` and ``format_report`` build the per-case table.
"""
from __future__ import annotations

COUNT_KEYS = ("errors", "stalls", "lost", "dup", "reordered", "corrupt", "leftovers")
# Known kernel hazards (docs/hazards.md; ``pybpfgen doctor``), counted apart from errors: they are the kernel's, are
# reported with their rate, and fail a round only under ``strict``. An error of the same kind that the hazard
# cannot explain (on a send, or with bytes lost or reordered) still fails the round.
#   blocking-recv-eagain: tcp_bpf_recvmsg sleeps once and returns EAGAIN on a blocking socket when a wakeup
#   brings no data (docs/upstream-tcp_bpf_recvmsg.md); the reader retries, so no byte may be lost.
KERNEL_HAZARDS = {("recv", "EAGAIN"): "blocking-recv-eagain", ("recv", "EWOULDBLOCK"): "blocking-recv-eagain"}
ACCEL_INFO = ("redirected", "demoted", "released", "missed")


def empty_counts() -> dict:
    c: dict = {k: 0 for k in COUNT_KEYS}
    c["error_kinds"] = {}
    c["hazards"] = {}
    return c


def tally(server: dict | None, client: dict | None, *, stalled: bool, leftovers: int = 0) -> dict:
    """Counts of one path of one round. ``server``/``client`` are the workers' ``result`` events, or
    ``{"crashed": "why"}`` for a worker that died without one. A stalled round counts what arrived wrongly,
    not what had not arrived yet."""
    c = empty_counts()
    c["stalls"] = 1 if stalled else 0
    c["leftovers"] = max(0, int(leftovers))
    notes = []
    ends = {"server": server or {"crashed": "no result"}, "client": client or {"crashed": "no result"}}
    for role, res in ends.items():
        if "crashed" in res:
            _err(c, f"worker:{role}")
            notes.append(f"{role} worker: {res['crashed']}")
            continue
        for e in res.get("errors", []):
            hazard = KERNEL_HAZARDS.get((e["op"], e["kind"]))
            if hazard:
                c["hazards"][hazard] = c["hazards"].get(hazard, 0) + 1
                continue
            _err(c, e["kind"])
            if len(notes) < 6:
                notes.append(f"{role} conn {e['conn']} {e['op']}: {e['kind']}"
                             + (f" {e['detail']}" if e.get("detail") else "")
                             + f" (after {e['sent']} B sent, {e['received']} B received)")
    if all("crashed" not in r for r in ends.values()):
        tx_of = {("c2s", x["conn"]): x["tx"] for x in ends["client"]["conns"]}
        tx_of.update({("s2c", x["conn"]): x["tx"] for x in ends["server"]["conns"]})
        rx_of = {("s2c", x["conn"]): x["rx"] for x in ends["client"]["conns"]}
        rx_of.update({("c2s", x["conn"]): x["rx"] for x in ends["server"]["conns"]})
        for key, rx in sorted(rx_of.items()):
            tx = tx_of.get(key)
            if tx is None:
                continue
            bad = 0
            for k in ("dup", "reordered", "corrupt") + (() if stalled else ("lost",)):
                c[k] += rx.get(k, 0)
                bad += rx.get(k, 0)
            if not stalled and not bad and (rx["bytes"] != tx["bytes"] or rx["sha"] != tx["sha"]):
                c["corrupt"] += 1          # the records parsed but the bytes differ from what was sent
                bad += 1
            if bad and len(notes) < 8:
                notes.append(f"{key[0]} conn {key[1]}: lost {rx.get('lost', 0)}, dup {rx.get('dup', 0)}, reordered "
                             f"{rx.get('reordered', 0)}, corrupt {rx.get('corrupt', 0)} records; {rx['bytes']} B "
                             f"received of {tx['bytes']} B sent ({tx['planned']} planned)")
    c["notes"] = notes
    return c


def _err(c: dict, kind: str) -> None:
    c["errors"] += 1
    c["error_kinds"][kind] = c["error_kinds"].get(kind, 0) + 1


def judge(kernel: dict, accel: dict, strict: bool = False) -> list[str]:
    """Why the round fails: every count (and every error kind) the accelerated path shows and the kernel path
    does not; a known kernel hazard only when ``strict``. Empty: the round passes."""
    why = []
    for name, n in sorted(accel.get("hazards", {}).items()):
        if n and (strict or kernel.get("hazards", {}).get(name)):
            why.append(f"{n} x kernel hazard {name} accelerated" + (" (strict)" if strict else ""))
    for kind, n in sorted(accel.get("error_kinds", {}).items()):
        if n and not kernel.get("error_kinds", {}).get(kind):
            why.append(f"{n} x {kind} accelerated, none on the kernel path")
    for k in COUNT_KEYS:
        if k == "errors":
            continue
        if accel.get(k, 0) and not kernel.get(k, 0):
            why.append(f"{k} {accel[k]} accelerated, 0 on the kernel path")
    return why


def add_counts(total: dict, c: dict) -> None:
    for k in COUNT_KEYS:
        total[k] = total.get(k, 0) + c.get(k, 0)
    hz = total.setdefault("hazards", {})
    for k, n in c.get("hazards", {}).items():
        hz[k] = hz.get(k, 0) + n
    kinds = total.setdefault("error_kinds", {})
    for k, n in c.get("error_kinds", {}).items():
        kinds[k] = kinds.get(k, 0) + n


def summarize(case: str, rounds: list[dict]) -> dict:
    """Per-case summary of round records ``{"round", "seed", "budget", "kernel", "accel", "accel_info", "why"}``."""
    paths = {"kernel": empty_counts(), "accel": empty_counts()}
    info = {k: 0 for k in ACCEL_INFO}
    rounds_with = {"demoted": 0, "released": 0, "redirected": 0}
    for r in rounds:
        for p in paths:
            add_counts(paths[p], r[p])
        for k in ACCEL_INFO:
            info[k] += r["accel_info"].get(k, 0)
        for k in rounds_with:
            rounds_with[k] += 1 if r["accel_info"].get(k, 0) > 0 else 0
    failed = [r for r in rounds if r["why"]]
    hazard_rounds: dict[str, int] = {}
    for r in rounds:
        for name, n in r["accel"].get("hazards", {}).items():
            hazard_rounds[name] = hazard_rounds.get(name, 0) + (1 if n else 0)
    return {"name": case, "rounds": len(rounds), "failed_rounds": len(failed),
            "status": "fail" if failed else "pass",
            "low_budget_rounds": sum(r["budget"] == "low" for r in rounds),
            "paths": paths, "accel_info": info, "rounds_with": rounds_with,
            "seconds": round(sum(r.get("seconds", 0) for r in rounds), 1),
            "failures": [{k: r[k] for k in ("round", "seed", "why", "reproduce", "params", "notes") if k in r}
                         for r in failed],
            "hazard_rounds": hazard_rounds,
            "kernel_path_problems": sum(any(r["kernel"].get(k) for k in COUNT_KEYS) for r in rounds)}


def _ldro(c: dict) -> str:
    return f"{c['lost']}/{c['dup']}/{c['reordered']}/{c['corrupt']}"


def _errs(c: dict) -> str:
    if not c["errors"]:
        return "0"
    kinds = ",".join(f"{k}:{n}" for k, n in sorted(c["error_kinds"].items()))
    return f"{c['errors']} ({kinds})"


def format_report(rep: dict) -> str:
    out = [f"stress conformance of {rep['object']}: seed {rep['seed']}, {rep['rounds']} round(s) per case, budget "
           f"{rep['budget']}, full_duplex {rep['duplex_bytes']} B each way"]
    head = ("case", "rounds", "failed", "path", "errors", "stalls", "lost/dup/reord/corrupt", "leftovers",
            "demoted", "released", "redirected")
    rows = [head]
    for c in rep["cases"]:
        k, a, i, w = c["paths"]["kernel"], c["paths"]["accel"], c["accel_info"], c["rounds_with"]
        low = f"{c['low_budget_rounds']} low budget"
        rows.append((c["name"], str(c["rounds"]), str(c["failed_rounds"]), "kernel", _errs(k), str(k["stalls"]),
                     _ldro(k), str(k["leftovers"]), low, "", ""))
        rows.append(("", "", "", "accel", _errs(a), str(a["stalls"]), _ldro(a), str(a["leftovers"]),
                     f"{i['demoted']} ({w['demoted']} rnd)", f"{i['released']} ({w['released']} rnd)",
                     f"{i['redirected']} ({w['redirected']} rnd)"))
    widths = [max(len(r[j]) for r in rows) for j in range(len(head))]
    for r in rows:
        out.append("  " + "  ".join(x.ljust(widths[j]) for j, x in enumerate(r)).rstrip())
    for c in rep["cases"]:
        for f in c["failures"]:
            out.append(f"FAILED {c['name']} round {f['round']} (seed {f['seed']}): {'; '.join(f['why'])}")
            for n in f.get("notes", [])[:4]:
                out.append(f"    {n}")
            out.append(f"    reproduce: {f['reproduce']}")
    for c in rep["cases"]:
        for name, n in sorted(c.get("hazard_rounds", {}).items()):
            if n:
                hits = c["paths"]["accel"].get("hazards", {}).get(name, 0)
                out.append(f"kernel hazard {name} ({c['name']}): {hits} time(s) in {n} of {c['rounds']} rounds "
                           f"accelerated, no byte lost (docs/hazards.md; --strict fails them)")
    failed = sum(c["failed_rounds"] for c in rep["cases"])
    total = sum(c["rounds"] for c in rep["cases"])
    out.append(("PASS" if rep["ok"] else "FAIL") + f": {failed} of {total} rounds failed"
               + (f"; reproduce all with seed {rep['seed']}" if not rep["ok"] else ""))
    return "\n".join(out)
