"""Process-level fault runs against real session-node processes behind nginx (issue 4, part 5).

Through nginx (round-robin, not sticky): create sessions, keep updating them from a bounded
thread pool while one node is SIGKILLed, another SIGSTOPped for 3 s then resumed, and the
killed one restarted and rejoined. Then assert:
  - no acknowledged update is lost: every live node, read directly, shows for every session
    the last acknowledged value or a later one written by the test;
  - read-your-writes through every live node;
  - DELETE /session gives 401 for that id on every node;
  - the cluster is back to full replication (/cluster on every node).
"""
from __future__ import annotations

import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cluster import REPORTS, Client, Cluster, HarnessError, metric_sum, replication_problems, wait_until

SESSIONS = int(os.environ.get("FAULT_SESSIONS", "1000"))
WORKERS = int(os.environ.get("FAULT_WORKERS", "16"))
ATTR = "counter"
# Bytes a node puts on the wire to its peers (after compression), from /metrics.
BYTES_SENT_METRIC = "session_cluster_bytes_sent_total"
BYTES_SENT_LABELS = {"stage": "wire"}


class Workload:
    """WORKERS threads; worker i owns sessions i, i+WORKERS, ... and writes each in turn.

    Every session has exactly one writer, so its values are a strictly increasing sequence:
    the last acknowledged value is the highest sequence number that got a 204. A failed
    write is retried on the same session (with a new, higher value) until it is acked.
    """

    def __init__(self, cluster: Cluster, sids: list[str], client: Client):
        self.cluster = cluster
        self.client = client
        self.sids = sids
        self.seq = {sid: 0 for sid in sids}          # highest value attempted
        self.acked = {sid: 0 for sid in sids}        # highest value acknowledged (204)
        self.lock = threading.Lock()
        self.stop_evt = threading.Event()
        self.attempted = 0
        self.acks = 0
        self.failures: list[tuple[float, str, int, str]] = []   # (time, sid, status, detail)
        self.recoveries: list[tuple[float, float, str]] = []     # (first failure, success, sid)
        self.ryw_checks = 0
        self.ryw_violations: list[str] = []
        self.ack_latencies: list[tuple[float, float]] = []       # (start, latency)
        self.in_trouble: set[str] = set()                        # sessions whose last write failed
        self.inflight: dict[int, float] = {}                     # thread -> start of its current write
        self.threads = [threading.Thread(target=self._worker, args=(i,), daemon=True)
                        for i in range(WORKERS)]

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self, timeout: float = 30.0):
        self.stop_evt.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t for t in self.threads if t.is_alive()]
        if alive:
            raise HarnessError(f"{len(alive)} workload threads still busy {timeout}s after stop")

    def write(self, sid: str, port: int | None = None) -> bool:
        with self.lock:
            self.seq[sid] += 1
            value = self.seq[sid]
            self.attempted += 1
        start = time.monotonic()
        me = threading.get_ident()
        with self.lock:
            self.inflight[me] = start
        r = self.client.put_attr(port or self.cluster.proxy_port, sid, ATTR, str(value),
                                 headers={"X-Test-Value": str(value)})
        now = time.monotonic()
        with self.lock:
            self.inflight.pop(me, None)
        if r.status == 204:
            with self.lock:
                self.acks += 1
                self.acked[sid] = max(self.acked[sid], value)
                self.ack_latencies.append((start, now - start))
            return True
        with self.lock:
            self.failures.append((now, sid, r.status, r.headers.get("x-error") or r.text[:120]))
        return False

    def _worker(self, idx: int):
        mine = self.sids[idx::WORKERS]
        rng = random.Random(idx)
        while not self.stop_evt.is_set():
            for sid in mine:
                if self.stop_evt.is_set():
                    return
                first_fail = None
                for _ in range(2000):      # bounded retries; each takes >= 20 ms
                    if self.write(sid):
                        break
                    first_fail = first_fail or time.monotonic()
                    with self.lock:
                        self.in_trouble.add(sid)
                    if self.stop_evt.wait(0.02):
                        return
                else:
                    continue
                if first_fail is not None:
                    with self.lock:
                        self.recoveries.append((first_fail, time.monotonic(), sid))
                        self.in_trouble.discard(sid)
                if rng.random() < 0.1:
                    self._check_ryw(sid)

    def _check_ryw(self, sid: str):
        """Read back, through nginx (so usually another node), what this thread just acked."""
        want = self.acked[sid]
        r = self.client.get_attr(self.cluster.proxy_port, sid, ATTR)
        with self.lock:
            self.ryw_checks += 1
            if r.status == 200 and r.text != str(want):
                self.ryw_violations.append(f"{sid[:8]}: acked {want}, node {r.node} read {r.text!r}")
            elif r.status in (401, 404):
                self.ryw_violations.append(f"{sid[:8]}: acked {want}, node {r.node} answered {r.status}")

    # figures
    def quiet_since(self) -> float:
        with self.lock:
            return self.failures[-1][0] if self.failures else 0.0

    def wait_stable(self, quiet: float, timeout: float, what: str, since: float = 0.0):
        """Until every session whose write failed has been acked again, no write is waiting
        (in flight over 0.25 s), no write failed for `quiet` seconds (counted from `since` at
        the earliest), and acks keep coming (bounded)."""
        def stable():
            acks_before = self.acks
            last_fail = max(self.quiet_since(), since)
            time.sleep(0.2)
            now = time.monotonic()
            with self.lock:
                troubled = len(self.in_trouble)
                waiting = any(now - st > 0.25 for st in self.inflight.values())
            return not troubled and not waiting and now - last_fail >= quiet and self.acks > acks_before
        try:
            wait_until(stable, timeout, interval=0.05, what=what)
        except HarnessError as exc:
            with self.lock:
                recent = [f"{f[1][:8]}: {f[2]} {f[3]}" for f in self.failures[-5:]]
                troubled = len(self.in_trouble)
            raise HarnessError(f"{exc}; {troubled} sessions still failing; last failures: {recent}") from None

    def timeline(self, t0: float, step: float = 0.5) -> str:
        """Failed writes per `step` seconds after t0, by status: '+1.5s 12x503 3x502'."""
        buckets: dict[int, dict[int, int]] = {}
        with self.lock:
            for (t, _, status, _) in self.failures:
                if t >= t0:
                    b = buckets.setdefault(int((t - t0) / step), {})
                    b[status] = b.get(status, 0) + 1
        return ", ".join(f"+{k * step:.1f}s " + " ".join(f"{n}x{st}" for st, n in sorted(v.items()))
                         for k, v in sorted(buckets.items())) or "none"

    def failures_between(self, t0: float, t1: float) -> int:
        with self.lock:
            return sum(1 for f in self.failures if t0 <= f[0] < t1)

    def failover_after(self, t_fault: float, t_end: float) -> tuple[float, int]:
        """(seconds from the fault until every session was writable again, failed writes).

        The later of: the ack that ended each run of failed writes that failed after the
        fault, and the end (before t_end, when the next fault begins) of the last write that
        waited over 0.25 s. Call it once the failing sessions have been acked again."""
        with self.lock:
            failed = [f for f in self.failures if t_fault <= f[0] < t_end]
            recovered = [s for (ff, s, _) in self.recoveries if t_fault <= s and ff < t_end]
            waited = [st + lat for (st, lat) in self.ack_latencies
                      if lat > 0.25 and t_fault <= st + lat < t_end]
        if failed and not recovered:
            return float("inf"), len(failed)
        return max(recovered + waited + [t_fault]) - t_fault, len(failed)


