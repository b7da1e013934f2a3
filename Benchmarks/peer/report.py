#!/usr/bin/env python3
"""Compare our benchmark results with the Redis peer run; write results/RESULTS.md,
results/bench.png and, on request, the README section between
<!-- bench:begin --> and <!-- bench:end -->.

    python3 Benchmarks/peer/report.py --peer results/redis-full.json \
        [--ours results/ours.json] [--outdir results] [--readme README.md]

--peer is the JSON printed by redis_peer.py. --ours is optional; every figure it
lacks (or the whole file) shows as "n/a".

Schema of the ours file (JSON object; every key optional; numbers may be null).
Each top-level key is a figure holding {"ours": {...}} and, optionally,
{"peer": {...}} which overrides the value taken from the peer JSON. The key names
inside are the same as in redis_peer.py's output, so one document format serves both:

{
  "meta":  {"commit": "abc123", "notes": "free text"},          # shown, not compared
  "read":  {"ours": {"p50_us": 1.2, "p99_us": 4.0, "ops": 2.5e6}},
           # a session read (load) of the 1 KB sample session, same client count
  "update": {"ours": {"1k": {"ops": 250000, "ops_p16": 900000},
                      "4k": {"ops": 200000, "ops_p16": 700000}}},
           # replicated single-attribute (100 B) updates/s with the default write
           # concern, without batching and with 16 in flight per client
  "repl_bytes": {"ours": {"bytes_per_update": 60.0,
                          "by_n": {"3": 60.0, "5": 61.0, "7": 60.5},
                          "by_n_p16": {"3": 40.0, "5": 41.0, "7": 42.0},
                          "by_n_single": {"3": 99.0, "5": 99.5, "7": 100.0},
                          "shapes": {"by_n": "50 writers, one in flight each", ...}}},
           # bytes on the wire per single-attribute update, all destinations
           # summed, at cluster size N (bytes_per_update: the default N); by_n_p16
           # and by_n_single: the same with 16 in flight per writer, and one at a time
  "failover": {"ours": {"median_outage_s": 0.8, "lost_writes_total": 0,
                        "runs": [{"outage_s": 0.8, "lost_writes": 0}]}},
  "memory": {"ours": {"bytes_per_session": 1400, "payload_bytes": 1024}},
           # resident bytes per stored 1 KB session, and that session's payload
  "state_transfer": {"ours": {"sessions": 1000000, "seconds": 7.5}}
}

Ratios in the table are ours / Redis. Targets (from the project's issue):
read p50 <= 0.01x Redis; update ops >= 2x Redis without pipelining and >= 1x with
-P 16; bytes per update <= 0.5x Redis's replication stream and <= 0.03x the
full-session broadcast at N = 3, 5, 7, and flat in N (max/min over N <= 1.10);
failover median <= 1 s with 0 acknowledged writes lost; memory <= 1.3 x payload +
200 B per session; state transfer of 1M x 1 KB sessions <= 10 s.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import subprocess
import shutil
import sys

from redis_peer import machine_info  # one description of the machine for both scripts
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
FLAT_TOLERANCE = 1.10


def get(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d if isinstance(d, (int, float)) and not isinstance(d, bool) and math.isfinite(d) else None


def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if float(v).is_integer() and unit in ("", "B", "ops/s"):
        s = f"{int(v):,}" if abs(v) >= 10000 else f"{int(v)}"
    elif abs(v) >= 10000:
        s = f"{v:,.0f}"
    elif abs(v) >= 100:
        s = f"{v:.0f}"
    elif abs(v) >= 10:
        s = f"{v:.1f}"
    else:
        s = f"{v:.2f}"
    return s + (f" {unit}" if unit else "")


def fmt_ratio(r):
    if r is None:
        return "n/a"
    if r >= 100:
        return f"{r:.0f}x"
    if r >= 1:
        return f"{r:.2f}x"
    return f"{r:.3g}x"


class Row:
    def __init__(self, figure, ours, peer, unit="", target=None, target_text="-",
                 peer_note="", ours_note="", ratio=True, chart_label=None):
        self.figure, self.ours, self.peer, self.unit = figure, ours, peer, unit
        self.target, self.target_text = target, target_text
        self.peer_note, self.ours_note = peer_note, ours_note
        self.ratio = ours / peer if ratio and ours is not None and peer not in (None, 0) else None
        self.chart_label = chart_label or figure
        self.met = self._met()

    def _met(self):
        if self.target is None:
            return None
        kind, x = self.target
        if kind == "ratio_le":
            return None if self.ratio is None else self.ratio <= x
        if kind == "ratio_ge":
            return None if self.ratio is None else self.ratio >= x
        if kind == "le":
            return None if self.ours is None else self.ours <= x
        if kind == "eq":
            return None if self.ours is None else self.ours == x
        if kind == "na":
            return None
        raise ValueError(kind)

    def budget_fraction(self):
        """ours / absolute target, for the chart (<= 1 is met)."""
        if self.target and self.target[0] == "le" and self.ours is not None and self.target[1]:
            return self.ours / self.target[1]
        return None

    def cells(self):
        met = {None: "n/a", True: "yes", False: "**no**"}[self.met]
        return [self.figure, fmt(self.ours, self.unit) + self.ours_note,
                fmt(self.peer, self.unit) + self.peer_note, fmt_ratio(self.ratio),
                self.target_text, met]


def side(doc, peer_doc, fig, who):
    """Value dict for a figure: ours from the ours doc; peer from the ours doc's
    override if present, else the peer JSON."""
    entry = doc.get(fig) if isinstance(doc.get(fig), dict) else {}
    if who == "ours":
        return entry.get("ours") if isinstance(entry.get("ours"), dict) else {}
    if isinstance(entry.get("peer"), dict):
        return entry["peer"]
    v = peer_doc.get(fig)
    return v if isinstance(v, dict) else {}


def build_rows(ours_doc: dict, peer_doc: dict) -> list[Row]:
    O = lambda fig: side(ours_doc, peer_doc, fig, "ours")
    P = lambda fig: side(ours_doc, peer_doc, fig, "peer")
    rows = []
    o, p = O("read"), P("read")
    rows.append(Row("Read p50, 1 KB session (HGETALL)", get(o, "p50_us"), get(p, "p50_us"), "us",
                    ("ratio_le", 0.01), "<= 0.01x (100x lower)", chart_label="read p50"))
    rows.append(Row("Read p99", get(o, "p99_us"), get(p, "p99_us"), "us", chart_label="read p99"))
    rows.append(Row("Read throughput", get(o, "ops"), get(p, "ops"), "ops/s", chart_label="read ops/s"))

    o, p = O("update"), P("update")
    for size in ("1k", "4k"):
        label = "1 KB" if size == "1k" else "4 KB"
        rows.append(Row(f"Replicated update, {label} session, no pipelining", get(o, size, "ops"),
                        get(p, size, "ops"), "ops/s", ("ratio_ge", 2.0), ">= 2x",
                        chart_label=f"update {size}"))
        rows.append(Row(f"Replicated update, {label} session, -P 16", get(o, size, "ops_p16"),
                        get(p, size, "ops_p16"), "ops/s", ("ratio_ge", 1.0), ">= 1x",
                        chart_label=f"update {size} -P16"))
        if size == "1k":
            rows.append(Row("  same, sticky (each writer on the session's owner)", get(o, size, "ops_sticky"),
                            get(p, size, "ops"), "ops/s", chart_label="update 1k sticky"))
            rows.append(Row("  same, writers on the shared pool (no executor preference)", get(o, size, "ops_pool"),
                            get(p, size, "ops"), "ops/s", chart_label="update 1k pool"))
            rows.append(Row("  same, `.local` concern (acknowledged before the backup has it, like Redis)",
                            get(o, size, "ops_local"), get(p, size, "ops"), "ops/s", chart_label="update 1k .local"))

    o, p = O("repl_bytes"), P("repl_bytes")
    rows.append(Row("Bytes per single-attribute update vs Redis replication stream",
                    get(o, "bytes_per_update"), get(p, "bytes_per_update"), "B",
                    ("ratio_le", 0.5), "<= 0.5x", chart_label="bytes/update vs Redis"))
    bb = p.get("broadcast_baseline") if isinstance(p.get("broadcast_baseline"), dict) else {}
    primary = bb.get("primary")
    bsess = (bb.get("sessions") or {}).get(primary, {}) if primary else {}
    bsize = get(bsess, "json_bytes")
    for n in ("3", "5", "7"):
        ov = get(o, "by_n", n)
        if ov is None:
            ov = get(o, "bytes_per_update")
        rows.append(Row(f"Bytes per update vs full-session broadcast, N={n}", ov,
                        get(bsess, "by_n", n), "B", ("ratio_le", 0.03), "<= 0.03x",
                        peer_note=f" (broadcast of {bsize:.0f} B)" if bsize else " (broadcast)",
                        chart_label=f"bytes vs broadcast N={n}"))
    bvals = [get(bsess, "by_n", n) for n in ("3", "5", "7")]
    bflat = bvals[2] / bvals[0] if all(bvals) else None
    # Flatness under each load shape the bench ran: one update in flight per writer, 16 in
    # flight, and one update at a time. Per-link batches shrink with N at a fixed load, so
    # the shapes show how much of any growth is batching rather than the design.
    shapes = o.get("shapes") if isinstance(o.get("shapes"), dict) else {"by_n": "50 writers, one in flight each"}
    for key in ("by_n", "by_n_p16", "by_n_single"):
        if key not in shapes:
            continue
        vals = [get(o, key, n) for n in ("3", "5", "7")]
        flat = max(vals) / min(vals) if all(v is not None for v in vals) and min(vals) > 0 else None
        listed = " / ".join(fmt(v, "B") for v in vals) if all(v is not None for v in vals) else ""
        rows.append(Row(f"Bytes per update flat in N (max/min over N=3,5,7), {shapes[key]}", flat, bflat, "x",
                        ("le", FLAT_TOLERANCE), f"<= {FLAT_TOLERANCE:.2f}", peer_note=" (broadcast)",
                        ours_note=f" ({listed})" if listed else "",
                        ratio=False, chart_label=f"flat in N {key.replace('by_n', '').strip('_') or 'x1'}"))

    o, p = O("failover"), P("failover")
    runs = p.get("completed_runs") or len(p.get("runs") or [])
    rows.append(Row("Failover outage, median (s)", get(o, "median_outage_s"),
                    get(p, "median_outage_s"), "s", ("le", 1.0), "<= 1 s",
                    peer_note=f" ({runs} runs, Sentinel)" if runs else "", chart_label="failover"))
    rows.append(Row("Acknowledged writes lost in failover (all runs)", get(o, "lost_writes_total"),
                    get(p, "lost_writes_total"), "", ("eq", 0), "0", ratio=False,
                    chart_label="lost writes"))

    o, p = O("memory"), P("memory")
    payload = get(o, "payload_bytes") or get(p, "payload_json_bytes")
    mem_target = 1.3 * payload + 200 if payload else None
    rows.append(Row("Memory per ~1 KB session", get(o, "bytes_per_session"),
                    get(p, "bytes_per_session"), "B",
                    ("le", mem_target) if mem_target else ("na", None),
                    f"<= {mem_target:.0f} B (1.3 x {payload:.0f} + 200)" if mem_target
                    else "<= 1.3 x payload + 200 B", chart_label="memory/session"))

    o, p = O("state_transfer"), P("state_transfer")
    on, pn = get(o, "sessions"), get(p, "sessions")
    target = ("le", 10.0) if on is not None and on >= 1_000_000 else ("na", None)
    rows.append(Row("State transfer, 1M x 1 KB sessions", get(o, "seconds"), get(p, "seconds"), "s",
                    target, "<= 10 s (1M sessions)",
                    ours_note=f" ({on:,.0f} sessions)" if on and on != 1_000_000 else "",
                    peer_note=f" ({pn:,.0f} sessions, full sync)" if pn else "",
                    ratio=(on is not None and on == pn), chart_label="state transfer"))
    return rows




def machine_line(m: dict) -> str:
    mem = f"{m['mem_total_mb'] / 1024:.1f} GiB" if m.get("mem_total_mb") else "unknown memory"
    return f"{m.get('nproc')} CPUs (nproc), {m.get('cpu_model')}, {mem} RAM"


def table(rows: list[Row]) -> str:
    head = ["Figure", "Ours", "Redis", "Ratio (ours/Redis)", "Target", "Met?"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r.cells()) + " |")
    return "\n".join(lines)


def summary_block(rows, peer_doc, ours_doc, today) -> str:
    m = peer_doc.get("machine") or machine_info()
    red = (peer_doc.get("redis") or {}).get("version", "?")
    met = [r.met for r in rows if r.met is not None]
    parts = [f"Generated {today} by `Benchmarks/peer/report.py`.",
             f"Machine: {machine_line(m)}.",
             f"Peer: Redis {red} ({peer_doc.get('mode', '?')} run of `Benchmarks/peer/redis_peer.py`, "
             f"{peer_doc.get('started_at', '?')}).",
             f"Targets met: {sum(met)} of {len(met)} measured "
             f"({sum(1 for r in rows if r.target and r.target[0] != 'na') - len(met)} not measured yet).",
             "", table(rows)]
    return "\n".join(parts)


def write_markdown(path: Path, rows, peer_doc, ours_doc, today, png_name):
    fo = peer_doc.get("failover") or {}
    per_run = ", ".join(f"{r.get('outage_s')} s/{r.get('lost_writes')} lost"
                        for r in fo.get("runs") or [])
    notes = [
        "## Notes",
        "",
        "- Ratio is ours / Redis; for latency, bytes and memory lower is better, for ops/s higher.",
        "- Redis runs on the same machine as its clients (redis-benchmark, 50 clients); "
        "updates go to a master with one replica attached.",
        "- Bytes vs broadcast compares our bytes per update at cluster size N with sending the whole "
        "serialized session to the N-1 other nodes.",
        f"- Redis Sentinel failover per run (outage / acknowledged writes lost): {per_run or 'n/a'}.",
        "- Redis memory is `used_memory` growth per session; Redis state transfer is a new replica's "
        "full sync of the same data set.",
    ]
    meta = ours_doc.get("meta")
    if isinstance(meta, dict) and meta:
        notes.append(f"- Ours: {json.dumps(meta)}")
    text = "\n".join(["# Benchmark results", "", summary_block(rows, peer_doc, ours_doc, today), "",
                      f"![ratios]({png_name})" if png_name else "", "", *notes, ""])
    path.write_text(text)


def ensure_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        pass
    print("[report] matplotlib missing: pip install matplotlib", file=sys.stderr)
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"], timeout=600)
    if r.returncode != 0:
        return False
    import importlib
    importlib.invalidate_caches()
    try:
        import matplotlib  # noqa: F401,F811
        return True
    except ImportError:
        return False


def write_chart(path: Path, rows: list[Row]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rel = [r for r in rows if r.ratio is not None]
    absol = [r for r in rows if r.budget_fraction() is not None]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5), gridspec_kw={"width_ratios": [3, 1.4]})
    color = {True: "#2e7d32", False: "#c62828", None: "#607d8b"}

    def panel(ax, items, values, title, ylabel, target_of):
        ax.set_title(title, fontsize=11)
        if not items:
            ax.text(0.5, 0.5, "no data yet\n(ours missing)", ha="center", va="center",
                    transform=ax.transAxes, fontsize=12, color="#607d8b")
            ax.set_xticks([])
            ax.set_yticks([])
            return
        xs = range(len(items))
        ax.bar(xs, values, color=[color[r.met] for r in items])
        targets = [target_of(r) for r in items]
        tx = [x for x, t in zip(xs, targets) if t]
        ty = [t for t in targets if t]
        if tx:
            ax.scatter(tx, ty, marker="_", s=900, color="black", linewidths=2, zorder=3, label="target")
            ax.legend(loc="best", fontsize=8)
        ax.axhline(1.0, color="#999", lw=0.8, ls="--")
        allv = [v for v in values + ty if v and v > 0]
        if allv and max(allv) / min(allv) > 20:
            ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.set_xticks(list(xs))
        ax.set_xticklabels([r.chart_label for r in items], rotation=35, ha="right", fontsize=8)
        for x, v in zip(xs, values):
            ax.annotate(fmt_ratio(v), (x, v), ha="center", va="bottom", fontsize=7)

    panel(axes[0], rel, [r.ratio for r in rel], "ours / Redis (green: target met, red: missed)",
          "ratio (log scale when wide)",
          lambda r: r.target[1] if r.target and r.target[0].startswith("ratio") else None)
    panel(axes[1], absol, [r.budget_fraction() for r in absol], "ours / absolute target",
          "fraction of budget (<= 1 met)", lambda r: 1.0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def update_readme(path: Path, block: str) -> bool:
    if not path.exists():
        print(f"[report] {path} does not exist; README not updated", file=sys.stderr)
        return False
    text = path.read_text()
    b, e = text.find(BEGIN), text.find(END)
    if b < 0 or e < 0 or e < b:
        print(f"[report] {path} has no {BEGIN} ... {END} markers; README not updated",
              file=sys.stderr)
        return False
    new = text[:b + len(BEGIN)] + "\n" + block + "\n" + text[e:]
    path.write_text(new)
    return True


def load_json(path: str | None, what: str, required: bool) -> dict:
    if not path:
        return {}
    try:
        with open(path) as f:
            d = json.load(f)
        if not isinstance(d, dict):
            raise ValueError("top level is not an object")
        return d
    except (OSError, ValueError) as e:
        if required:
            raise SystemExit(f"cannot read {what} {path}: {e}")
        print(f"[report] warning: cannot read {what} {path}: {e}; treating as empty",
              file=sys.stderr)
        return {}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Write RESULTS.md, bench.png and the README section.")
    ap.add_argument("--peer", required=True, help="JSON written by redis_peer.py")
    ap.add_argument("--ours", help="our results JSON (schema in this file's docstring)")
    ap.add_argument("--outdir", default=str(REPO / "results"))
    ap.add_argument("--readme", help="README to update between the bench markers")
    ap.add_argument("--no-png", action="store_true")
    args = ap.parse_args(argv)

    peer_doc = load_json(args.peer, "peer JSON", required=True)
    ours_doc = load_json(args.ours, "ours JSON", required=False)
    rows = build_rows(ours_doc, peer_doc)
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)

    png = None
    if not args.no_png:
        if ensure_matplotlib():
            write_chart(out / "bench.png", rows)
            png = "bench.png"
        else:
            print("[report] matplotlib unavailable: bench.png not written", file=sys.stderr)
    write_markdown(out / "RESULTS.md", rows, peer_doc, ours_doc, today, png)
    print(f"[report] wrote {out / 'RESULTS.md'}" + (f" and {out / png}" if png else ""),
          file=sys.stderr)
    rc = 0
    if args.readme:
        block = summary_block(rows, peer_doc, ours_doc, today)
        if png:
            # The chart is committed beside the README, so the README shows it.
            docs = Path(args.readme).resolve().parent / "docs"
            docs.mkdir(exist_ok=True)
            shutil.copyfile(out / png, docs / "bench.png")
            block = block.rstrip("\n") + "\n\n![ours / Redis, and ours / target, per figure](docs/bench.png)\n"
        if update_readme(Path(args.readme), block):
            print(f"[report] updated {args.readme}", file=sys.stderr)
        else:
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
