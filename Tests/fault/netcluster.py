"""Network faults against session-node clusters in a netns lab: workload, faults and checks.

Shared by test_network_faults.py (one fault per test) and soak.py (random faults for minutes).
Each node runs in its own network namespace of a netns.NetworkLab (see cluster.Cluster(lab=));
the test process and nginx stay in the root namespace and reach every node over HTTP, which
the faults never touch (they match the peer port only).

The checks, for every fault:
  (a) no acknowledged write lost: once the cluster is steady again, every session read
      directly on every node shows its last acknowledged value or a later one the test wrote;
  (b) no write acknowledged on the minority side: a write that began at least GRACE after the
      cut was in place and was answered before the heal began must not be a 204 from a node of
      the cut-off side (the node that answered: X-Node, through nginx too);
  (c) one leader per term: /cluster of every node is polled every POLL_INTERVAL; two nodes
      ever claiming role "leader" for the same term is a failure;
  (d) steady state within STEADY_BOUND of the heal (same leader, term and viewEpoch on every
      node, every member alive, leases valid, nothing filling, full replication, a write
      through every node acknowledged and read back alike on every node), then the term and
      leader unchanged for TERM_HOLD seconds.
Only the Python standard library is used.
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from cluster import (LAB_PEER_PORT, Client, Cluster, HarnessError, parse_prometheus,
                     replication_problems, wait_until)
from netns import NetworkLab

# ---------------------------------------------------------------- constants

LEASE_S = 0.5                  # serve's lease (NodeConfiguration.leaseMilliseconds)
DRIFT_S = 0.1                  # serve's clock drift bound (maxClockDriftMilliseconds)
GRACE = LEASE_S + DRIFT_S      # a cut-off node may still acknowledge this long after the cut
STEADY_BOUND = 10.0            # heal -> steady state, at most (seconds)
TERM_HOLD = 5.0                # after steady state the term and leader stay put this long
POLL_INTERVAL = 0.1            # /cluster poll of every node (one leader per term)
ATTR = "reg"                   # the register each session holds
WRITERS = int(os.environ.get("NETFAULT_WRITERS", "5"))
SESSIONS_PER_WRITER = int(os.environ.get("NETFAULT_SESSIONS_PER_WRITER", "3"))
WRITE_PAUSE = 0.02             # seconds between two writes of a writer
CUT_PROBE_SESSIONS = 2        # sessions per node that only CutProbe writes
CUT_PROBE = 1000               # Write.writer of CutProbe writes: CUT_PROBE + node index
CLIENT_TIMEOUT = 12.0          # > nginx's worst case (read timeout 2 s x tries)
NODE_LOG_LEVEL = os.environ.get("NETFAULT_LOG_LEVEL")   # e.g. debug; None: serve's default

# Fault kinds and what they do (durations in seconds).
CUT_SECONDS = 4.0
FLAP_PERIOD = 1.0              # isolated for 1 s, healed for 1 s, ...
FLAP_SECONDS = 20.0
IMPAIR_SECONDS = 8.0
IMPAIRMENTS = {
    "loss": dict(loss=0.15),
    "delay": dict(delay_ms=100, jitter_ms=30),
    "duplicate": dict(duplicate=0.20),
}
KINDS = ["isolate", "isolate-silent", "isolate-leader", "split", "one-way", "flap",
         "loss", "delay", "duplicate"]


def kinds_for(n: int) -> list[str]:
    """The fault kinds that make sense for n nodes (a 2|3 split needs 5)."""
    return [k for k in KINDS if k != "split" or n >= 5]


def replicas_for(n: int) -> int:
    return 2 if n <= 3 else 3


# ---------------------------------------------------------------- environment

def require_netns() -> None:
    """Fails (never skips) with a clear message when the lab cannot run here."""
    if os.geteuid() != 0:
        raise HarnessError("the network fault suite needs root (network namespaces, iptables); "
                           "run it as root, as CI does")
    for tool in ("ip", "iptables", "iptables-restore", "iptables-save"):
        if shutil.which(tool) is None:
            raise HarnessError(f"`{tool}` not found: install iproute2 and iptables")
    probe = "sscprobe-netfault"
    p = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    if p.returncode != 0:
        raise HarnessError(f"`ip netns add` fails here ({p.stderr.strip()}): the network fault "
                           "suite needs network namespaces")


# ---------------------------------------------------------------- cluster in a lab

class NetCluster:
    """A NetworkLab (namespaces sscK-n1..nN) and a Cluster whose nodes run inside it."""

    def __init__(self, k: int, n: int, replicas: int, name: str = "net", upstream_timeout: float = 2.0):
        self.k, self.n, self.replicas = k, n, replicas
        self.upstream_timeout = upstream_timeout     # nginx's read timeout, the nodes' --request-deadline
        self.lab = NetworkLab(k, [f"n{i + 1}" for i in range(n)], peer_ports=[LAB_PEER_PORT])
        self.cluster: Cluster | None = None
        self.name = name

    def start(self, timeout: float = 60.0) -> None:
        self.lab.setup()
        extra = ["--log-level", NODE_LOG_LEVEL] if NODE_LOG_LEVEL else []
        self.cluster = Cluster(self.n, self.replicas, name=f"{self.name}-{self.n}n", lab=self.lab,
                               extra_args=extra, upstream_timeout=self.upstream_timeout)
        self.cluster.start()
        wait_steady(self.cluster, timeout, writes=False)

    @property
    def ids(self) -> list[str]:
        return [f"n{i + 1}" for i in range(self.n)]

    def node(self, node_id: str):
        return next(nd for nd in self.cluster.nodes if nd.id == node_id)

    def close(self) -> None:
        """Stops every process (by PID), then removes the lab (by name). Never raises."""
        try:
            if self.cluster is not None:
                self.cluster.close()
        finally:
            try:
                self.lab.heal()
            except Exception:  # noqa: BLE001 - the lab goes anyway
                pass
            self.lab.close()

    def emergency_stop(self) -> None:
        """From a watchdog thread: SIGKILL the nodes and nginx (the lab is closed by close())."""
        if self.cluster is not None:
            self.cluster.emergency_stop()

    def evidence(self, lines: int = 40) -> str:
        """Node log tails, /cluster of every node, and the lab's iptables rules."""
        parts = []
        if self.cluster is not None:
            parts.append(self.cluster.tails(lines))
            c = Client(timeout=2.0)
            for nd in self.cluster.nodes:
                r = c.request(nd.http_target, "GET", "/cluster")
                parts.append(f"--- /cluster of {nd.id}: {r.status} {r.text[:1500]}")
            c.close()
            parts.append(f"(logs in {self.cluster.logdir}; FAULT_KEEP_TMP=1 keeps them)")
        for node in self.lab.nodes:
            try:
                rules = [ln for ln in self.lab.rules(node).splitlines() if "ssc:" in ln]
            except Exception as exc:  # noqa: BLE001
                rules = [repr(exc)]
            parts.append(f"--- lab rules in {node}: " + ("; ".join(rules) or "none"))
        return "\n".join(parts)