def gather(fn, items) -> list:
    """fn over items on WORKERS threads; the lists fn returns, concatenated."""
    with ThreadPoolExecutor(WORKERS) as pool:
        return [x for out in pool.map(fn, items) for x in out]


def until_answered(call, tries: int = 10, pause: float = 0.1):
    """Retries a request while it gets no answer from a node (transport error, 502/503/504)."""
    r = None
    for _ in range(tries):
        r = call()
        if r.status not in (0, 502, 503, 504):
            return r
        time.sleep(pause)
    return r


def wait_full_replication(cluster: Cluster, timeout: float) -> float:
    """Until /cluster on every node shows all members alive and every partition with R replicas."""
    start = time.monotonic()
    last: dict[str, list[str]] = {"problems": []}

    def ok():
        statuses = {nd.id: cluster.status(nd) for nd in cluster.nodes}
        last["problems"] = replication_problems(statuses, cluster.n, cluster.replicas)
        return not last["problems"]
    try:
        wait_until(ok, timeout, interval=0.25, what="full replication on every node")
    except HarnessError as exc:
        raise HarnessError(f"{exc}; last /cluster problems: {'; '.join(last['problems'])}") from None
    return time.monotonic() - start


def nginx_lines_for(cluster: Cluster, sid: str, limit: int = 3) -> str:
    """The last PUTs of this session in nginx's access log, upstreams named by node id."""
    try:
        with open(cluster.nginx.access_log) as f:
            lines = [ln.rstrip() for ln in f if f"sid={sid}" in ln and " PUT " in ln]
    except OSError:
        return "<no nginx access log>"
    names = {f"127.0.0.1:{nd.http_port}": nd.id for nd in cluster.nodes}
    lines = [re.sub(r"127\.0\.0\.1:\d+", lambda m: names.get(m.group(0), m.group(0)),
                    ln.replace(f"sid={sid} ", "")) for ln in lines[-limit:]]
    return "\n      ".join(lines)


