#!/usr/bin/env python3
"""Soak: 5 session-node processes (R=3) in a network lab under the register workload, random
network faults one after another for --minutes, each healed and followed by the steady-state
check; the safety checks of the network suite throughout (netcluster.py: (a) no acknowledged
write lost, (b) no write acknowledged on the minority side after the grace, (c) one leader per
term, (d) steady state within STEADY_BOUND of each heal, then the term holds).

    python3 Tests/fault/soak.py --minutes 30 [--seed S] [--lab K]

Prints the seed first (a run is replayed, as far as timing allows, with --seed), one line per
fault, and a summary; exits 1 on any violation, 2 when the harness itself failed. Needs root.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cluster import HarnessError  # noqa: E402
from netcluster import (CUT_SECONDS, FLAP_SECONDS, IMPAIR_SECONDS, STEADY_BOUND, ClusterMonitor,  # noqa: E402
                        FaultRunner, NetCluster, Workload, format_counts, kinds_for,
                        lost_writes, replicas_for, require_netns, summarize)

NODES = 5


def duration_for(kind: str, rng: random.Random) -> float:
    """Fault lengths vary around the suite's: cuts 2-6 s, flaps 10-20 s, impairments 5-10 s."""
    if kind == "flap":
        return float(rng.choice(range(10, int(FLAP_SECONDS) + 1, 2)))
    if kind in ("loss", "delay", "duplicate"):
        return rng.uniform(5.0, max(5.0, IMPAIR_SECONDS + 2))
    return rng.uniform(2.0, max(2.0, CUT_SECONDS + 2))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="how long to inject faults (default 30)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one, printed)")
    ap.add_argument("--lab", type=int, default=int(os.environ.get("NETFAULT_SOAK_LAB", "32")),
                    help="network lab number K (10.231.K.0/24, namespaces sscK-*; default 32)")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    rng = random.Random(seed)
    t0 = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - t0:7.1f}s] {msg}", flush=True)

    log(f"soak: seed {seed}, {args.minutes:g} minutes, {NODES} nodes (R={replicas_for(NODES)}), lab {args.lab}")
    try:
        require_netns()
    except HarnessError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2

    # SIGTERM ends the run like Ctrl-C: the finally blocks stop every process and remove the lab.
    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)

    nc = NetCluster(args.lab, NODES, replicas_for(NODES), name="soak")
    # A hung run cannot outlive its budget by much: SIGKILL the nodes and nginx (by PID); the
    # main thread's waits then fail and its finally removes the lab. Then, as a last resort,
    # remove the lab from here and exit.
    budget = args.minutes * 60 + 300

    def watchdog():
        log(f"watchdog: run past {budget:.0f}s, killing the cluster's processes")
        nc.emergency_stop()

    def last_resort():
        log("watchdog: main thread still stuck, removing the lab and exiting")
        nc.close()
        os._exit(2)
    timers = [threading.Timer(budget, watchdog), threading.Timer(budget + 120, last_resort)]
    for t in timers:
        t.daemon = True
        t.start()

    results = []
    violations: list[str] = []
    lost_sids: set = set()
    loss_events = 0
    wl = mon = None
    harness_error = None
    longest_gap = (0.0, 0.0)
    acked = written = 0
    try:
        nc.start()
        log(f"cluster up: {', '.join(f'{nd.id}={nd.host} pid {nd.pid}' for nd in nc.cluster.nodes)}; "
            f"nginx :{nc.cluster.proxy_port}; logs {nc.cluster.logdir}")
        wl = Workload(nc.cluster)
        wl.create_sessions()
        mon = ClusterMonitor(nc.cluster).start()
        runner = FaultRunner(nc, wl, mon, rng, log=log)
        wl.start()
        time.sleep(2.0)
        deadline = t0 + args.minutes * 60
        seen_leader_violations = 0
        while time.monotonic() < deadline:
            kind = rng.choice(kinds_for(NODES))
            res = runner.run(kind, random_any=True, duration=duration_for(kind, rng))
            results.append(res)
            lost_sids |= res.lost_sids
            loss_events += res.lost
            leader_v = mon.violations()
            if len(leader_v) > seen_leader_violations:
                res.violations += leader_v[seen_leader_violations:]
                seen_leader_violations = len(leader_v)
            log(f"#{len(results)} {res.line()}")
            if res.violations:
                violations += [f"fault #{len(results)} {kind}: {v}" for v in res.violations]
                for v in res.violations:
                    log("VIOLATION: " + v)
                log("evidence:\n" + nc.evidence(15))
                if res.heal_to_steady is None and not res.lost_sids and any(
                        "still not steady" in v for v in res.violations):
                    log("the cluster did not recover: stopping the soak")
                    break
            time.sleep(rng.uniform(1.0, 3.0))      # quiet time between faults
        # final: writes stopped, every session on every node once more
        wl.stop()
        problems, final_lost = lost_writes(nc.cluster, wl)
        lost_sids |= final_lost
        loss_events += len(final_lost)
        if problems:
            violations.append(f"final read: {len(problems)} problems:\n    " + "\n    ".join(problems[:12]))
        writes = wl.snapshot()
        written = len(writes)
        acked = sum(1 for w in writes if w.status == 204)
        longest_gap = wl.longest_gap(runner.minority_at)
    except KeyboardInterrupt as exc:
        harness_error = f"interrupted ({exc})"
    except Exception as exc:  # noqa: BLE001 - report, clean up, exit 2
        harness_error = f"{type(exc).__name__}: {exc}"
        try:
            log("evidence:\n" + nc.evidence(30))
        except Exception:  # noqa: BLE001
            pass
    finally:
        for t in timers:
            t.cancel()
        try:
            if wl is not None and not wl.stop_evt.is_set():
                wl.stop()
        except Exception as exc:  # noqa: BLE001
            log(f"stopping the workload: {exc}")
        if mon is not None:
            mon.stop()
        nc.close()

    # summary
    by_kind: dict[str, int] = {}
    steady_by_kind: dict[str, list] = {}
    transport: dict[str, float] = {}
    refused = majority = 0
    for r in results:
        by_kind[r.kind] = by_kind.get(r.kind, 0) + 1
        steady_by_kind.setdefault(r.kind, []).append(r.heal_to_steady)
        transport = {k: transport.get(k, 0) + r.transport.get(k, 0) for k in set(transport) | set(r.transport)}
        refused += r.majority_refused
        majority += r.majority_writes
    print("\n===== soak summary =====")
    print(f"seed {seed}; ran {(time.monotonic() - t0) / 60:.1f} min; {NODES} nodes, R={replicas_for(NODES)}")
    print(f"faults injected: {len(results)} ("
          + ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())) + ")")
    print(f"writes: {written} sent, {acked} acknowledged; acknowledged writes lost: {loss_events} "
          f"(sessions found behind their last acknowledged value, {len(lost_sids)} distinct)")
    print(f"majority side during faults: {refused} of {majority} writes refused "
          f"({100 * refused / majority if majority else 0:.1f}%)")
    print(f"longest unavailability (no write acknowledged on the majority side): {longest_gap[0]:.2f}s "
          f"(from +{longest_gap[1] - t0:.1f}s)")
    print(f"time from heal to steady state (bound {STEADY_BOUND:.0f}s): "
          f"{summarize([r.heal_to_steady for r in results])}")
    for k, v in sorted(steady_by_kind.items()):
        print(f"    {k:15s} {summarize(v)}")
    print(f"transport errors counted by the nodes: {format_counts(transport)}")
    print(f"one leader per term: {'ok' if mon is None or not mon.violations() else 'VIOLATED'}"
          + (f"; terms reached {max(mon.terms())}" if mon is not None and mon.terms() else ""))
    if violations:
        print(f"\nVIOLATIONS ({len(violations)}):")
        for v in violations:
            print("  " + v)
    if harness_error:
        print(f"\nharness error: {harness_error}")
    status = 1 if violations else (2 if harness_error else 0)
    print(f"\nresult: {'FAIL' if status == 1 else 'ERROR' if status == 2 else 'PASS'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
