"""Self-test of netns.py: what a user of the network lab relies on, checked on real packets.

Runs as root only (skipped otherwise, or when `ip netns add` is refused). Lab K=9, three
namespaces; tiny UDP/TCP echo servers run inside them (started with lab.wrap, stopped by PID);
clients and receivers are sockets the test creates in a namespace with lab.socket().
"""
import errno
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from netns import NetworkLab, _stop_pid  # noqa: E402

K = 9
NODES = ["n1", "n2", "n3"]
ECHO = 7000       # echo servers (UDP and TCP)
SINK = 7001       # receiver sockets of the test (UDP); both are peer ports

ECHO_SERVER = r"""
import socket, sys, threading
port = int(sys.argv[1])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)          # SO_RCVBUFFORCE: bursts are not dropped
u.bind(("0.0.0.0", port))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("0.0.0.0", port))
t.listen(16)
def serve(c):
    with c:
        while True:
            d = c.recv(65536)
            if not d:
                return
            c.sendall(d)
def accept():
    while True:
        c, _ = t.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
threading.Thread(target=accept, daemon=True).start()
print("ready", flush=True)
while True:
    d, a = u.recvfrom(65536)
    u.sendto(d, a)
"""


def _netns_add_works() -> bool:
    probe = f"ssc{K}-probe"
    p = subprocess.run(["ip", "netns", "add", probe], capture_output=True)
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return p.returncode == 0


@pytest.fixture(scope="module")
def lab():
    if os.geteuid() != 0:
        pytest.skip("the network lab needs root (network namespaces, iptables)")
    if not _netns_add_works():
        pytest.skip("`ip netns add` fails here: no network namespaces")
    lab = NetworkLab(K, NODES, peer_ports=[ECHO, SINK])
    lab.setup()
    lab.servers = []
    try:
        for node in NODES:
            proc = subprocess.Popen(lab.wrap(node, [sys.executable, "-c", ECHO_SERVER, str(ECHO)]),
                                    stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
            lab.servers.append(proc)
            assert proc.stdout.readline().strip() == b"ready", f"echo server in {node} did not start"
        yield lab
    finally:
        stop_servers(lab)
        lab.close()


def stop_servers(lab):
    for proc in lab.servers:
        _stop_pid(proc)
        if proc.stdout:
            proc.stdout.close()
    lab.servers = []


@pytest.fixture(autouse=True)
def healed(request):
    yield
    if "lab" in request.fixturenames:
        request.getfixturevalue("lab").heal()


# ---------------------------------------------------------------- helpers

def sink(lab, node):
    """A UDP socket in node's namespace bound to SINK, with a big receive buffer."""
    s = lab.socket(node)
    s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)   # SO_RCVBUFFORCE
    s.bind(("0.0.0.0", SINK))
    return s


def drain(s, quiet=0.3, limit=5.0):
    """Datagrams received until nothing came for `quiet` seconds (at most `limit`)."""
    got = []
    deadline = time.monotonic() + limit
    s.settimeout(quiet)
    while time.monotonic() < deadline:
        try:
            got.append(s.recv(65536))
        except socket.timeout:
            break
    return got


def send_burst(s, addr, n, pace_every=20):
    """n datagrams (4-byte sequence numbers); a short pause every few so that no queue on
    the way (veth backlog, socket buffers) overflows: the loss measured is the lab's."""
    for i in range(n):
        s.sendto(struct.pack("!I", i), addr)
        if pace_every and i % pace_every == pace_every - 1:
            time.sleep(0.001)


def udp_rtt(s, addr, timeout=2.0):
    s.settimeout(timeout)
    t = time.monotonic()
    s.sendto(b"ping", addr)
    data, _ = s.recvfrom(100)
    assert data == b"ping"
    return (time.monotonic() - t) * 1000


def tcp_echo(sock, addr):
    sock.settimeout(3)
    with sock:
        sock.connect(addr)
        sock.sendall(b"hello")
        return sock.recv(100)


def assert_delivered(lab, src, dst, n=5):
    r = sink(lab, dst)
    with r, lab.socket(src) as s:
        send_burst(s, (lab.address(dst), SINK), n)
        got = drain(r)
    assert len(got) == n, f"{src}->{dst}: {len(got)} of {n} delivered"


def assert_eperm_and_lost(lab, src, dst):
    r = sink(lab, dst)
    with r, lab.socket(src) as s:
        with pytest.raises(OSError) as exc:
            s.sendto(b"x", (lab.address(dst), SINK))
        assert exc.value.errno == errno.EPERM
        got = drain(r)
    assert got == [], f"{src}->{dst} cut, yet {len(got)} datagrams arrived"


def assert_silently_lost(lab, src, dst, n=5):
    r = sink(lab, dst)
    with r, lab.socket(src) as s:
        send_burst(s, (lab.address(dst), SINK), n)     # must not raise
        got = drain(r)
    assert got == [], f"{src}->{dst} cut, yet {len(got)} datagrams arrived"


# ---------------------------------------------------------------- tests

def test_connectivity(lab):
    for dst in ("n2", "n3"):
        with lab.socket("n1") as s:
            assert udp_rtt(s, (lab.address(dst), ECHO)) < 1000
        assert tcp_echo(lab.socket("n1", socket.SOCK_STREAM), (lab.address(dst), ECHO)) == b"hello"
    # From the root namespace (where the test and its HTTP client live).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        assert udp_rtt(s, (lab.address("n2"), ECHO)) < 1000
    assert tcp_echo(socket.socket(), (lab.address("n3"), ECHO)) == b"hello"
    assert_delivered(lab, "n2", "n1")


