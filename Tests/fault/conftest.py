"""pytest glue for the fault suite: node log tails on failure, reports always shown."""
import os
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from cluster import REPORTS, Cluster  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _managed(request, build, evidence):
    """The body of both factories: `build(*args)` makes and starts a cluster, remembered so that
    afterwards, even when a check failed, it is closed (every process stopped by PID), with
    `evidence(cluster)` printed first on failure. A watchdog calls `emergency_stop()` on every
    cluster of the test past FAULT_TEST_LIMIT seconds (170 by default), so one hung test cannot
    hang the suite."""
    made: list = []
    limit = float(os.environ.get("FAULT_TEST_LIMIT", "170"))
    fired = threading.Event()

    def watchdog_fire():
        fired.set()
        print(f"[watchdog] {request.node.name} ran past {limit:.0f}s: killing its processes",
              file=sys.stderr)
        for c in made:
            c.emergency_stop()

    watchdog = threading.Timer(limit, watchdog_fire)
    watchdog.daemon = True
    watchdog.start()

    def make(*args, **kw):
        c = build(*args, **kw)
        made.append(c)
        c.start()
        return c

    try:
        yield make
    finally:
        watchdog.cancel()
        failed = fired.is_set() or any(
            getattr(request.node, "rep_" + w, None) is not None and getattr(request.node, "rep_" + w).failed
            for w in ("setup", "call"))
        for c in made:
            if failed:
                try:
                    print(evidence(c))
                except Exception as exc:  # noqa: BLE001 - still close
                    print(f"evidence: {exc!r}")
            c.close()


@pytest.fixture
def make_cluster(request):
    """Factory: make_cluster(n, replicas) -> a started Cluster on 127.0.0.1; stopped (by PID)
    afterwards, with the process log tails printed when the test failed."""
    yield from _managed(
        request, lambda n, replicas, **kw: Cluster(n, replicas, name=f"{n}n", **kw),
        lambda c: f"\n===== process log tails ({c.tmp}) =====\n{c.tails()}")


def pytest_terminal_summary(terminalreporter):
    if REPORTS:
        terminalreporter.section("fault suite report")
        for r in REPORTS:
            terminalreporter.write_line(r)


@pytest.fixture
def make_net_cluster(request):
    """Factory for the network suite: make_net_cluster(k, n, replicas) -> a started NetCluster
    (lab K with namespaces n1..nN, a node in each, nginx in the root namespace).

    Fails (does not skip) without root or `ip netns`. Afterwards, even when a check failed:
    every process stopped by PID, the lab removed by name; evidence printed on failure.
    """
    from netcluster import NetCluster, require_netns
    require_netns()
    yield from _managed(request, NetCluster, lambda nc: f"\n===== evidence (lab {nc.k}) =====\n{nc.evidence()}")
