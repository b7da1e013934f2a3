"""Replay attacks on a live cluster (issue 15): three `session-node serve` processes on
127.0.0.1, their peer traffic recorded off `lo` (sniffer.py, root) and played back.

- A recorded peer connection, replayed onto a new connection to the same node, is refused
  at its first bytes (its hello answers another challenge): the old values it carried do not
  come back, and the refusal is counted.
- A dead node's recorded datagrams (its heartbeats), replayed to the survivors again and
  again, do not keep it in the view: it is removed in the usual time.
"""
import os
import secrets
import signal
import socket
import time

from cluster import Cluster, metric_sum, parse_prometheus, wait_until
from sniffer import LoopbackSniffer


def rejected(cluster: Cluster, node, code: str | None = None) -> float:
    samples = parse_prometheus(cluster.client.request(node.http_target, "GET", "/metrics").text)
    labels = {"code": code} if code else {}
    return metric_sum(samples, "session_cluster_rejected_frames_total", **labels)


def members(cluster: Cluster, node) -> set[str]:
    status = cluster.status(node) or {}
    return {m["id"] for m in status.get("members") or []}


def test_a_recorded_peer_connection_replayed_is_refused_and_old_values_stay_old(make_cluster):
    cluster = make_cluster(3, 2, with_nginx=False)
    sniffer = LoopbackSniffer([nd.bind_port for nd in cluster.nodes])
    sessions = {}
    try:
        for i in range(20):
            writer = cluster.nodes[i % 3]
            sid = cluster.client.create_with_value(writer.http_target, "step", "old", tries=20, pause=0.1)
            sessions[sid] = writer
    finally:
        sniffer.stop()
    # The busiest recorded connection into a node's peer port: what its connector sent.
    ports = {nd.bind_port: nd for nd in cluster.nodes}
    (source, destination), stream = max(
        ((key, bytes(data)) for key, data in sniffer.streams.items() if key[1] in ports), key=lambda item: len(item[1]))
    target = ports[destination]
    assert len(stream) > 200, f"recorded only {len(stream)} bytes into {target.id}"
    # Newer values, then the replay of the stream that carried the old ones.
    for sid, writer in sessions.items():
        assert cluster.client.put_attr(writer.http_target, sid, "step", "new").status == 204
    before = rejected(cluster, target, "110")
    replay = socket.create_connection(("127.0.0.1", destination), timeout=5)
    challenge = replay.recv(64)
    assert challenge[:4] == b"SCC1", f"no challenge: {challenge[:8]!r}"
    replay.sendall(stream)
    replay.settimeout(5)
    closed = False
    try:
        closed = replay.recv(1) == b""
    except ConnectionResetError:
        closed = True
    finally:
        replay.close()
    assert closed, "the node kept a connection that replayed another connection's bytes"
    wait_until(lambda: rejected(cluster, target, "110") > before, 5, what="the replayed hello refused and counted")
    for sid in sessions:
        for nd in cluster.nodes:
            got = cluster.client.get_attr(nd.http_target, sid, "step")
            assert got.status == 200 and got.text == "new", f"{nd.id}: {got.status} {got.text!r} after the replay"


def test_a_dead_nodes_recorded_heartbeats_replayed_do_not_keep_it_in_the_view(make_cluster):
    cluster = make_cluster(3, 2, with_nginx=False)
    victim = cluster.nodes[2]
    survivors = cluster.nodes[:2]
    leader = (cluster.status(survivors[0]) or {}).get("leader")
    if leader == victim.id:  # the test is about a member; a leader's death also costs an election
        victim, survivors = cluster.nodes[0], cluster.nodes[1:]
    sniffer = LoopbackSniffer([victim.bind_port])
    time.sleep(2.0)
    sniffer.stop()
    recorded = [payload for source, _, payload in sniffer.datagrams if source == victim.bind_port]
    assert len(recorded) >= 20, f"recorded {len(recorded)} datagrams of {victim.id}"
    victim.signal(signal.SIGKILL)
    killed = time.monotonic()
    replayer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    removed_after = None
    try:
        while time.monotonic() - killed < 8:
            for payload in recorded:
                for nd in survivors:
                    replayer.sendto(payload, ("127.0.0.1", nd.bind_port))
            if all(victim.id not in members(cluster, nd) for nd in survivors):
                removed_after = time.monotonic() - killed
                break
            time.sleep(0.05)
    finally:
        replayer.close()
    assert removed_after is not None, f"{victim.id} stayed in the view for 8 s of replayed heartbeats"
    assert removed_after < 4, f"{victim.id} removed only after {removed_after:.1f} s"
    print(f"replay: {victim.id} removed {removed_after:.2f} s after its death despite {len(recorded)} datagrams replayed "
          f"every 50 ms")
    # The cluster still serves.
    sid = cluster.client.create_with_value(survivors[0].http_target, "after", "replay", tries=30, pause=0.1)
    assert cluster.client.get_attr(survivors[1].http_target, sid, "after").text == "replay"