# ---------------------------------------------------------------- /cluster helpers

def statuses(cluster: Cluster, client: Client) -> dict[str, dict | None]:
    out = {}
    for nd in cluster.nodes:
        r = client.request(nd.http_target, "GET", "/cluster")
        try:
            out[nd.id] = r.json() if r.status == 200 else None
        except ValueError:
            out[nd.id] = None
    return out


def current_leader(cluster: Cluster, client: Client | None = None) -> str | None:
    """The leader most nodes with a valid lease name."""
    client = client or Client(timeout=2.0)
    votes: dict[str, int] = {}
    for st in statuses(cluster, client).values():
        if st and st.get("leaseValid") and st.get("leader"):
            votes[st["leader"]] = votes.get(st["leader"], 0) + 1
    return max(votes, key=votes.get) if votes else None


def transport_errors(cluster: Cluster) -> dict[str, float]:
    """session_cluster_transport_errors_total summed over nodes, by 'transport/operation/kind'."""
    out: dict[str, float] = {}
    c = Client(timeout=3.0)
    for nd in cluster.nodes:
        r = c.request(nd.http_target, "GET", "/metrics")
        if r.status != 200:
            continue
        for key, value in parse_prometheus(r.text).items():
            if not key.startswith("session_cluster_transport_errors_total{"):
                continue
            labels = dict(part.split("=", 1) for part in key[key.index("{") + 1:-1].split(","))
            name = "/".join(labels.get(x, "?").strip('"') for x in ("transport", "operation", "kind"))
            out[name] = out.get(name, 0.0) + value
    c.close()
    return out


def counter_delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


def format_counts(d: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0f}" for k, v in sorted(d.items(), key=lambda kv: -kv[1])) or "none"


# ---------------------------------------------------------------- (c) one leader per term