def test_cut_with_send_errors(lab):
    lab.cut("n1", "n2")
    assert_eperm_and_lost(lab, "n1", "n2")
    assert_eperm_and_lost(lab, "n2", "n1")
    assert_delivered(lab, "n1", "n3")
    # The root namespace still reaches the cut nodes (HTTP stays up).
    assert tcp_echo(socket.socket(), (lab.address("n2"), ECHO)) == b"hello"
    lab.heal()
    assert_delivered(lab, "n1", "n2")
    assert_delivered(lab, "n2", "n1")


def test_cut_silent(lab):
    lab.cut("n1", "n2", send_errors=False)
    assert_silently_lost(lab, "n1", "n2")
    assert_silently_lost(lab, "n2", "n1")
    lab.heal()
    assert_delivered(lab, "n1", "n2")


def test_cut_one_way(lab):
    lab.cut_one_way("n1", "n2")
    assert_eperm_and_lost(lab, "n1", "n2")
    assert_delivered(lab, "n2", "n1")
    lab.heal()
    lab.cut_one_way("n1", "n2", send_errors=False)
    assert_silently_lost(lab, "n1", "n2")
    assert_delivered(lab, "n2", "n1")


def test_isolate_split_and_partial_heal(lab):
    lab.isolate("n1")
    assert_eperm_and_lost(lab, "n1", "n2")
    assert_eperm_and_lost(lab, "n3", "n1")
    assert_delivered(lab, "n2", "n3")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        assert udp_rtt(s, (lab.address("n1"), ECHO)) < 1000
    lab.heal("n1")
    assert_delivered(lab, "n1", "n2")

    lab.split(["n1"], ["n2", "n3"], send_errors=False)
    assert_silently_lost(lab, "n1", "n3")
    assert_silently_lost(lab, "n2", "n1")
    assert_delivered(lab, "n2", "n3")
    lab.heal()

    lab.cut("n1", "n2")
    lab.cut("n2", "n3")
    lab.heal("n1")                     # only the cuts involving n1 go
    assert_delivered(lab, "n1", "n2")
    assert_eperm_and_lost(lab, "n3", "n2")


def test_delay_and_reordering(lab):
    echo = (lab.address("n2"), ECHO)
    with lab.socket("n1") as s:
        before = statistics.median(udp_rtt(s, echo) for _ in range(20))
    lab.impair("n1", delay_ms=100, jitter_ms=40)
    with lab.socket("n1") as s:
        after = statistics.median(udp_rtt(s, echo) for _ in range(15))
        # Back-to-back datagrams get independent delays in [60, 140] ms: some overtake.
        n = 200
        send_burst(s, echo, n, pace_every=0)
        got = [struct.unpack("!I", d)[0] for d in drain(s, quiet=0.5)]
    assert before < 10, f"RTT before impair {before:.1f} ms"
    assert 60 <= after <= 250, f"RTT with delay 100±40 ms: {after:.1f} ms (before {before:.1f})"
    assert sorted(got) == list(range(n)), f"{n - len(got)} lost or duplicated by the delayer"
    inversions = sum(1 for a, b in zip(got, got[1:]) if b < a)
    assert inversions > 0, "no reordering with 40 ms jitter"
    lab.heal("n1")
    with lab.socket("n1") as s:
        assert statistics.median(udp_rtt(s, echo) for _ in range(10)) < 10


def test_loss_is_silent_and_about_right(lab):
    lab.impair("n1", loss=0.2)
    r = sink(lab, "n2")
    n = 500
    with r, lab.socket("n1") as s:
        send_burst(s, (lab.address("n2"), SINK), n)    # no send errors: loss is silent
        got = len(drain(r))
    lost = (n - got) / n
    assert 0.05 <= lost <= 0.40, f"loss 0.2: {lost:.1%} of {n} lost"
    lab.heal()
    assert_delivered(lab, "n1", "n2", n=50)


def test_duplicate(lab):
    lab.impair("n1", duplicate=0.3)
    r = sink(lab, "n2")
    n = 300
    with r, lab.socket("n1") as s:
        send_burst(s, (lab.address("n2"), SINK), n)
        got = len(drain(r))
    assert got > n, f"duplicate 0.3: {got} received of {n} sent"
    lab.heal()
    assert_delivered(lab, "n1", "n2", n=50)


def test_close_leaves_nothing(lab):
    routes_before = json.loads(subprocess.run(["ip", "-j", "route", "show"], capture_output=True,
                                              text=True, check=True).stdout)
    stop_servers(lab)
    lab.close()
    lab.close()                       # idempotent
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    routes = json.loads(subprocess.run(["ip", "-j", "route", "show"], capture_output=True,
                                       text=True, check=True).stdout)
    assert f"ssc{K}-" not in netns, netns
    names = [line.split()[0].split("@")[0] for line in links.splitlines() if line.strip()]
    assert f"sscbr{K}" not in names and not any(n.startswith(f"ssc{K}n") for n in names), links
    assert not any(r.get("dst", "").startswith(f"10.231.{K}.") for r in routes), routes
    # The blackhole goes with the last 10.231/16 route; another lab (e.g. a concurrent run
    # with another K) keeps it.
    others = [r for r in routes if r.get("dst", "").startswith("10.231.") and r.get("type") != "blackhole"]
    blackhole = any(r.get("type") == "blackhole" and r.get("dst") == "10.231.0.0/16" for r in routes)
    if others:
        assert blackhole, f"blackhole removed while other 10.231 routes remain: {others}"
    else:
        assert not blackhole, f"blackhole route left behind: {routes} (before: {routes_before})"
