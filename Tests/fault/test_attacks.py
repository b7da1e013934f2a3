"""Attacks on a live cluster of three `session-node serve` processes on 127.0.0.1.

Each test starts its own cluster (no nginx: every request goes to a node directly), writes
sessions before and during the attack, and asserts both the refusal the node is meant to
give and that nothing acknowledged is lost: every session written before or during the
attack is afterwards read with its value through every node.

  a. a stranger with another cluster key and the cluster's seeds never joins; its frames
     are refused and counted, and the refusal log lines are rate-limited;
  b. 200 raw TCP connections to one node's peer port that send nothing or half a hello:
     the oldest beyond --max-inbound-peer-connections are pushed out at once, the rest closed
     at --peer-handshake-timeout, and the node keeps serving and replicating meanwhile; and
     a stranger that reopens such connections without end cannot keep a restarted member's
     link out;
  c. a slowloris HTTP client: connections trickling a request's head are closed at
     --http-idle-timeout, those trickling a body at --http-request-timeout, while normal
     requests keep being answered;
  d. a session-creation flood against --max-store-bytes and --max-creates-per-client: 503
     store_full / 429 rate_limited with Retry-After, processes alive, RSS bounded.

Every process is started by the harness and stopped by its PID; every wait has a deadline.
"""
from __future__ import annotations

import os
import select
import socket
import threading
import time

import pytest

from cluster import (REPORTS, Client, Cluster, HarnessError, Node, free_port, metric_sum,
                     replication_problems, wait_until)

ATTR = "v"


# ---------------------------------------------------------------- helpers

def wait_full_replication(cluster: Cluster, timeout: float = 30.0):
    def ok():
        statuses = {nd.id: cluster.status(nd) for nd in cluster.nodes}
        return not replication_problems(statuses, len(cluster.nodes), cluster.replicas)
    wait_until(ok, timeout, interval=0.2, what="full replication")


def write_sessions(cluster: Cluster, count: int, tag: str, client: Client | None = None) -> dict[str, str]:
    """`count` new sessions, created on the nodes in turn, each holding a value of its own;
    only acknowledged ones (201 then 204) are returned."""
    client = client or cluster.client
    written = {}
    for i in range(count):
        nd = cluster.nodes[i % len(cluster.nodes)]
        value = f"{tag}-{i}"
        sid = client.create_with_value(nd.http_target, ATTR, value, tries=20, pause=0.1)
        written[sid] = value
    return written


def assert_all_readable(cluster: Cluster, sessions: dict[str, str], attr: str = ATTR):
    """Every session read directly on every node shows the value it was written with."""
    client = Client()
    try:
        wrong = []
        for nd in cluster.nodes:
            for sid, value in sessions.items():
                r = client.get_attr(nd.http_target, sid, attr)
                if r.status != 200 or r.text != value:
                    wrong.append(f"{nd.id} {sid[:8]}…: {r.status} {r.text[:40]!r}, want {value[:40]!r}")
        assert not wrong, f"{len(wrong)} acknowledged values not read back:\n" + "\n".join(wrong[:20])
    finally:
        client.close()


def members(cluster: Cluster, nd: Node) -> list[str]:
    st = cluster.status(nd)
    return sorted(m.get("id") for m in (st or {}).get("members", []))


def count_lines(path: str, needle: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if needle.encode() in line)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise HarnessError(f"no VmRSS for pid {pid}")


def open_sockets(port: int, count: int, first_bytes: list[bytes]) -> list[socket.socket]:
    socks = []
    for i in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        data = first_bytes[i % len(first_bytes)]
        if data:
            s.sendall(data)
        s.setblocking(False)
        socks.append(s)
    return socks


def poll_closed(socks: list[socket.socket], closed_at: dict[int, float], wait: float):
    """Marks in `closed_at` (index -> time) every socket the server closed: EOF or reset."""
    open_ones = {s.fileno(): i for i, s in enumerate(socks) if i not in closed_at}
    if not open_ones:
        return
    readable, _, _ = select.select([socks[i] for i in open_ones.values()], [], [], wait)
    now = time.monotonic()
    for s in readable:
        i = open_ones[s.fileno()]
        try:
            data = s.recv(4096)
        except BlockingIOError:
            continue
        except OSError:
            data = b""
        if not data:
            closed_at[i] = now