class DirectProbe:
    """Writes its own sessions directly to the nodes that survive a fault (no nginx), one at a
    time, so the nodes' own failover shows: the slowest write and any non-204 answer."""

    def __init__(self, cluster: Cluster, sids: list[str], nodes):
        self.cluster, self.sids, self.nodes = cluster, sids, nodes
        self.client = Client(timeout=15.0)
        self.results: list[tuple[float, float, int, str]] = []   # (start, latency, status, node id)
        self.stop_evt = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        seq = 0
        for i in range(100000):
            if self.stop_evt.is_set():
                return
            seq += 1
            nd = self.nodes[i % len(self.nodes)]
            sid = self.sids[i % len(self.sids)]
            start = time.monotonic()
            r = self.client.put_attr(nd.http_port, sid, "probe", str(seq))
            self.results.append((start, time.monotonic() - start, r.status, nd.id))
            time.sleep(0.005)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_evt.set()
        self.thread.join(20)
        self.client.close()

    def summary(self, t_fault: float) -> str:
        after = [r for r in self.results if r[0] + r[1] >= t_fault]
        if not after:
            return "no direct writes"
        slow = max(after, key=lambda r: r[1])
        bad: dict[int, int] = {}
        for r in after:
            if r[2] != 204:
                bad[r[2]] = bad.get(r[2], 0) + 1
        last_bad = max((r[0] + r[1] for r in after if r[2] != 204 or r[1] > 0.25), default=None)
        return (f"{len(after)} direct writes to {', '.join(nd.id for nd in self.nodes)}: slowest "
                f"{slow[1]:.2f}s ({slow[2]} from {slow[3]}, started at +{slow[0] - t_fault:.2f}s), "
                f"not 204: {' '.join(f'{n}x{st}' for st, n in sorted(bad.items())) or 'none'}, "
                f"last slow or failed one ended at " + (f"+{last_bad - t_fault:.2f}s" if last_bad else "-"))


def wait_seen_down(cluster: Cluster, victim, timeout: float) -> float:
    """Until every other running node's /cluster shows the victim not alive (or gone)."""
    start = time.monotonic()

    def seen():
        for nd in cluster.live_nodes():
            if nd is victim:
                continue
            st = cluster.status(nd)
            if st is None:
                return False
            if any(m.get("id") == victim.id and m.get("state") == "alive" for m in st.get("members") or []):
                return False
        return True
    wait_until(seen, timeout, interval=0.05, what=f"the other nodes to see {victim.id} down")
    return time.monotonic() - start


