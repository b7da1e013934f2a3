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


@pytest.fixture
def make_cluster(request):
    """Factory: make_cluster(n, replicas) -> a started Cluster; stopped (by PID) afterwards.

    A watchdog kills every process of the test when it runs past FAULT_TEST_LIMIT seconds
    (170 by default), so one hung test cannot hang the suite.
    """
    clusters: list[Cluster] = []
    limit = float(os.environ.get("FAULT_TEST_LIMIT", "170"))
    fired = threading.Event()

    def watchdog_fire():
        fired.set()
        print(f"[watchdog] {request.node.name} ran past {limit:.0f}s: killing its processes",
              file=sys.stderr)
        for c in clusters:
            c.emergency_stop()

    watchdog = threading.Timer(limit, watchdog_fire)
    watchdog.daemon = True
    watchdog.start()

    def make(n, replicas, **kw):
        c = Cluster(n, replicas, name=f"{n}n", **kw)
        clusters.append(c)
        c.start()
        return c

    yield make
    watchdog.cancel()
    failed = fired.is_set() or any(
        getattr(request.node, "rep_" + w, None) is not None and getattr(request.node, "rep_" + w).failed
        for w in ("setup", "call"))
    for c in clusters:
        if failed:
            print(f"\n===== process log tails ({c.tmp}) =====\n{c.tails()}")
        c.close()


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
    every process stopped by PID, the lab removed by name; evidence printed on failure. The
    same watchdog as make_cluster SIGKILLs the processes after FAULT_TEST_LIMIT seconds.
    """
    from netcluster import NetCluster, require_netns
    require_netns()
    made: list = []
    limit = float(os.environ.get("FAULT_TEST_LIMIT", "170"))
    fired = threading.Event()

    def watchdog_fire():
        fired.set()
        print(f"[watchdog] {request.node.name} ran past {limit:.0f}s: killing its processes",
              file=sys.stderr)
        for nc in made:
            nc.emergency_stop()

    watchdog = threading.Timer(limit, watchdog_fire)
    watchdog.daemon = True
    watchdog.start()

    def make(k, n, replicas):
        nc = NetCluster(k, n, replicas)
        made.append(nc)
        nc.start()
        return nc

    try:
        yield make
    finally:
        watchdog.cancel()
        failed = fired.is_set() or any(
            getattr(request.node, "rep_" + w, None) is not None and getattr(request.node, "rep_" + w).failed
            for w in ("setup", "call"))
        for nc in made:
            if failed:
                try:
                    print(f"\n===== evidence (lab {nc.k}) =====\n{nc.evidence()}")
                except Exception as exc:  # noqa: BLE001 - still close
                    print(f"evidence: {exc!r}")
            nc.close()