def close_all(socks: list[socket.socket]):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


# ---------------------------------------------------------------- a. a stranger with the wrong key

def test_stranger_with_another_key_never_joins(make_cluster):
    t0 = time.monotonic()
    cluster = make_cluster(3, 2)
    wait_full_replication(cluster)
    before = write_sessions(cluster, 15, "before")
    rejected_before = {nd.id: metric_sum(cluster.metrics(nd), "session_cluster_rejected_frames_total")
                       for nd in cluster.nodes}
    log_lines_before = {nd.id: count_lines(nd.stderr_path, "rejected frame") for nd in cluster.nodes}

    other_key = os.path.join(cluster.tmp, "other.key")
    with open(other_key, "wb") as f:
        f.write(os.urandom(32).hex().encode() + b"\n")
    os.chmod(other_key, 0o600)
    stranger = Node("x1", free_port(), free_port(udp_too=True), cluster.nodes[0].seeds, 2, other_key, cluster.logdir)
    stranger.start(cluster.binary)
    try:
        wait_until(lambda: cluster.client.request(stranger.http_target, "GET", "/health").status in (200, 503),
                   20, interval=0.2, what="the stranger's HTTP listener")
        attack_start = time.monotonic()
        during = write_sessions(cluster, 15, "during")
        # Give the stranger time to knock: its joins and heartbeats go to every seed.
        time.sleep(max(0.0, 6.0 - (time.monotonic() - attack_start)))
        for nd in cluster.nodes:
            assert members(cluster, nd) == ["n1", "n2", "n3"], f"{nd.id} sees {members(cluster, nd)}"
        stranger_view = members(cluster, stranger)
        assert not set(stranger_view) & {"n1", "n2", "n3"}, f"the stranger sees {stranger_view}"
        assert stranger.running(), "the stranger exited:\n" + stranger.tails()
    finally:
        stranger.terminate()
    attack_seconds = time.monotonic() - attack_start

    rejected = {nd.id: metric_sum(cluster.metrics(nd), "session_cluster_rejected_frames_total") - rejected_before[nd.id]
                for nd in cluster.nodes}
    lines = {nd.id: count_lines(nd.stderr_path, "rejected frame") - log_lines_before[nd.id] for nd in cluster.nodes}
    assert sum(rejected.values()) >= 20, f"rejected frames per node during the attack: {rejected}"
    # One line per code per 10 s at most (TransportErrorReporter.logInterval), whatever the rate.
    windows = int(attack_seconds // 10) + 2
    for nd in cluster.nodes:
        assert lines[nd.id] <= 3 * windows, f"{nd.id}: {lines[nd.id]} 'rejected frame' lines in {attack_seconds:.0f}s"
    assert sum(lines.values()) * 5 <= sum(rejected.values()), f"log lines {lines} vs rejected frames {rejected}"

    wait_full_replication(cluster)
    assert_all_readable(cluster, {**before, **during})
    REPORTS.append(f"attacks/wrong-key: rejected frames {rejected}, log lines {lines} in {attack_seconds:.1f}s; "
                   f"{len(before) + len(during)} sessions read back on 3 nodes; {time.monotonic() - t0:.1f}s")


# ---------------------------------------------------------------- b. half-open peer connections

HANDSHAKE_TIMEOUT = 4.0
PEER_CAP = 64
STRANGER_CONNECTIONS = 200


def test_half_open_peer_connections_are_capped_and_timed_out(make_cluster):
    t0 = time.monotonic()
    cluster = make_cluster(3, 2, extra_args=["--peer-handshake-timeout", str(HANDSHAKE_TIMEOUT),
                                             "--max-inbound-peer-connections", str(PEER_CAP)])
    wait_full_replication(cluster)
    before = write_sessions(cluster, 15, "before")   # the peer links are up before the attack
    victim = cluster.nodes[0]
    m0 = cluster.metrics(victim)

    # Nothing, or the first bytes of a hello (magic "SCH1", two bytes of nonce) and no more.
    opened_at = time.monotonic()
    socks = open_sockets(victim.bind_port, STRANGER_CONNECTIONS, [b"", b"SCH1\x00\x01"])
    closed_at: dict[int, float] = {}
    try:
        while time.monotonic() - opened_at < 1.0:
            poll_closed(socks, closed_at, 0.05)
        early = len(closed_at)
        admitted = STRANGER_CONNECTIONS - early
        # At the cap each new connection pushes out the oldest one waiting for its handshake;
        # the peers' own links completed theirs and do not count.
        assert early == STRANGER_CONNECTIONS - PEER_CAP, \
            f"{early} of {STRANGER_CONNECTIONS} connections closed within 1 s of the accept, cap {PEER_CAP}"

        # While the admitted ones are held open: every node, the victim too, takes writes
        # that its peers must acknowledge, and reads them back.
        during = write_sessions(cluster, 12, "during")
        attack_writes_done = time.monotonic() - opened_at
        still_open_after_writes = STRANGER_CONNECTIONS - len(closed_at)
        assert_all_readable(cluster, during)
        assert attack_writes_done < HANDSHAKE_TIMEOUT, \
            f"writes during the attack took until {attack_writes_done:.1f}s, past the handshake timeout"
        assert still_open_after_writes == admitted, \
            f"{admitted - still_open_after_writes} admitted connections closed before the handshake timeout"

        deadline = opened_at + HANDSHAKE_TIMEOUT + 3.0
        while len(closed_at) < STRANGER_CONNECTIONS and time.monotonic() < deadline:
            poll_closed(socks, closed_at, 0.1)
        late = sorted(t - opened_at for i, t in closed_at.items() if t - opened_at >= 1.0)
        assert len(closed_at) == STRANGER_CONNECTIONS, \
            f"{STRANGER_CONNECTIONS - len(closed_at)} connections still open {HANDSHAKE_TIMEOUT + 3:.0f}s after opening"
        assert late and late[0] >= HANDSHAKE_TIMEOUT - 0.5, f"admitted connections closed at {late[:5]}..."
    finally:
        close_all(socks)

    m1 = cluster.metrics(victim)

    def closed(reason):
        name = "session_cluster_peer_connections_closed_total"
        return metric_sum(m1, name, reason=reason) - metric_sum(m0, name, reason=reason)
    assert closed("over_limit") >= early, f"over_limit {closed('over_limit')}, closed at once {early}"
    assert closed("handshake_timeout") >= admitted, f"handshake_timeout {closed('handshake_timeout')}, admitted {admitted}"

    wait_full_replication(cluster)
    after = write_sessions(cluster, 6, "after")
    assert_all_readable(cluster, {**before, **during, **after})
    REPORTS.append(f"attacks/half-open peers: {early} closed at once, {admitted} at {late[0]:.1f}-{late[-1]:.1f}s "
                   f"(handshake timeout {HANDSHAKE_TIMEOUT}s); over_limit {closed('over_limit'):.0f}, "
                   f"handshake_timeout {closed('handshake_timeout'):.0f}; {time.monotonic() - t0:.1f}s")


class PeerSlotsStarved(AssertionError):
    """A member could not get a peer connection to the attacked node while a stranger held its slots."""


class SlotHog:
    """A stranger that keeps `count` unauthenticated connections open to a peer port and
    opens a new one as soon as the node closes one: it never sends a byte."""

    def __init__(self, port: int, count: int):
        self.port, self.count = port, count
        self.stop_evt = threading.Event()
        self.opened = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        socks: list[socket.socket] = []
        try:
            while not self.stop_evt.is_set():
                if socks:
                    readable, _, _ = select.select(socks, [], [], 0)
                    for s in readable:
                        try:
                            gone = not s.recv(16)
                        except OSError:
                            gone = True
                        if gone:
                            s.close()
                    socks = [s for s in socks if s.fileno() >= 0]
                while len(socks) < self.count and not self.stop_evt.is_set():
                    try:
                        socks.append(socket.create_connection(("127.0.0.1", self.port), timeout=1))
                        self.opened += 1
                    except OSError:
                        break
                time.sleep(0.02)
        finally:
            close_all(socks)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_evt.set()
        self.thread.join(5)


def test_peer_slot_hog_does_not_keep_a_restarted_member_out(make_cluster):
    cluster = make_cluster(3, 2, extra_args=["--peer-handshake-timeout", str(HANDSHAKE_TIMEOUT)])
    wait_full_replication(cluster)
    before = write_sessions(cluster, 15, "before")
    victim, restarted = cluster.nodes[0], cluster.nodes[1]
    with SlotHog(victim.bind_port, 2 * PEER_CAP) as hog:
        time.sleep(1.0)
        cluster.restart(restarted)
        try:
            wait_full_replication(cluster, timeout=3 * HANDSHAKE_TIMEOUT)
            starved = None
        except HarnessError as exc:
            statuses = {nd.id: cluster.status(nd) for nd in cluster.nodes}
            starved = (f"{restarted.id} restarted while a stranger held {victim.id}'s peer slots "
                       f"({hog.opened} connections opened): {exc}; "
                       f"{replication_problems(statuses, 3, cluster.replicas)}")
    # The stranger gone, the cluster heals and nothing acknowledged was lost, either way.
    wait_full_replication(cluster, timeout=15)
    assert_all_readable(cluster, before)
    if starved:
        raise PeerSlotsStarved(starved)


# ---------------------------------------------------------------- c. slowloris on the HTTP port

HTTP_IDLE = 2.0
HTTP_REQUEST_TIMEOUT = 4.0
SLOW_HEADS = 150
SLOW_BODIES = 40


def test_slowloris_connections_are_closed_while_requests_are_served(make_cluster):
    t0 = time.monotonic()
    cluster = make_cluster(3, 2, extra_args=["--http-idle-timeout", str(HTTP_IDLE),
                                             "--http-request-timeout", str(HTTP_REQUEST_TIMEOUT)])
    wait_full_replication(cluster)
    before = write_sessions(cluster, 15, "before")
    victim = cluster.nodes[0]
    target, = write_sessions(cluster, 1, "target")   # the session the slow bodies write to
    m0 = cluster.metrics(victim)

    # Slow heads: the start of a valid request head (a few bytes, the request line, or some
    # headers), then its next byte every 0.25 s: never a whole head, never silent for long.
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(b"X-Slow-%d: x\r\n" % i for i in range(200))
    first = [2, 22, 41, 60]
    # Slow bodies (slow POST): a whole head announcing 64 KiB, then a byte every 0.25 s.
    body_head = (f"PUT /session/attributes/slow HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: SESSION_ID={target}\r\n"
                 "Content-Length: 65536\r\n\r\n").encode()
    opened_at = time.monotonic()
    socks = open_sockets(victim.http_port, SLOW_HEADS, [head[:n] for n in first])
    socks += open_sockets(victim.http_port, SLOW_BODIES, [body_head])
    scripts = [head] * SLOW_HEADS + [body_head + b"y" * 65536] * SLOW_BODIES
    sent = [first[i % len(first)] for i in range(SLOW_HEADS)] + [len(body_head)] * SLOW_BODIES
    closed_at: dict[int, float] = {}
    served, slowest, failures = 0, 0.0, []
    client = Client(timeout=5)
    during = {}
    limit = max(HTTP_IDLE, HTTP_REQUEST_TIMEOUT) + 4.0
    try:
        next_trickle = time.monotonic()
        i = 0
        while len(closed_at) < len(socks) and time.monotonic() - opened_at < limit:
            if time.monotonic() >= next_trickle:
                for j, s in enumerate(socks):
                    if j in closed_at:
                        continue
                    try:
                        s.send(scripts[j][sent[j]:sent[j] + 1])
                        sent[j] += 1
                    except BlockingIOError:
                        pass
                    except OSError:
                        closed_at[j] = time.monotonic()
                next_trickle += 0.25
            # A normal client on new connections, against the victim.
            client.close()
            start = time.monotonic()
            if i % 2 == 0:
                r = client.request(victim.http_target, "GET", "/health")
                ok = r.status == 200
            else:
                sid, r = client.create_session(victim.http_target)
                ok = sid is not None and client.put_attr(victim.http_target, sid, ATTR, f"during-{i}").status == 204
                if ok:
                    during[sid] = f"during-{i}"
            slowest = max(slowest, time.monotonic() - start)
            served += ok
            if not ok:
                failures.append(f"{r.status} {r.text[:80]}")
            i += 1
            poll_closed(socks, closed_at, 0.02)
        heads = sorted(t - opened_at for j, t in closed_at.items() if j < SLOW_HEADS)
        bodies = sorted(t - opened_at for j, t in closed_at.items() if j >= SLOW_HEADS)
        assert len(closed_at) == len(socks), \
            f"still open {limit:.0f}s after opening: {SLOW_HEADS - len(heads)} slow heads, " \
            f"{SLOW_BODIES - len(bodies)} slow bodies"
        early = sorted((round(t - opened_at, 2), first[j % len(first)]) for j, t in closed_at.items()
                       if j < SLOW_HEADS and t - opened_at < HTTP_IDLE - 0.5)
        assert not early, f"{len(early)} slow heads closed before the idle timeout ({HTTP_IDLE}s), " \
                          f"(time, bytes sent first): {early[:10]}"
        assert heads[-1] <= HTTP_IDLE + 2.0, f"last slow head closed at {heads[-1]:.2f}s, idle timeout {HTTP_IDLE}"
        assert HTTP_REQUEST_TIMEOUT - 0.5 <= bodies[0] and bodies[-1] <= HTTP_REQUEST_TIMEOUT + 2.0, \
            f"slow bodies closed at {bodies[0]:.2f}-{bodies[-1]:.2f}s, request timeout {HTTP_REQUEST_TIMEOUT}"
        assert not failures, f"{len(failures)} normal requests failed during the attack: {failures[:5]}"
        assert served >= 10 and slowest < 2.0, f"{served} normal requests served, slowest {slowest:.2f}s"
    finally:
        close_all(socks)
        client.close()

    cluster.client.close()   # its kept-alive connections outlived the idle timeout
    slow_closed = metric_sum(cluster.metrics(victim), "session_cluster_http_slow_requests_closed_total") \
        - metric_sum(m0, "session_cluster_http_slow_requests_closed_total")
    assert slow_closed >= SLOW_BODIES, f"session_cluster_http_slow_requests_closed_total grew by {slow_closed}"
    # No slow body was stored, half or whole.
    for nd in cluster.nodes:
        r = cluster.client.get_attr(nd.http_target, target, "slow")
        assert r.status == 404, f"{nd.id}: the slow body's attribute: {r.status} {len(r.body)} bytes"
    assert_all_readable(cluster, {**before, **during})
    REPORTS.append(f"attacks/slowloris: {SLOW_HEADS} slow heads closed at {heads[0]:.1f}-{heads[-1]:.1f}s "
                   f"(idle timeout {HTTP_IDLE}s), {SLOW_BODIES} slow bodies at {bodies[0]:.1f}-{bodies[-1]:.1f}s "
                   f"(request timeout {HTTP_REQUEST_TIMEOUT}s); {served} normal requests served meanwhile, "
                   f"slowest {slowest:.2f}s; {time.monotonic() - t0:.1f}s")


# ---------------------------------------------------------------- d. a session-creation flood

STORE_BUDGET = 4 * 1024 * 1024
CREATES_PER_CLIENT = 10
VALUE = 64 * 1024
FLOOD_SECONDS = 8.0
RSS_BOUND_KIB = 1024 * 1024          # 1 GiB: far above a node's working set, far below the machine


def big_value(sid: str, attr: str) -> bytes:
    seed = f"{sid}/{attr}/".encode()
    return (seed * (VALUE // len(seed) + 1))[:VALUE]


def test_creation_flood_is_refused_without_losing_sessions(make_cluster):
    t0 = time.monotonic()
    cluster = make_cluster(3, 2, extra_args=["--max-store-bytes", str(STORE_BUDGET),
                                             "--max-creates-per-client", str(CREATES_PER_CLIENT)])
    wait_full_replication(cluster)
    # Slower than the limit: the sessions of a well-behaved client.
    before = {}
    for i in range(12):
        before.update(write_sessions(cluster, 1, f"before{i}"))
        time.sleep(1.0 / CREATES_PER_CLIENT)
    pids = {nd.id: nd.pid for nd in cluster.nodes}
    rss_start = {nd.id: rss_kib(nd.pid) for nd in cluster.nodes}

    # A burst of creations on one node: the bucket (burst = limit) runs dry, then 429.
    client = Client()
    victim = cluster.nodes[0]
    burst = [client.request(victim.http_target, "POST", "/session") for _ in range(4 * CREATES_PER_CLIENT)]
    limited = [r for r in burst if r.status == 429]
    assert len(limited) >= CREATES_PER_CLIENT, f"statuses of the burst: {[r.status for r in burst]}"
    assert {r.status for r in burst} <= {201, 429}, f"statuses of the burst: {[r.status for r in burst]}"
    for r in limited:
        assert int(r.headers.get("retry-after", "0")) >= 1 and r.json()["error"] == "rate_limited", (r.headers, r.text)
    rate_limited = metric_sum(cluster.metrics(victim), "session_cluster_http_rate_limited_total")
    assert rate_limited >= len(limited), f"session_cluster_http_rate_limited_total {rate_limited}, 429s {len(limited)}"

    # The flood: new sessions on every node in turn, each filled with 64 KiB values, for
    # FLOOD_SECONDS and at least until every node refused with store_full (at most 40 s).
    statuses: dict[str, int] = {}
    full_on: set[str] = set()
    acked: dict[tuple[str, str], bytes] = {}
    rss_max = dict(rss_start)
    bad = []
    flood_start = time.monotonic()
    k = 0
    while time.monotonic() - flood_start < 40 and not (
            full_on == {nd.id for nd in cluster.nodes} and time.monotonic() - flood_start >= FLOOD_SECONDS):
        nd = cluster.nodes[k % 3]
        k += 1
        sid, r = client.create_session(nd.http_target)
        responses = [("create", r)]
        if sid:
            for a in range(4):
                value = big_value(sid, f"a{a}")
                pr = client.put_attr(nd.http_target, sid, f"a{a}", value)
                responses.append(("put", pr))
                if pr.status == 204:
                    acked[(sid, f"a{a}")] = value
                else:
                    break
        for what, resp in responses:
            key = f"{what} {resp.status}"
            statuses[key] = statuses.get(key, 0) + 1
            if resp.status == 503:
                body = resp.json()
                if body.get("error") == "store_full" and int(resp.headers.get("retry-after", "0")) >= 1:
                    full_on.add(nd.id)
                else:
                    bad.append(f"{nd.id} {what}: 503 {resp.headers.get('retry-after')} {resp.text[:120]}")
            elif resp.status not in (201, 204, 429):
                bad.append(f"{nd.id} {what}: {resp.status} {resp.text[:120]} {resp.headers.get('x-error', '')}")
        if k % 10 == 0:
            for n in cluster.nodes:
                assert n.running() and n.pid == pids[n.id], f"{n.id} is not running:\n{n.tails()}"
                rss_max[n.id] = max(rss_max[n.id], rss_kib(n.pid))
    flood_seconds = time.monotonic() - flood_start

    assert full_on == {nd.id for nd in cluster.nodes}, f"store_full seen on {sorted(full_on)}; statuses {statuses}"
    assert not bad, f"unexpected answers during the flood: {bad[:10]}"
    for n in cluster.nodes:
        assert n.running() and n.pid == pids[n.id], f"{n.id} is not running:\n{n.tails()}"
        rss_max[n.id] = max(rss_max[n.id], rss_kib(n.pid))
        assert rss_max[n.id] < RSS_BOUND_KIB, f"{n.id} RSS {rss_max[n.id]} KiB"
    store_bytes = {n.id: metric_sum(cluster.metrics(n), "session_cluster_store_bytes") for n in cluster.nodes}
    # A node refuses its own growth past the budget; as a backup it still takes its owners'
    # deltas, so with R=2 it holds at most its budget plus what the others own of it.
    for n in cluster.nodes:
        assert store_bytes[n.id] <= 3 * STORE_BUDGET, f"store bytes {store_bytes}"

    client.close()
    wait_full_replication(cluster)
    assert_all_readable(cluster, before)
    # Every 64 KiB value acknowledged during the flood, through every node.
    wrong = []
    reader = Client()
    for n in cluster.nodes:
        for (sid, attr), value in acked.items():
            r = reader.get_attr(n.http_target, sid, attr)
            if r.status != 200 or r.body != value:
                wrong.append(f"{n.id} {sid[:8]}… {attr}: {r.status} {len(r.body)} bytes")
    reader.close()
    assert not wrong, f"{len(wrong)} acknowledged flood values not read back: {wrong[:10]}"
    REPORTS.append(f"attacks/flood: {flood_seconds:.1f}s, answers {statuses}; {len(acked)} values of 64 KiB acked "
                   f"and read back; store bytes {store_bytes}; RSS KiB start {rss_start} max {rss_max}; "
                   f"429s in the burst {len(limited)}/{len(burst)}; {time.monotonic() - t0:.1f}s")