def leader_node(cluster: Cluster):
    for nd in cluster.nodes:
        st = cluster.status(nd) or {}
        leader = st.get("leader")
        for cand in cluster.nodes:
            if leader and leader in (cand.id, f"127.0.0.1:{cand.bind_port}"):
                return cand
    return None


def bytes_sent(cluster: Cluster) -> tuple[float, list[str]]:
    total, names = 0.0, set()
    for nd in cluster.live_nodes():
        m = cluster.metrics(nd)
        total += metric_sum(m, BYTES_SENT_METRIC, **BYTES_SENT_LABELS)
        names |= {k.split("{")[0] for k in m if "bytes" in k}
    return total, sorted(names)


def run_fault_scenario(make_cluster, n: int, replicas: int):
    t_test = time.monotonic()
    cluster: Cluster = make_cluster(n, replicas)
    client = Client(timeout=15.0)
    problems: list[str] = []
    wait_full_replication(cluster, 60)

    # 1. sessions through nginx, each with a first acknowledged value 0
    def create(_):
        return client.create_with_value(cluster.proxy_port, ATTR, "0", tries=5, pause=0.05)
    with ThreadPoolExecutor(WORKERS) as pool:
        sids = list(pool.map(create, range(SESSIONS)))
        probe_sids = list(pool.map(create, range(32)))
    assert len(set(sids)) == SESSIONS, "session ids are not unique"
    t_created = time.monotonic()

    # 2. keep updating; steady state first, for bytes on the wire per update
    wl = Workload(cluster, sids, client)
    bytes0, _ = bytes_sent(cluster)
    acks0 = wl.acks
    wl.start()
    try:
        time.sleep(3)
        bytes1, byte_metrics = bytes_sent(cluster)
        steady_acks = wl.acks - acks0
        per_update = (bytes1 - bytes0) / steady_acks if steady_acks else float("nan")

        # 3. SIGKILL one node (the leader if /cluster names one), SIGSTOP another for 3 s
        victim = leader_node(cluster) or cluster.nodes[0]
        pausee = next(nd for nd in reversed(cluster.nodes) if nd is not victim)
        with DirectProbe(cluster, probe_sids, [nd for nd in cluster.nodes if nd is not victim]) as probe:
            time.sleep(0.5)
            t_kill = time.monotonic()
            victim.kill()
            detect = wait_seen_down(cluster, victim, 30)
            wl.wait_stable(quiet=2.0, since=t_kill, timeout=45,
                           what=f"writes succeeding again after SIGKILL of {victim.id}")
        t_pause = time.monotonic()
        pausee.pause()
        time.sleep(3)
        pausee.resume()
        wl.wait_stable(quiet=2.0, since=t_pause, timeout=45,
                       what=f"writes succeeding again after SIGCONT of {pausee.id}")

        # 4. restart the killed node; it rejoins; back to full replication, under load
        t_restart = time.monotonic()
        cluster.restart(victim)
        t_healthy = time.monotonic()
        rejoin = wait_full_replication(cluster, 60)
        time.sleep(2)
    finally:
        wl.stop()
    t_stopped = time.monotonic()
    failover, failed_after_kill = wl.failover_after(t_kill, t_pause)
    stall, failed_after_pause = wl.failover_after(t_pause, t_restart)
    failed_restart = wl.failures_between(t_restart, t_stopped)
    t_stopped = time.monotonic()

    # 5. no acknowledged update lost: every session, read directly on every node
    def read_all(sid):
        return sid, {nd.id: until_answered(lambda: client.get_attr(nd.http_port, sid, ATTR), tries=3)
                     for nd in cluster.nodes}
    lost: list[str] = []
    unreadable: list[str] = []
    diverged: list[str] = []
    with ThreadPoolExecutor(WORKERS) as pool:
        reads = list(pool.map(read_all, sids))
    for sid, per_node in reads:
        want, top = wl.acked[sid], wl.seq[sid]
        values = set()
        for node_id, r in per_node.items():
            if r.status != 200:
                (lost if r.status in (401, 404) else unreadable).append(
                    f"{sid[:8]} on {node_id}: {r.status} {r.text[:80]!r}, last acked {want}")
                continue
            try:
                got = int(r.text)
            except ValueError:
                lost.append(f"{sid[:8]} on {node_id}: read {r.text[:40]!r}, last acked {want}")
                continue
            values.add(got)
            if got < want or got > top:
                lost.append(f"{sid[:8]} on {node_id}: read {got}, last acked {want} (highest written {top})\n"
                            f"      nginx: {nginx_lines_for(cluster, sid)}")
        if len(values) > 1:
            diverged.append(sid)
    # replicas must converge once writes stop (I3): re-read the diverged ones, bounded
    if diverged:
        def converged():
            still = []
            for sid in diverged:
                vals = {client.get_attr(nd.http_port, sid, ATTR).text for nd in cluster.nodes}
                if len(vals) > 1:
                    still.append(f"{sid[:8]}: {sorted(vals)}")
            diverged[:] = [s for s in diverged if any(s.startswith(x[:8]) for x in still)]
            return not still
        try:
            wait_until(converged, 10, interval=0.5, what="replicas to converge")
        except HarnessError:
            problems.append(f"{len(diverged)} sessions still differ between nodes 10s after writes stopped: "
                            f"{diverged[:5]}")
    if lost:
        problems.append(f"{len(lost)} acknowledged updates lost:\n    " + "\n    ".join(lost[:10]))
    if unreadable:
        problems.append(f"{len(unreadable)} reads failed after recovery:\n    " + "\n    ".join(unreadable[:10]))
    if wl.ryw_violations:
        problems.append(f"{len(wl.ryw_violations)} read-your-writes violations through nginx during faults:\n    "
                        + "\n    ".join(wl.ryw_violations[:10]))

    # 6. read-your-writes through every live node: write on node X, read on every node at once
    sample = sids[:100]

    def ryw(sid):
        bad = []
        for writer in cluster.nodes:
            if not wl.write(sid, port=writer.http_port):
                bad.append(f"{sid[:8]}: PUT on {writer.id} not acked ({wl.failures[-1][2]})")
                continue
            want = str(wl.acked[sid])
            for reader in cluster.nodes:
                r = client.get_attr(reader.http_port, sid, ATTR)
                if r.status != 200 or r.text != want:
                    bad.append(f"{sid[:8]}: acked {want} on {writer.id}, {reader.id} gave {r.status} {r.text[:20]!r}")
        return bad
    ryw_bad = gather(ryw, sample)
    if ryw_bad:
        problems.append(f"{len(ryw_bad)} read-your-writes failures through live nodes:\n    "
                        + "\n    ".join(ryw_bad[:10]))

    # 7. DELETE /session through nginx: that id gives 401 on every node, and stays dead
    doomed = sids[100:150]

    def invalidate(sid):
        bad = []
        r = until_answered(lambda: client.request(cluster.proxy_port, "DELETE", "/session", session=sid))
        if r.status != 204:
            return [f"{sid[:8]}: DELETE /session gave {r.status} {r.text[:60]!r}"]
        for nd in cluster.nodes:
            g = client.request(nd.http_port, "GET", "/session", session=sid)
            if g.status != 401:
                bad.append(f"{sid[:8]}: GET /session on {nd.id} after DELETE gave {g.status}")
        p = until_answered(lambda: client.put_attr(cluster.proxy_port, sid, ATTR, "resurrect"))
        if p.status != 401:
            bad.append(f"{sid[:8]}: PUT after DELETE gave {p.status}, want 401")
        g = client.request(cluster.nodes[0].http_port, "GET", "/session", session=sid)
        if g.status != 401:
            bad.append(f"{sid[:8]}: session came back on {cluster.nodes[0].id} ({g.status})")
        return bad
    del_bad = gather(invalidate, doomed)
    if del_bad:
        problems.append(f"{len(del_bad)} invalidation failures:\n    " + "\n    ".join(del_bad[:10]))

    # 8. full replication, as every node sees it
    try:
        wait_full_replication(cluster, 30)
    except HarnessError as exc:
        problems.append(str(exc))

    statuses = [f"{r}×{sum(1 for f in wl.failures if f[2] == r)}" for r in sorted({f[2] for f in wl.failures})]
    report = (
        f"[{n} nodes, R={replicas}] sessions {SESSIONS}, updates attempted {wl.attempted}, acked {wl.acks}, "
        f"acknowledged updates lost {len(lost)}; failed writes by status {' '.join(statuses) or 'none'}\n"
        f"  SIGKILL {victim.id}: seen down by the others after {detect:.2f}s, all sessions writable again after "
        f"{failover:.2f}s through nginx ({failed_after_kill} failed writes); {probe.summary(t_kill)}\n  "
        f"SIGSTOP {pausee.id} 3s: writes recovered {stall:.2f}s after the stop began ({failed_after_pause} failed); "
        f"{victim.id} restarted: /health after {t_healthy - t_restart:.2f}s, full replication "
        f"{rejoin:.2f}s later ({failed_restart} failed writes)\n"
        f"  read-your-writes checks {wl.ryw_checks} during faults + {len(sample) * n * n} after, violations "
        f"{len(wl.ryw_violations) + len(ryw_bad)}; invalidated {len(doomed)}, failures {len(del_bad)}; "
        f"bytes sent per update (steady state, {steady_acks} updates) "
        + (f"{per_update:.0f}" if per_update == per_update else "n/a")
        + f" [{BYTES_SENT_METRIC}{{stage=\"wire\"}}; /metrics has {', '.join(byte_metrics) or 'no bytes metric'}]; "
        f"run {time.monotonic() - t_test:.0f}s (create {t_created - t_test:.0f}s, faults "
        f"{t_stopped - t_created:.0f}s)\n"
        f"  failed writes per 0.5 s after the SIGKILL (pause at +{t_pause - t_kill:.1f}s, restart at "
        f"+{t_restart - t_kill:.1f}s): {wl.timeline(t_kill)}")
    REPORTS.append(report)
    print(report)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("n,replicas", [(3, 2), (5, 3)], ids=["3-nodes", "5-nodes"])
