"""Each session end is announced once across failovers, on real processes: the expiry
events of sessions whose owner was killed before they expired, or paused across their
expiry, counted from every node's session_cluster_session_events_total{event="expired"}."""
from __future__ import annotations

import time

import pytest

from cluster import REPORTS, Client, Cluster, metric_sum, wait_until

IDLE_SECONDS = 4
SESSIONS = 40


def create_sessions(cluster: Cluster, client: Client) -> list[str]:
    sids = []
    while len(sids) < SESSIONS:
        sid = client.create_with_value(cluster.proxy_port, "cart", "apples", tries=40, pause=0.1)
        sids.append(sid)
    return sids


def expired_announcements(cluster: Cluster) -> float:
    return sum(metric_sum(cluster.metrics(nd), "session_cluster_session_events_total", event="expired")
               for nd in cluster.live_nodes())


@pytest.mark.parametrize("fault", ["kill", "pause"])
def test_each_expiry_is_announced_once_across_a_failover(make_cluster, fault):
    cluster: Cluster = make_cluster(3, 2, extra_args=["--idle-timeout", str(IDLE_SECONDS)])
    client = Client(timeout=10.0)
    created_at = time.monotonic()
    sids = create_sessions(cluster, client)
    victim = cluster.nodes[1]
    if fault == "kill":
        victim.kill()                       # before any session expires: its sessions expire elsewhere
    else:
        # Paused across the expiry: the others take over its sessions and expire them; when it
        # resumes it must not announce them too.
        time.sleep(max(0.0, created_at + IDLE_SECONDS - 1.0 - time.monotonic()))
        victim.pause()
        time.sleep(IDLE_SECONDS + 2)
        victim.resume()
    # Every session has expired (idle timeout, then a sweep each second) and the view settled.
    try:
        wait_until(lambda: expired_announcements(cluster) >= SESSIONS, 30, what=f"{SESSIONS} expiries announced")
    except Exception:
        pass
    time.sleep(3)                           # a second announcement would show by now
    announced = expired_announcements(cluster)
    readable = [sid for sid in sids if client.get_attr(cluster.proxy_port, sid, "cart").status == 200]
    REPORTS.append(f"[3 nodes, R=2, idle {IDLE_SECONDS}s] {fault} of {victim.id}: {SESSIONS} sessions expired, "
                   f"{announced:.0f} expiry announcements across the nodes")
    assert not readable, f"{len(readable)} sessions still readable after their idle timeout"
    assert announced == SESSIONS, f"{announced:.0f} expiry announcements for {SESSIONS} expired sessions"