class ClusterMonitor:
    """Polls /cluster on every node every POLL_INTERVAL; remembers who claimed to lead which term."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.client = Client(timeout=1.0)
        self.leaders: dict[int, dict[str, float]] = {}      # term -> {node: first claim time}
        self.history: deque = deque(maxlen=4000)            # (t, node, term, role, leader, epoch, lease)
        self.polls = 0
        self.lock = threading.Lock()
        self.stop_evt = threading.Event()
        self.thread = threading.Thread(target=self._run, name="cluster-monitor", daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_evt.set()
        self.thread.join(10)
        self.client.close()

    def _run(self):
        while not self.stop_evt.is_set():
            t_round = time.monotonic()
            for nd in self.cluster.nodes:
                r = self.client.request(nd.http_target, "GET", "/cluster")
                if r.status != 200:
                    continue
                try:
                    st = r.json()
                except ValueError:
                    continue
                now = time.monotonic()
                term, role = int(st.get("term") or 0), st.get("role")
                with self.lock:
                    self.polls += 1
                    self.history.append((now, nd.id, term, role, st.get("leader"), st.get("viewEpoch"),
                                         st.get("leaseValid")))
                    if role == "leader":
                        self.leaders.setdefault(term, {}).setdefault(nd.id, now)
            self.stop_evt.wait(max(0.0, POLL_INTERVAL - (time.monotonic() - t_round)))

    def violations(self) -> list[str]:
        with self.lock:
            return [f"term {term}: {len(who)} nodes claimed leadership: "
                    + ", ".join(f"{n} (first at {t:.2f})" for n, t in sorted(who.items(), key=lambda x: x[1]))
                    for term, who in sorted(self.leaders.items()) if len(who) > 1]

    def leaders_since(self, t: float) -> str:
        """'term:leader' for every term whose leader was first seen after t."""
        with self.lock:
            rows = [(term, n) for term, who in sorted(self.leaders.items())
                    for n, first in who.items() if first >= t]
        return " ".join(f"{term}:{n}" for term, n in rows) or "no new leader"

    def terms(self) -> list[int]:
        with self.lock:
            return sorted(self.leaders)

    def recent(self, since: float) -> str:
        with self.lock:
            rows = [h for h in self.history if h[0] >= since]
        changes, last = [], {}
        for (t, node, term, role, leader, epoch, lease) in rows:
            key = (term, role, leader, epoch, lease)
            if last.get(node) != key:
                last[node] = key
                changes.append(f"+{t - since:.2f}s {node}: term {term} {role} leader={leader} "
                               f"epoch {epoch} lease={lease}")
        return "\n    ".join(changes[-60:]) or "no /cluster answers"


# ---------------------------------------------------------------- (d) steady state

def steady_problems(cluster: Cluster, client: Client, probe: dict | None) -> list[str]:
    """[] when the cluster is steady. `probe` = {"sid":..., "seq": n}: then also a write through
    every node must be acknowledged and reads of that session through every node agree."""
    sts = statuses(cluster, client)
    problems = replication_problems(sts, cluster.n, cluster.replicas)
    if problems:
        return problems
    terms = {st.get("term") for st in sts.values()}
    leaders = {st.get("leader") for st in sts.values()}
    if len(terms) != 1 or len(leaders) != 1 or None in leaders:
        return [f"terms {sorted(terms, key=str)}, leaders {sorted(leaders, key=str)}"]
    if probe is None:
        return []
    for nd in cluster.nodes:
        probe["seq"] += 1
        r = client.put_attr(nd.http_target, probe["sid"], "probe", str(probe["seq"]))
        if r.status != 204:
            return [f"probe write through {nd.id}: {r.status} {r.text[:80]}"]
    reads = {nd.id: client.get_attr(nd.http_target, probe["sid"], "probe") for nd in cluster.nodes}
    seen = {(r.status, r.text) for r in reads.values()}
    if seen != {(200, str(probe["seq"]))}:
        return ["probe reads disagree: " + ", ".join(f"{k}={r.status}:{r.text[:20]}" for k, r in reads.items())]
    return []


def wait_steady(cluster: Cluster, timeout: float, writes: bool = True,
                probe: dict | None = None) -> float:
    """Seconds until steady_problems() is empty; HarnessError with the last problems after timeout."""
    client = Client(timeout=3.0)
    start = time.monotonic()
    last = {"p": []}
    if writes and probe is None:
        raise ValueError("writes=True needs a probe session")

    def ok():
        last["p"] = steady_problems(cluster, client, probe if writes else None)
        return not last["p"]
    try:
        wait_until(ok, timeout, interval=0.1, what="steady state")
    except HarnessError as exc:
        raise HarnessError(f"{exc}; last problems: {'; '.join(last['p'])}") from None
    finally:
        client.close()
    return time.monotonic() - start


def hold_term(cluster: Cluster, seconds: float) -> list[str]:
    """The (term, leader) every node reports must not change for `seconds`."""
    client = Client(timeout=2.0)
    try:
        first = None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            seen = {(st or {}).get("term"): (st or {}).get("leader") for st in statuses(cluster, client).values()}
            pairs = set(seen.items())
            if first is None:
                first = pairs
            if pairs != first or len(pairs) != 1:
                return [f"term/leader changed during the {seconds:.0f}s hold after steady state: "
                        f"{sorted(first, key=str)} -> {sorted(pairs, key=str)} at "
                        f"+{seconds - (deadline - time.monotonic()):.2f}s"]
            time.sleep(0.2)
        return []
    finally:
        client.close()


# ---------------------------------------------------------------- workload

@dataclass
class Write:
    t0: float            # request sent (monotonic)
    t1: float            # answer received (or transport error)
    writer: int
    sid: str
    value: int
    via: str             # node id (direct) or "nginx"
    status: int
    node: str | None     # X-Node of the answer; for a direct write without one, the target


class Workload:
    """WRITERS threads; each owns SESSIONS_PER_WRITER sessions and writes increasing integers to
    ATTR, its attempts alternating between a node directly (round-robin over nodes) and nginx.
    A failed write is retried on the same session with a new value (on the next target)."""

    def __init__(self, cluster: Cluster, writers: int = WRITERS, per_writer: int = SESSIONS_PER_WRITER):
        self.cluster = cluster
        self.client = Client(timeout=CLIENT_TIMEOUT)
        self.n_writers = writers
        self.sids: list[str] = []
        self.owned: list[list[str]] = []
        self.seq: dict[str, int] = {}                 # highest value written (attempted)
        self.acked: dict[str, tuple[int, str, float]] = {}   # sid -> (value, node, time)
        self.writes: list[Write] = []
        self.lock = threading.Lock()
        self.stop_evt = threading.Event()
        self.paused = False
        self.inflight = 0
        self.cond = threading.Condition(self.lock)
        self.segments: list[list[float]] = []          # [start, end] of unpaused running
        self.threads: list[threading.Thread] = []
        self.per_writer = per_writer
        self.probe: dict | None = None
        self.cut_sids: dict[str, list[str]] = {}      # node -> sessions it owns, for CutProbe

    # setup
    def create_sessions(self) -> None:
        """Session j of writer w is created (and first written, value 0) directly on node
        (w * per_writer + j) mod N: a new session lands on the node that creates it, so every
        node owns some sessions and a cut-off node is asked to write sessions it owns."""
        c = Client(timeout=CLIENT_TIMEOUT)
        nodes = self.cluster.nodes

        def make(i: int) -> str:
            return c.create_with_value(nodes[i % len(nodes)].http_target, ATTR, "0", tries=50, pause=0.1)
        for w in range(self.n_writers):
            mine = [make(w * self.per_writer + j) for j in range(self.per_writer)]
            self.owned.append(mine)
            for sid in mine:
                self.sids.append(sid)
                self.seq[sid] = 0
                self.acked[sid] = (0, "setup", time.monotonic())
        for i, nd in enumerate(nodes):
            self.cut_sids[nd.id] = [make(i) for _ in range(CUT_PROBE_SESSIONS)]
            for sid in self.cut_sids[nd.id]:
                self.sids.append(sid)
                self.seq[sid] = 0
                self.acked[sid] = (0, "setup", time.monotonic())
        self.probe = {"sid": make(0), "seq": 0}
        c.close()

    def start(self):
        with self.lock:
            self.segments.append([time.monotonic(), float("inf")])
        self.threads = [threading.Thread(target=self._writer, args=(w,), name=f"writer-{w}", daemon=True)
                        for w in range(self.n_writers)]
        for t in self.threads:
            t.start()

    def stop(self, timeout: float = CLIENT_TIMEOUT + 10):
        self.stop_evt.set()
        with self.cond:
            self.cond.notify_all()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        with self.lock:
            if self.segments and self.segments[-1][1] == float("inf"):
                self.segments[-1][1] = time.monotonic()
        alive = [t.name for t in self.threads if t.is_alive()]
        self.client.close()
        if alive:
            raise HarnessError(f"workload threads still busy {timeout:.0f}s after stop: {alive}")

    def pause(self, timeout: float = CLIENT_TIMEOUT + 5):
        """Stops new writes and waits for the ones in flight."""
        with self.cond:
            self.paused = True
            if self.segments and self.segments[-1][1] == float("inf"):
                self.segments[-1][1] = time.monotonic()
            if not self.cond.wait_for(lambda: self.inflight == 0, timeout):
                raise HarnessError(f"{self.inflight} writes still in flight {timeout:.0f}s after pause")

    def resume(self):
        with self.cond:
            self.paused = False
            self.segments.append([time.monotonic(), float("inf")])
            self.cond.notify_all()

    def write_once(self, w: int, sid: str, target, via: str) -> Write | None:
        """One PUT of the session's next value to `target` (a node or nginx), recorded.
        None when the workload was stopped before it was sent. Callers never write the same
        session from two threads, so each session's values are acknowledged in order."""
        with self.cond:
            self.cond.wait_for(lambda: not self.paused or self.stop_evt.is_set())
            if self.stop_evt.is_set():
                return None
            self.seq[sid] += 1
            value = self.seq[sid]
            self.inflight += 1
        try:
            t0 = time.monotonic()
            r = self.client.put_attr(target, sid, ATTR, str(value), headers={"X-Test-Value": str(value)})
            t1 = time.monotonic()
            node = r.node or (via if via != "nginx" else None)
            rec = Write(t0, t1, w, sid, value, via, r.status, node)
        finally:
            with self.cond:
                self.inflight -= 1
                self.cond.notify_all()
        with self.lock:
            self.writes.append(rec)
            if r.status == 204 and value > self.acked[sid][0]:
                self.acked[sid] = (value, node or "?", t1)
        return rec

    def _writer(self, w: int):
        nodes = self.cluster.nodes
        mine = self.owned[w]
        attempt = 0
        i = 0
        while not self.stop_evt.is_set():
            sid = mine[i % len(mine)]
            if attempt % 2 == 0:
                nd = nodes[(w + attempt // 2) % len(nodes)]
                target, via = nd.http_target, nd.id
            else:
                target, via = self.cluster.proxy_port, "nginx"
            attempt += 1
            rec = self.write_once(w, sid, target, via)
            if rec is None:
                return
            if rec.status == 204:
                i += 1          # next session; a failed write retries this one with a new value
            self.stop_evt.wait(WRITE_PAUSE)

    # figures
    def acks(self) -> int:
        with self.lock:
            return sum(1 for w in self.writes if w.status == 204)

    def snapshot(self) -> list[Write]:
        with self.lock:
            return list(self.writes)

    def longest_gap(self, minority_at) -> tuple[float, float]:
        """Longest stretch (seconds, start) with no write acknowledged by a node that was not
        on the minority side at that moment, over the unpaused running segments."""
        writes = self.snapshot()
        with self.lock:
            segs = [(s, e if e != float("inf") else time.monotonic()) for s, e in self.segments]
        acks = sorted(w.t1 for w in writes if w.status == 204 and w.node not in minority_at(w.t1))
        best = (0.0, 0.0)
        j = 0
        for s, e in segs:
            prev = s
            while j < len(acks) and acks[j] < s:
                j += 1
            while j < len(acks) and acks[j] <= e:
                if acks[j] - prev > best[0]:
                    best = (acks[j] - prev, prev)
                prev = acks[j]
                j += 1
            if e - prev > best[0]:
                best = (e - prev, prev)
        return best


# ---------------------------------------------------------------- placement (for evidence)

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_M64 = (1 << 64) - 1


def _mix(z: int) -> int:                       # SeededRandom.mix (splitmix64 finalizer)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _id_hash(node_id: str) -> int:             # PartitionTable.idHash (FNV-1a)
    h = 0xCBF29CE484222325
    for b in node_id.encode():
        h = ((h ^ b) * 0x100000001B3) & _M64
    return h


def placement(sid: str, members: list[str], replicas: int, partitions: int = 271) -> tuple[int, list[str]]:
    """(partition, [owner, backups...]) of a session in a view of `members`, as
    SessionID.partition and PartitionTable compute them (rendezvous hashing)."""
    bits = 0
    for ch in sid[:24]:
        bits = bits << 6 | _B64.index(ch)
    high = bits >> (18 * 8 - 64)               # the first 8 of the id's 18 bytes
    part = high % partitions
    salt = (part * 0x9E3779B97F4A7C15) & _M64
    ids = sorted(set(members))
    ranked = sorted(ids, key=lambda i: (-_mix(_id_hash(i) ^ salt), i))
    return part, ranked[:min(max(1, replicas), len(ids))]


# ---------------------------------------------------------------- (a) no acknowledged write lost

def lost_writes(cluster: Cluster, wl: Workload, observed: dict | None = None) -> tuple[list[str], set]:
    """Reads every session directly on every node (the workload paused or stopped).
    Returns (problems, the sessions with a lost acknowledged write); fills `observed` with
    the lowest integer read for each session."""
    client = Client(timeout=5.0)
    problems, lost_sids = [], set()
    observed = observed if observed is not None else {}
    try:
        for sid in wl.sids:
            want, who, when = wl.acked[sid]
            top = wl.seq[sid]
            for nd in cluster.nodes:
                r = None
                for _ in range(20):
                    r = client.get_attr(nd.http_target, sid, ATTR)
                    if r.status not in (0, 502, 503, 504):
                        break
                    time.sleep(0.1)
                if r.status != 200:
                    problems.append(f"{sid[:10]} on {nd.id}: {r.status} {r.text[:80]!r}; last acked {want} "
                                    f"by {who}")
                    if r.status in (401, 404):
                        lost_sids.add(sid)
                    continue
                try:
                    got = int(r.text)
                    observed[sid] = min(got, observed.get(sid, got))
                except ValueError:
                    got = None
                if got is None or got < want or got > top:
                    lost_sids.add(sid)
                    part, reps = placement(sid, [x.id for x in cluster.nodes], cluster.replicas)
                    problems.append(f"{sid[:10]} on {nd.id}: read {r.text[:20]!r}, last acked {want} by {who} "
                                    f"at {when:.2f} (highest written {top}); partition {part}, replicas in "
                                    f"the full view {reps}")
    finally:
        client.close()
    return problems, lost_sids


# ---------------------------------------------------------------- faults

@dataclass
class Window:
    """A cut: `minority` cannot reach a majority from t_start (rules in place) to t_end (heal begins)."""
    minority: frozenset
    t_start: float
    t_end: float


@dataclass
class FaultResult:
    kind: str
    n: int
    detail: str = ""
    windows: list[Window] = field(default_factory=list)
    t_fault: float = 0.0            # fault applied
    t_healed: float = 0.0           # heal returned (last heal of a flap)
    heal_to_steady: float | None = None
    majority_writes: int = 0
    majority_refused: int = 0
    refused_by_status: dict = field(default_factory=dict)
    minority_acks_in_grace: int = 0
    probe_writes: int = 0           # CutProbe writes during the fault
    heal_writes: int = 0            # workload writes begun between the heal and the steady state
    heal_refused: int = 0           # ... of which not acknowledged
    minority_refused: int = 0       # writes the cut-off side answered after the grace (all must be refusals)
    leaders: str = ""               # leader of each term seen during the fault
    writes_during: int = 0
    acks_during: int = 0
    transport: dict = field(default_factory=dict)
    lost: int = 0
    lost_sids: set = field(default_factory=set)
    violations: list[str] = field(default_factory=list)

    def refused_fraction(self) -> float:
        return self.majority_refused / self.majority_writes if self.majority_writes else 0.0

    def line(self) -> str:
        steady = f"{self.heal_to_steady:.2f}s" if self.heal_to_steady is not None else "NOT REACHED"
        return (f"{self.kind} [{self.n} nodes] {self.detail}: writes during fault {self.writes_during} "
                f"(acked {self.acks_during}); refused on the majority side {self.majority_refused}/"
                f"{self.majority_writes} ({100 * self.refused_fraction():.1f}%"
                + (f": {format_counts(self.refused_by_status)}" if self.refused_by_status else "")
                + f"); cut-off side ({self.probe_writes} cut-probe writes): refused {self.minority_refused} "
                f"writes begun after the {GRACE:.1f}s grace, "
                f"acked {self.minority_acks_in_grace} within it; "
                f"heal->steady {steady} (writes refused meanwhile {self.heal_refused}/{self.heal_writes}); "
                f"acknowledged writes lost {self.lost}; new leaders (term:node) "
                f"{self.leaders}; "
                f"transport errors {format_counts(self.transport)}"
                + (f"; VIOLATIONS {len(self.violations)}" if self.violations else ""))


def minority_acks(writes: list[Write], windows: list[Window]) -> tuple[list[str], int, int]:
    """(b): 204s from a cut-off node for writes begun >= GRACE after the cut, answered before the
    heal. Returns (violations, acks by cut-off nodes within the grace, refusals by cut-off
    nodes of writes begun after the grace: how often the check was exercised)."""
    bad, in_grace, refused = [], 0, 0
    for w in writes:
        if w.status != 204:
            for win in windows:
                if (w.node in win.minority and w.t0 >= win.t_start + GRACE and w.t1 <= win.t_end):
                    refused += 1
            continue
        for win in windows:
            if w.node in win.minority and w.t1 <= win.t_end and w.t1 >= win.t_start:
                if w.t0 >= win.t_start + GRACE:
                    bad.append(f"{w.sid[:10]}={w.value} acknowledged by {w.node} (via {w.via}), cut off "
                               f"{sorted(win.minority)} since +0: sent at +{w.t0 - win.t_start:.2f}s, "
                               f"answered at +{w.t1 - win.t_start:.2f}s, heal at +{win.t_end - win.t_start:.2f}s")
                else:
                    in_grace += 1
    return bad, in_grace, refused


def majority_side(writes: list[Write], windows: list[Window], t_from: float, t_to: float,
                  ) -> tuple[int, int, dict]:
    """Writes begun in [t_from, t_to] (a cut window, or the whole impairment) answered by (or
    sent directly to) a node not cut off, or through nginx with no node named: (count, refused,
    refused by status)."""
    total, refused, by = 0, 0, {}
    for w in writes:
        if not t_from <= w.t0 <= t_to:
            continue
        minority = set()
        for win in windows:
            if win.t_start <= w.t0 <= win.t_end:
                minority |= win.minority
        if w.node in minority:
            continue
        if w.via != "nginx" and w.via in minority:
            continue
        total += 1
        if w.status != 204:
            refused += 1
            key = str(w.status) + (f" from {w.node}" if w.node else " (no X-Node)")
            by[key] = by.get(key, 0) + 1
    return total, refused, by


class CutProbe:
    """While a cut lasts: one thread per cut-off node writes, directly to that node, the
    sessions the node owns (Workload.cut_sids), one after another with WRITE_PAUSE between.
    A cut-off owner must refuse them (it does at once: "not in the majority"), so check (b)
    sees many attempts on the cut-off side, not only the few the writers make between their
    2-second waits. stop() does not wait: the heal is never delayed; join() after it."""

    def __init__(self, wl: Workload, cluster: Cluster, node_ids):
        self.wl = wl
        self.stop_evt = threading.Event()
        self.threads = []
        for idx, nd in enumerate(cluster.nodes):
            if nd.id in node_ids:
                self.threads.append(threading.Thread(target=self._run, args=(CUT_PROBE + idx, nd),
                                                     name=f"cut-probe-{nd.id}", daemon=True))
        for t in self.threads:
            t.start()

    def _run(self, w: int, nd):
        sids = self.wl.cut_sids[nd.id]
        i = 0
        while not self.stop_evt.is_set() and not self.wl.stop_evt.is_set():
            if self.wl.write_once(w, sids[i % len(sids)], nd.http_target, nd.id) is None:
                return
            i += 1
            self.stop_evt.wait(WRITE_PAUSE)

    def stop(self):
        self.stop_evt.set()

    def join(self, timeout: float = CLIENT_TIMEOUT + 5):
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self.threads if t.is_alive()]
        if alive:
            raise HarnessError(f"cut probes still busy {timeout:.0f}s after the heal: {alive}")


class FaultRunner:
    """Applies one fault to a NetCluster under a Workload, heals it, and checks (a)-(d)."""

    def __init__(self, nc: NetCluster, wl: Workload, mon: ClusterMonitor, rng, log=print):
        self.nc, self.wl, self.mon, self.rng, self.log = nc, wl, mon, rng, log
        self.all_windows: list[Window] = []
        self.probes: list[CutProbe] = []

    def minority_at(self, t: float) -> set:
        out = set()
        for win in self.all_windows:
            if win.t_start <= t <= win.t_end:
                out |= win.minority
        return out

    def _choose(self, random_any: bool):
        ids = self.nc.ids
        leader = current_leader(self.nc.cluster)
        followers = [i for i in ids if i != leader] or ids
        return leader, followers, (ids if random_any else followers)

    def run(self, kind: str, *, random_any: bool = False, duration: float | None = None) -> FaultResult:
        """random_any=False (tests): the victim of isolate/one-way/flap is a follower and the
        2-side of a split holds the leader; True (soak): any node, any two nodes."""
        lab, cluster = self.nc.lab, self.nc.cluster
        res = FaultResult(kind, self.nc.n)
        leader, followers, pool = self._choose(random_any)
        before = transport_errors(cluster)
        windows: list[Window] = []
        send_errors = kind != "isolate-silent"
        healed = False
        try:
            if kind in ("isolate", "isolate-silent", "isolate-leader"):
                victim = leader if kind == "isolate-leader" else self.rng.choice(pool)
                d = duration or CUT_SECONDS
                res.detail = f"{victim} isolated{' (leader)' if victim == leader else ''}, " \
                             f"{'send errors' if send_errors else 'silent'}, {d:.0f}s"
                lab.isolate(victim, send_errors=send_errors)
                windows.append(self._window({victim}, d))
            elif kind == "split":
                if random_any:
                    minority = set(self.rng.sample(self.nc.ids, 2))
                else:
                    minority = {leader, self.rng.choice(followers)} if leader else set(self.rng.sample(self.nc.ids, 2))
                majority = [i for i in self.nc.ids if i not in minority]
                d = duration or CUT_SECONDS
                res.detail = (f"{'+'.join(sorted(minority))} | {'+'.join(majority)} (leader was {leader}), "
                              f"send errors, {d:.0f}s")
                lab.split(sorted(minority), majority, send_errors=True)
                windows.append(self._window(minority, d))
            elif kind == "one-way":
                src = self.rng.choice(pool)
                d = duration or CUT_SECONDS
                res.detail = f"{src} -> all others dropped{' (leader)' if src == leader else ''}, send errors, {d:.0f}s"
                for dst in self.nc.ids:
                    if dst != src:
                        lab.cut_one_way(src, dst, send_errors=True)
                windows.append(self._window({src}, d))
            elif kind == "flap":
                victim = self.rng.choice(pool)
                d = duration or FLAP_SECONDS
                res.detail = (f"{victim}{' (leader)' if victim == leader else ''} isolated/healed every "
                              f"{FLAP_PERIOD:.0f}s for {d:.0f}s, send errors")
                rounds = max(1, int(round(d / (2 * FLAP_PERIOD))))
                for i in range(rounds):
                    lab.isolate(victim, send_errors=True)
                    windows.append(self._window({victim}, FLAP_PERIOD, heal_node=victim))
                    if i < rounds - 1:
                        time.sleep(FLAP_PERIOD)
            elif kind in IMPAIRMENTS:
                params = IMPAIRMENTS[kind]
                d = duration or IMPAIR_SECONDS
                res.detail = f"every node's peer traffic {params}, {d:.0f}s"
                t_applied = time.monotonic()
                for node in self.nc.ids:
                    lab.impair(node, **params)
                res.t_fault = time.monotonic()
                time.sleep(d)
                res.windows = []
                t_end = time.monotonic()
                lab.heal()
                healed = True
                res.t_healed = time.monotonic()
                impair_window = (t_applied, t_end)
            else:
                raise ValueError(f"unknown fault kind {kind!r}")
            if not healed:
                lab.heal()
                healed = True
                res.t_healed = time.monotonic()
        finally:
            if not healed:
                try:
                    lab.heal()
                except Exception as exc:  # noqa: BLE001
                    self.log(f"heal after a failed fault: {exc!r}")
        for probe in self.probes:
            probe.stop()
        probes, self.probes = self.probes, []
        for probe in probes:
            probe.join()
        self.all_windows += windows
        res.windows = windows
        if windows:
            res.t_fault = windows[0].t_start
        self.log(f"  fault {kind}: {res.detail}; healed")

        # (d) steady state within the bound, then the term holds
        steady_late = False
        try:
            wait_steady(cluster, STEADY_BOUND - (time.monotonic() - res.t_healed), probe=self.wl.probe)
            res.heal_to_steady = time.monotonic() - res.t_healed
        except HarnessError as exc:
            # evidence: does it get there at all (slow), or is it stuck?
            try:
                wait_steady(cluster, 30.0, probe=self.wl.probe)
                late = f"reached {time.monotonic() - res.t_healed:.1f}s after the heal"
                steady_late = True
            except HarnessError as exc2:
                late = f"still not steady {time.monotonic() - res.t_healed:.0f}s after the heal: {exc2}"
                steady_late = False
            res.violations.append(f"no steady state within {STEADY_BOUND:.0f}s of the heal ({late}): {exc}\n"
                                  f"  /cluster changes since the fault:\n    {self.mon.recent(res.t_fault)}")
        if res.heal_to_steady is not None:
            acks_before = self.wl.acks()
            res.violations += hold_term(cluster, TERM_HOLD)
            if self.wl.acks() == acks_before:
                res.violations.append(f"no write acknowledged during the {TERM_HOLD:.0f}s after steady state")
        res.transport = counter_delta(transport_errors(cluster), before)

        # (b) minority acks, and the majority side's refusals
        writes = self.wl.snapshot()
        bad, res.minority_acks_in_grace, res.minority_refused = minority_acks(writes, windows)
        res.leaders = self.mon.leaders_since(res.t_fault - 1.0)
        if bad:
            res.violations.append(f"{len(bad)} writes acknowledged on the minority side after the "
                                  f"{GRACE:.1f}s grace:\n    " + "\n    ".join(bad[:10]))
        if windows:
            t_from, t_to = windows[0].t_start, windows[-1].t_end
            # majority-side writes: those begun inside a cut window
            total = refused = 0
            by: dict = {}
            for win in windows:
                a, b, c = majority_side(writes, windows, win.t_start, win.t_end)
                total, refused = total + a, refused + b
                for k, v in c.items():
                    by[k] = by.get(k, 0) + v
        else:
            t_from, t_to = impair_window
            total, refused, by = majority_side(writes, [], t_from, t_to)
        res.majority_writes, res.majority_refused, res.refused_by_status = total, refused, by
        during = [w for w in writes if t_from <= w.t0 <= t_to and w.writer < CUT_PROBE]
        res.writes_during = len(during)
        res.acks_during = sum(1 for w in during if w.status == 204)
        if res.heal_to_steady is not None:
            t_steady = res.t_healed + res.heal_to_steady
            after = [w for w in writes if res.t_healed <= w.t0 <= t_steady and w.writer < CUT_PROBE]
            res.heal_writes = len(after)
            res.heal_refused = sum(1 for w in after if w.status != 204)
        res.probe_writes = sum(1 for w in writes if w.writer >= CUT_PROBE and t_from <= w.t0 <= t_to)

        # (a) every session on every node, the workload paused
        if res.heal_to_steady is not None or steady_late:
            self.check_reads(res)
        else:
            res.violations.append("acknowledged writes not checked: no steady state")
        return res

    def _window(self, minority: set, seconds: float, heal_node: str | None = None) -> Window:
        """The cut is in place now; keep it `seconds`, then heal (one node, or everything)."""
        t_start = time.monotonic()
        probe = CutProbe(self.wl, self.nc.cluster, minority)
        self.probes.append(probe)
        time.sleep(seconds)
        probe.stop()
        t_end = time.monotonic()
        if heal_node is not None:
            self.nc.lab.heal(heal_node)
        return Window(frozenset(minority), t_start, t_end)

    def check_reads(self, res: FaultResult) -> None:
        """(a), with the workload paused: every session on every node."""
        self.wl.pause()
        try:
            observed: dict = {}
            problems, res.lost_sids = lost_writes(self.nc.cluster, self.wl, observed)
            res.lost = len(res.lost_sids)
            # Reported once: from now on a lost session is checked against what the cluster
            # holds now, so later checks (the soak's) report only new losses.
            for sid in res.lost_sids:
                if sid in observed:
                    self.wl.acked[sid] = (observed[sid], "re-baselined after a reported loss", time.monotonic())
        finally:
            self.wl.resume()
        if problems:
            cuts = ", ".join(f"{'+'.join(sorted(w.minority))} cut off {w.t_start:.2f}-{w.t_end:.2f}"
                             for w in res.windows[-3:]) or "no cut"
            res.violations.append(f"{len(problems)} reads show an acknowledged write lost or unreadable "
                                  f"({res.lost} sessions lost; {cuts}; times are monotonic):\n    "
                                  + "\n    ".join(problems[:12]))


def summarize(values: list[float]) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "n/a"
    return f"median {statistics.median(vals):.2f}s, max {max(vals):.2f}s (n={len(vals)})"