def test_kill_pause_restart_loses_no_acknowledged_update(make_cluster, n, replicas):
    run_fault_scenario(make_cluster, n, replicas)


def test_missing_binary_fails_clearly(monkeypatch, tmp_path):
    """The suite never skips silently: without a binary it fails, saying what to do."""
    import cluster as harness
    monkeypatch.setenv("SESSION_NODE_BIN", str(tmp_path / "no-such-session-node"))
    with pytest.raises(HarnessError, match="swift build"):
        harness.node_binary()


def test_every_session_writable_after_idle_leader_kill(make_cluster):
    """SIGKILL the leader of an idle cluster (what `session-node demo` does), then write every
    session again through nginx: each must take a write within 30 s."""
    n, replicas, count = 3, 2, 200
    cluster: Cluster = make_cluster(n, replicas)
    client = Client(timeout=15.0)
    wait_full_replication(cluster, 60)
    sids = []
    for _ in range(count):
        sid = None
        for _attempt in range(20):
            sid, _ = client.create_session(cluster.proxy_port)
            if sid:
                break
            time.sleep(0.05)
        assert sid, "could not create a session through nginx"
        sids.append(sid)
    for value in ("1", "2"):
        for sid in sids:
            r = until_answered(lambda: client.put_attr(cluster.proxy_port, sid, ATTR, value), tries=20)
            assert r.status == 204, f"setup write to {sid[:8]}: {r.status} {r.text[:100]}"
    victim = leader_node(cluster) or cluster.nodes[0]
    t_kill = time.monotonic()
    victim.kill()
    pending = list(sids)
    deadline = t_kill + 30
    while pending and time.monotonic() < deadline:
        pending = [sid for sid in pending if client.put_attr(cluster.proxy_port, sid, ATTR, "3").status != 204]
        if pending:
            time.sleep(0.05)
    writable = time.monotonic() - t_kill
    details = []
    for sid in pending[:2]:
        for nd in cluster.live_nodes() * 2:   # each survivor twice: does one node's failure hold up the other?
            start = time.monotonic()
            r = client.put_attr(nd.http_port, sid, ATTR, "4")
            details.append(f"{sid[:8]}: PUT directly on {nd.id}: {r.status} after {time.monotonic() - start:.2f}s "
                           f"{r.text[:100]}")
    report = (f"[{n} nodes, R={replicas}, idle] SIGKILL of leader {victim.id}: "
              + (f"all {count} sessions writable again after {writable:.2f}s" if not pending else
                 f"{len(pending)} of {count} sessions NOT writable {writable:.0f}s later"))
    REPORTS.append(report + "".join("\n  " + d for d in details))
    assert not pending, report + "\n  " + "\n  ".join(details)


def test_sessions_of_surviving_owners_take_writes_across_a_leader_kill(make_cluster):
    """SIGKILL the leader while one writer per session updates sessions owned by the two
    survivors, each write sent straight to its owner. Their owners never go away, so no
    write may fail: an owner whose lease from the dead leader ran out waits for the next
    leader's (a pause), it does not answer 503. Before, 93 to 432 writes failed in 4 of 6
    kills. The retry covers one election round: after a split vote (term up by more than 1)
    only 503s are allowed, as the report line shows."""
    cluster: Cluster = make_cluster(3, 2)
    wait_full_replication(cluster, 60)
    victim = leader_node(cluster)
    assert victim, "no leader in /cluster"
    client = Client(timeout=10.0)
    owned: list[tuple[object, str]] = []
    for nd in cluster.nodes:
        if nd is victim:
            continue
        mine = 0
        for _attempt in range(200):
            if mine == 10:
                break
            # A node draws new ids in partitions it owns (RoutingTable.newSessionID).
            sid, _ = client.create_session(nd.http_target)
            if sid:
                owned.append((nd, sid))
                mine += 1
        assert mine == 10, f"could not create 10 sessions on {nd.id}"
    lock = threading.Lock()
    stop = threading.Event()
    outcomes: list[tuple[float, float, int, str]] = []   # (start, latency, status, detail)

    def writer(nd, sid):
        own = Client(timeout=10.0)
        value = 0
        while not stop.is_set():
            value += 1
            start = time.monotonic()
            r = own.put_attr(nd.http_target, sid, ATTR, str(value))
            with lock:
                outcomes.append((start, time.monotonic() - start, r.status, f"{nd.id} {sid[:8]}: {r.text[:80]}"))

    threads = [threading.Thread(target=writer, args=pair, daemon=True) for pair in owned]
    for th in threads:
        th.start()
    time.sleep(1.0)
    term_before = (cluster.status(owned[0][0]) or {}).get("term", 0)
    t_kill = time.monotonic()
    victim.kill()
    time.sleep(3.0)
    stop.set()
    for th in threads:
        th.join(15)
    term_after = max((cluster.status(nd) or {}).get("term", 0) for nd in cluster.live_nodes())
    after = [o for o in outcomes if o[0] >= t_kill]
    failed = [o for o in after if o[2] != 204]
    report = (f"[3 nodes, R=2] SIGKILL of leader {victim.id}: {len(after)} writes to survivors' sessions "
              f"in 3 s, {len(failed)} failed, longest {max((o[1] for o in after), default=0):.2f}s, "
              f"term {term_before} -> {term_after}")
    REPORTS.append(report)
    assert len(after) > 100, report
    # The retry covers one election round; a split vote (a later term) may outlast it.
    if term_after - term_before > 1:
        assert all(o[2] == 503 for o in failed), report
        return
    assert not failed, report + "".join(f"\n  +{o[0] - t_kill:.2f}s {o[2]} {o[3]}" for o in failed[:5])


def test_a_request_nginx_gave_up_on_does_not_land_later(make_cluster):
    """nginx gives up on a paused node after proxy_read_timeout and sends the PUT to the next
    node (which, before deadlines, acknowledged it; now it refuses it too, the request being
    past its deadline everywhere); the client then writes a newer value. The paused node still
    holds the first copy of the PUT: before request deadlines it applied it when it woke, over
    the newer acknowledged value (the kill/pause scenario above saw that read-your-writes
    violation in 1 run of 20). With --request-deadline equal to nginx's timeout (the harness
    sets it), the woken node runs the request and forwards its write, and the owner refuses it:
    the owner must count the refusal. R = 1 and a session owned by another node, so the pause
    holds up no write but the stale copy; shorter than downAfter (600 ms), so the woken node is
    still a member and would forward it."""
    timeout = 0.3
    cluster: Cluster = make_cluster(3, 1, upstream_timeout=timeout)
    wait_full_replication(cluster, 60)
    client = Client(timeout=10.0)
    leader = leader_node(cluster)
    assert leader, "no leader in /cluster"
    victim = next(nd for nd in cluster.nodes if nd is not leader)
    owner = next(nd for nd in cluster.nodes if nd is not leader and nd is not victim)
    sid, _ = client.create_session(owner.http_target)
    assert sid, "could not create a session on its owner"
    refused_before = metric_sum(cluster.metrics(owner), DEADLINE_METRIC)
    attempts = []
    for attempt in range(5):
        r = until_answered(lambda: client.put_attr(owner.http_port, sid, ATTR, "0"), tries=20)
        assert r.status == 204, f"setup write: {r.status} {r.text[:80]}"
        view = view_of(cluster.status(owner))
        victim.pause()
        t_pause = time.monotonic()
        stale = None
        try:
            for i in range(1, 4):
                value = f"a{attempt}v{i}"
                start = time.monotonic()
                r = client.put_attr(cluster.proxy_port, sid, ATTR, value, headers={"X-Test-Value": value})
                if time.monotonic() - start >= timeout * 0.9:   # nginx waited on the paused node
                    stale = (value, r.status)
                    break
            latest = f"a{attempt}latest"
            acked = client.put_attr(owner.http_port, sid, ATTR, latest).status == 204
            held = time.monotonic() - t_pause
        finally:
            victim.resume()
        time.sleep(1.5)    # the woken node reads the held request and would forward it
        still_member = all(victim.id in [m.get("id") for m in (cluster.status(nd) or {}).get("members", [])]
                           for nd in (owner, leader))
        same_view = view_of(cluster.status(owner)) == view
        attempts.append(f"attempt {attempt}: stale={stale} latest acked={acked} held {held:.2f}s "
                        f"member={still_member} same view={same_view}")
        if not (stale and acked and held < 0.55 and still_member and same_view):
            continue    # the scenario did not arise (nginx did not pick the paused node, or a view change): again
        reads = {nd.id: client.get_attr(nd.http_port, sid, ATTR) for nd in cluster.nodes}
        got = {k: (r.status, r.text) for k, r in reads.items()}
        assert all(v == (200, latest) for v in got.values()), (
            f"{stale[0]} (nginx answered {stale[1]} after it gave up on {victim.id}) landed after the newer "
            f"acknowledged {latest}: reads {got}\n  nginx: {nginx_lines_for(cluster, sid, 6)}\n  "
            + "\n  ".join(attempts))
        refused = metric_sum(cluster.metrics(owner), DEADLINE_METRIC) - refused_before
        assert refused >= 1, f"the owner {owner.id} counted no write refused past its deadline\n  " + "\n  ".join(attempts)
        REPORTS.append(f"[3 nodes, R=1] held copy of a PUT nginx gave up on after {timeout}s (nginx answered "
                       f"{stale[1]}): refused by the owner ({refused:.0f} counted on {owner.id}); {attempt + 1} attempt(s)")
        return
    raise AssertionError("the scenario never arose in 5 attempts:\n  " + "\n  ".join(attempts))


def view_of(status: dict | None) -> tuple:
    return ((status or {}).get("term"), (status or {}).get("viewEpoch"))


DEADLINE_METRIC = "session_cluster_writes_past_deadline_total"
