"""A network lab for process-level fault tests: one Linux network namespace per node.

Layout of lab K (K a small int, 0..255):

    root namespace: bridge sscbrK with 10.231.K.254/24 (the test process reaches every node
                    directly), route "blackhole 10.231.0.0/16" so lab traffic never takes the
                    default route, even if the bridge is gone
    node i:         namespace sscK-<node>, veth "eth0" with 10.231.K.i/24 (no default route);
                    its root-side peer sscK<node> is a port of the bridge

Faults act on *peer* traffic only: packets between two nodes' addresses, and, when the lab
was given `peer_ports`, only TCP/UDP packets whose source or destination port is one of them
(so HTTP from the root namespace, 10.231.K.254, is never touched).

The kernel here has no sch_netem, so faults are built from netfilter, inside each node's
namespace, in chains the lab owns (heal = rewrite them):

    filter  INPUT       -> SSC-IN    cuts (DROP), silent random loss (statistic + DROP)
    filter  OUTPUT      -> SSC-OUT   cuts with send errors (DROP here: sendmsg gets EPERM)
    mangle  POSTROUTING -> SSC-MOUT  duplication (statistic + TEE), then delay (NFQUEUE to a
                                     "delayer" process, the `delayer` command of this file)

Everything is created and deleted by name; see NetworkLab. Only the standard library is used.

Note: this kernel has br_netfilter (net.bridge.bridge-nf-call-iptables=1 in the root
namespace), so frames crossing the bridge also traverse the root namespace's FORWARD chain;
its policy is ACCEPT here. setup() logs a warning if it is not (the lab never edits the host's
firewall).

Command line:
    python3 netns.py delayer --queue Q --delay-ms D --jitter-ms J --seed S [--parent-pid P]
    python3 netns.py cleanup K          # remove what a killed run of lab K left behind
"""
from __future__ import annotations

import argparse
import ctypes
import errno
import heapq
import itertools
import json
import logging
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass

log = logging.getLogger("netns_lab")

SUPERNET = "10.231.0.0/16"
QUEUE_NUM = 31            # NFQUEUE number of the delayer; queues are per namespace
CHAINS = {"filter": ("SSC-IN", "SSC-OUT"), "mangle": ("SSC-MOUT",)}
JUMPS = {"filter": (("INPUT", "SSC-IN"), ("OUTPUT", "SSC-OUT")),
         "mangle": (("POSTROUTING", "SSC-MOUT"),)}
_NODE_RE = re.compile(r"^[a-z][a-z0-9]*$")


class LabError(RuntimeError):
    """The lab could not be built or changed (a command failed, a check did not hold)."""


def _run(argv: list[str], *, input: str | None = None, check: bool = True,
         timeout: float = 20.0) -> subprocess.CompletedProcess:
    try:
        p = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        if check:
            raise LabError(f"{' '.join(argv)}: {exc}") from exc
        return subprocess.CompletedProcess(argv, -1, "", str(exc))
    if check and p.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({p.returncode}): {p.stderr.strip()}")
    return p


def _links() -> list[dict]:
    return json.loads(_run(["ip", "-j", "link", "show"]).stdout or "[]")


def _netns_names() -> list[str]:
    out = _run(["ip", "-j", "netns", "list"], check=False).stdout.strip()
    return [e["name"] for e in json.loads(out)] if out else []


def _lab_routes_other_than_blackhole() -> list[dict]:
    """Routes into 10.231.0.0/16 in the root namespace except the blackhole itself."""
    routes = json.loads(_run(["ip", "-j", "route", "show"]).stdout or "[]")
    return [r for r in routes
            if r.get("dst", "").startswith("10.231.") and r.get("type") != "blackhole"]


def _has_blackhole() -> bool:
    routes = json.loads(_run(["ip", "-j", "route", "show"]).stdout or "[]")
    return any(r.get("type") == "blackhole" and r.get("dst") == SUPERNET for r in routes)


def _stop_pid(proc: subprocess.Popen | int, grace: float = 2.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; by PID only. Never raises."""
    pid = proc.pid if isinstance(proc, subprocess.Popen) else proc
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except OSError as exc:
        log.warning("SIGTERM %d: %s", pid, exc)
    if isinstance(proc, subprocess.Popen):
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            pass
        try:
            proc.kill()
            proc.wait(grace)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("SIGKILL %d: %s", pid, exc)
    else:  # not our child: poll until it is gone
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                return
            time.sleep(0.05)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def cleanup_stale(k: int) -> None:
    """Removes what a killed earlier run of lab `k` left: processes inside namespaces
    `ssc<k>-*` (SIGKILLed by PID: they can only be leftovers of that run), those namespaces,
    the root-side veths `ssc<k><node>` and the bridge `sscbr<k>`. Never raises."""
    prefix = f"ssc{k}-"
    veth_re = re.compile(rf"^ssc{k}[a-z][a-z0-9]*$")   # ssc1n1, but not ssc12n1 (lab 12)
    bridge = f"sscbr{k}"
    try:
        for ns in _netns_names():
            if not ns.startswith(prefix):
                continue
            pids = _run(["ip", "netns", "pids", ns], check=False).stdout.split()
            for pid in pids:
                log.warning("cleanup_stale: killing leftover pid %s in %s", pid, ns)
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass
            p = _run(["ip", "netns", "del", ns], check=False)
            if p.returncode != 0:
                log.warning("cleanup_stale: ip netns del %s: %s", ns, p.stderr.strip())
        for link in _links():
            name = link.get("ifname", "")
            if name != bridge and (veth_re.match(name) or link.get("master") == bridge):
                _run(["ip", "link", "del", name], check=False)
        if any(link.get("ifname") == bridge for link in _links()):
            _run(["ip", "link", "del", bridge], check=False)
    except Exception as exc:  # noqa: BLE001 - cleanup must not raise
        log.warning("cleanup_stale(%d): %r", k, exc)


@dataclass(frozen=True)
class _Rule:
    node: str                 # the namespace (node) holding the rule
    table: str                # filter | mangle
    chain: str                # SSC-IN | SSC-OUT | SSC-MOUT
    spec: tuple[str, ...]     # iptables match + target, without "-A chain"
    owners: frozenset         # heal(x) removes the rule if x is an owner
    kind: str                 # cut | impair
    order: int = 0            # in SSC-MOUT: TEE (0) must come before NFQUEUE (1), see impair()


class NetworkLab:
    """One namespace per node on a bridge; cut, delay, drop, duplicate, reorder peer traffic.

    lab = NetworkLab(1, ["n1", "n2", "n3"], peer_ports=[7946])
    lab.setup()
    subprocess.Popen(lab.wrap("n1", ["session-node", "serve", "--bind", lab.address("n1") + ":7946", ...]))
    lab.cut("n1", "n2"); ...; lab.heal(); lab.close()

    `peer_ports`: the cluster's peer port(s), at most 15; faults then match TCP and UDP with
    that source or destination port. None: faults match all IPv4 traffic between nodes.
    The attribute may be changed before faults are applied.
    """

    def __init__(self, k: int, nodes: list[str], *, peer_ports: list[int] | None = None):
        if not 0 <= k <= 255:
            raise ValueError("k must be in 0..255")
        if not 1 <= len(nodes) <= 253 or len(set(nodes)) != len(nodes):
            raise ValueError("nodes must be 1..253 distinct names")
        for n in nodes:
            if not _NODE_RE.match(n) or len(f"ssc{k}{n}") > 15:
                raise ValueError(f"node name {n!r}: [a-z][a-z0-9]*, ssc{k}<name> at most 15 chars")
        self.k = k
        self.nodes = list(nodes)
        self.peer_ports = list(peer_ports) if peer_ports else None
        self.bridge = f"sscbr{k}"
        self.prefix = f"10.231.{k}"
        self._rules: list[_Rule] = []
        self._delayers: dict[str, subprocess.Popen] = {}
        self._created = False

    # ------------------------------------------------------------ names and addresses

    def address(self, node: str) -> str:
        """The node's IPv4 address, 10.231.K.i (i = 1-based position in `nodes`)."""
        return f"{self.prefix}.{self.nodes.index(node) + 1}"

    @property
    def root_address(self) -> str:
        """The root namespace's address on the bridge, 10.231.K.254."""
        return f"{self.prefix}.254"

    def netns(self, node: str) -> str:
        """The node's namespace name, sscK-<node>."""
        self._check(node)
        return f"ssc{self.k}-{node}"

    def veth(self, node: str) -> str:
        """The root-side veth of the node (a bridge port), sscK<node>."""
        self._check(node)
        return f"ssc{self.k}{node}"

    def wrap(self, node: str, argv: list[str]) -> list[str]:
        """argv to start a process inside the node's namespace (`ip netns exec` execs, so the
        PID of the Popen is the PID of the process itself)."""
        return ["ip", "netns", "exec", self.netns(node)] + list(argv)

    def socket(self, node: str, type: int = socket.SOCK_DGRAM, proto: int = 0) -> socket.socket:
        """An AF_INET socket created inside the node's namespace, usable from any thread.

        A socket belongs to the namespace it was created in; the creation runs in a short-lived
        thread that setns()es into the namespace, so the caller's own namespace never changes."""
        ns_path = f"/run/netns/{self.netns(node)}"
        result: list = []

        def make():
            libc = ctypes.CDLL(None, use_errno=True)
            try:
                with open(ns_path) as f:
                    if libc.setns(f.fileno(), 0x40000000) != 0:  # CLONE_NEWNET
                        e = ctypes.get_errno()
                        raise OSError(e, f"setns {ns_path}: {os.strerror(e)}")
                result.append(socket.socket(socket.AF_INET, type, proto))
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                result.append(exc)
            # the thread ends here, and its namespace with it

        t = threading.Thread(target=make, name=f"netns-socket-{node}")
        t.start()
        t.join()
        if isinstance(result[0], Exception):
            raise result[0]
        return result[0]

    def _check(self, node: str) -> None:
        if node not in self.nodes:
            raise ValueError(f"unknown node {node!r} (lab nodes: {self.nodes})")

    # ------------------------------------------------------------ setup and teardown

    def setup(self) -> None:
        """Creates bridge, namespaces, veths, addresses, the blackhole route and the SSC chains;
        checks that 10.231.K.1 is routed via the bridge. Removes leftovers of lab K first.
        On failure everything created is removed and LabError is raised."""
        cleanup_stale(self.k)
        self._created = True
        try:
            # First the safety net: from now on 10.231/16 never follows the default route.
            _run(["ip", "route", "replace", "blackhole", SUPERNET])
            _run(["ip", "link", "add", self.bridge, "type", "bridge"])
            self._disable_ipv6_root(self.bridge)
            _run(["ip", "addr", "add", f"{self.root_address}/24", "dev", self.bridge])
            _run(["ip", "link", "set", self.bridge, "up"])
            for node in self.nodes:
                ns, veth = self.netns(node), self.veth(node)
                _run(["ip", "netns", "add", ns])
                # The peer is created directly in the namespace, so "eth0" cannot clash.
                _run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
                self._disable_ipv6_root(veth)
                _run(["ip", "link", "set", veth, "master", self.bridge, "up"])
                _run(["ip", "-n", ns, "link", "set", "lo", "up"])
                _run(["ip", "-n", ns, "addr", "add", f"{self.address(node)}/24", "dev", "eth0"])
                _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
                self._create_chains(node)
            self._verify_route()
            self._warn_if_bridge_filtered()
        except BaseException:
            self.close()
            raise

    def _disable_ipv6_root(self, dev: str) -> None:
        # Quiet bridge: no IPv6 link-local chatter from the root-side devices (best effort).
        try:
            with open(f"/proc/sys/net/ipv6/conf/{dev}/disable_ipv6", "w") as f:
                f.write("1")
        except OSError:
            pass

    def _create_chains(self, node: str) -> None:
        lines = []
        for table, chains in CHAINS.items():
            lines.append(f"*{table}")
            lines += [f":{c} - [0:0]" for c in chains]
            lines += [f"-A {hook} -j {c}" for hook, c in JUMPS[table]]
            lines.append("COMMIT")
        self._restore(node, lines)

    def _verify_route(self) -> None:
        for node in self.nodes:
            addr = self.address(node)
            out = _run(["ip", "-j", "route", "get", addr]).stdout
            routes = json.loads(out or "[]")
            dev = routes[0].get("dev") if routes else None
            if dev != self.bridge:
                raise LabError(f"{addr} is routed via {dev!r}, not via the lab bridge "
                               f"{self.bridge}: {out.strip()}")

    def _warn_if_bridge_filtered(self) -> None:
        # With br_netfilter, bridged frames also cross the root namespace's FORWARD chain.
        try:
            with open("/proc/sys/net/bridge/bridge-nf-call-iptables") as f:
                if f.read().strip() != "1":
                    return
        except OSError:
            return
        p = _run(["iptables", "-w", "-S", "FORWARD"], check=False)
        if p.returncode == 0 and "-P FORWARD ACCEPT" not in p.stdout:
            log.warning("bridge-nf-call-iptables=1 and the root FORWARD policy is not ACCEPT: "
                        "traffic between lab namespaces may be filtered by the host firewall")

    def close(self) -> None:
        """Stops the delayers and deletes namespaces, veths, bridge (by name), and the
        blackhole route when no other 10.231.x route remains. Idempotent; never raises."""
        for node in list(self._delayers):
            self._stop_delayer(node)
        self._rules.clear()
        if not self._created:
            return
        try:
            existing_ns = set(_netns_names())
            for node in self.nodes:
                ns = self.netns(node)
                if ns not in existing_ns:
                    continue
                pids = _run(["ip", "netns", "pids", ns], check=False).stdout.split()
                if pids:
                    log.warning("close: processes still in %s: %s (not stopped by the lab)",
                                ns, " ".join(pids))
                p = _run(["ip", "netns", "del", ns], check=False)
                if p.returncode != 0:
                    log.warning("close: ip netns del %s: %s", ns, p.stderr.strip())
            # Deleting the root side deletes the pair, even if a process keeps the namespace.
            names = {link.get("ifname") for link in _links()}
            for node in self.nodes:
                if self.veth(node) in names:
                    p = _run(["ip", "link", "del", self.veth(node)], check=False)
                    if p.returncode != 0:
                        log.warning("close: ip link del %s: %s", self.veth(node), p.stderr.strip())
            if self.bridge in names:
                p = _run(["ip", "link", "del", self.bridge], check=False)
                if p.returncode != 0:
                    log.warning("close: ip link del %s: %s", self.bridge, p.stderr.strip())
            # The blackhole is shared by every lab (and any other user of 10.231/16): it goes
            # only with the last route into 10.231/16.
            if _has_blackhole() and not _lab_routes_other_than_blackhole():
                p = _run(["ip", "route", "del", "blackhole", SUPERNET], check=False)
                if p.returncode != 0:
                    log.warning("close: ip route del blackhole: %s", p.stderr.strip())
        except Exception as exc:  # noqa: BLE001 - close must not raise
            log.warning("close lab %d: %r", self.k, exc)
        self._created = False

    def __enter__(self) -> "NetworkLab":
        self.setup()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ iptables plumbing

    def _traffic(self) -> list[list[str]]:
        """Matches for peer traffic: one per protocol; multiport --ports = sport or dport."""
        if not self.peer_ports:
            return [[]]
        if len(self.peer_ports) > 15:
            raise ValueError("at most 15 peer ports (multiport limit)")
        ports = ",".join(str(int(p)) for p in self.peer_ports)
        return [["-p", proto, "-m", "multiport", "--ports", ports] for proto in ("tcp", "udp")]

    def _restore(self, node: str, lines: list[str]) -> None:
        # One iptables-restore = one nf_tables transaction: the chains change atomically.
        _run(["ip", "netns", "exec", self.netns(node), "iptables-restore", "-w", "--noflush"],
             input="\n".join(lines) + "\n")

    def _sync(self, nodes) -> None:
        """Rewrites the SSC chains of `nodes` from self._rules (flush + append, atomically)."""
        if not self._created:
            raise LabError("the lab is not set up (call setup() first)")
        for node in self.nodes:
            if node not in nodes:
                continue
            lines = []
            for table, chains in CHAINS.items():
                lines.append(f"*{table}")
                for chain in chains:
                    lines.append(f"-F {chain}")
                    mine = [r for r in self._rules if r.node == node and r.chain == chain]
                    for r in sorted(mine, key=lambda r: r.order):   # stable: insertion order
                        lines.append(" ".join(["-A", chain, *r.spec]))
                lines.append("COMMIT")
            self._restore(node, lines)

    def _add(self, rules: list[_Rule]) -> None:
        for r in rules:
            if r not in self._rules:
                self._rules.append(r)
        self._sync({r.node for r in rules})

    def _drop_rules(self, src: str, dst: str, send_errors: bool) -> list[_Rule]:
        owners = frozenset((src, dst))
        tag = ["-m", "comment", "--comment", f"ssc:cut:{src}>{dst}"]
        rules = []
        for match in self._traffic():
            # Receiver side: always (also catches packets already in flight / in a delayer).
            rules.append(_Rule(dst, "filter", "SSC-IN",
                               ("-s", self.address(src), *match, *tag, "-j", "DROP"), owners, "cut"))
            if send_errors:
                # Sender side in OUTPUT: the kernel returns EPERM to sendmsg()/connect().
                rules.append(_Rule(src, "filter", "SSC-OUT",
                                   ("-d", self.address(dst), *match, *tag, "-j", "DROP"),
                                   owners, "cut"))
        return rules

    # ------------------------------------------------------------ faults

    def cut_one_way(self, src: str, dst: str, *, send_errors: bool = True) -> None:
        """Drops peer packets from src to dst (dst to src still flows; note that TCP needs
        both directions, so TCP between them stops either way).

        send_errors=True: DROP in src's OUTPUT (src's sends fail with EPERM) and dst's INPUT.
        send_errors=False: DROP in dst's INPUT only: sends succeed, packets vanish."""
        self._check(src), self._check(dst)
        if src == dst:
            raise ValueError("src and dst are the same node")
        self._add(self._drop_rules(src, dst, send_errors))

    def cut(self, a: str, b: str, *, send_errors: bool = True) -> None:
        """Drops peer packets between a and b in both directions (see cut_one_way)."""
        self._check(a), self._check(b)
        if a == b:
            raise ValueError("a and b are the same node")
        self._add(self._drop_rules(a, b, send_errors) + self._drop_rules(b, a, send_errors))

    def isolate(self, node: str, *, send_errors: bool = True) -> None:
        """Cuts node from every other node (the root namespace still reaches it)."""
        self._check(node)
        rules = []
        for other in self.nodes:
            if other != node:
                rules += self._drop_rules(node, other, send_errors)
                rules += self._drop_rules(other, node, send_errors)
        self._add(rules)

    def split(self, *groups: list[str], send_errors: bool = True) -> None:
        """Partitions: every node of a group is cut from every node of every other group.
        Groups must be disjoint; a node in no group keeps talking to everyone."""
        seen: set[str] = set()
        for g in groups:
            for n in g:
                self._check(n)
                if n in seen:
                    raise ValueError(f"node {n!r} is in two groups")
                seen.add(n)
        rules = []
        for i, g1 in enumerate(groups):
            for g2 in groups[i + 1:]:
                for a in g1:
                    for b in g2:
                        rules += self._drop_rules(a, b, send_errors)
                        rules += self._drop_rules(b, a, send_errors)
        self._add(rules)

    def impair(self, node: str, *, loss: float = 0.0, delay_ms: float = 0, jitter_ms: float = 0,
               duplicate: float = 0.0, seed: int | None = None) -> None:
        """Impairs the node's OUTGOING peer traffic to the other nodes, like netem would.
        Replaces the node's previous impairment (all zero = none); cuts are kept.

        loss:      probability a packet is lost, silently (sends succeed): statistic + DROP
                   in each receiver's INPUT, matching the node as source.
        duplicate: probability a packet is sent twice: statistic + TEE --gateway <receiver>
                   in the node's mangle POSTROUTING (the copy is sent directly to the receiver).
        delay_ms, jitter_ms: each packet is held for uniform [delay-jitter, delay+jitter] ms
                   (at least 0) by a delayer process bound to NFQUEUE in the node's namespace;
                   with jitter, later packets overtake earlier ones (reordering). The rule has
                   --queue-bypass: packets pass undelayed if no delayer is bound.
        seed:      the delayer's random seed (default: derived from lab and node).
        """
        self._check(node)
        if not self._created:
            raise LabError("the lab is not set up (call setup() first)")
        if not (0 <= loss <= 1 and 0 <= duplicate <= 1 and delay_ms >= 0 and jitter_ms >= 0):
            raise ValueError("loss and duplicate in [0, 1], delay_ms and jitter_ms >= 0")
        before = [r for r in self._rules if r.kind == "impair" and node in r.owners]
        self._rules = [r for r in self._rules if r not in before]
        self._stop_delayer(node)
        owners = frozenset((node,))
        tag = ["-m", "comment", "--comment", f"ssc:impair:{node}"]
        rules = []
        others = [o for o in self.nodes if o != node]
        for match in self._traffic():
            for o in others:
                if loss > 0:
                    rules.append(_Rule(o, "filter", "SSC-IN", (
                        "-s", self.address(node), *match, "-m", "statistic", "--mode", "random",
                        "--probability", f"{loss:.6f}", *tag, "-j", "DROP"), owners, "impair"))
                if duplicate > 0:
                    # Before the NFQUEUE rule: a packet accepted by the delayer resumes at the
                    # next hook, so a TEE placed after it would never see the packet. The copy
                    # re-enters OUTPUT/POSTROUTING (cuts apply, TEE does not recurse) and is
                    # queued to the delayer like the original.
                    rules.append(_Rule(node, "mangle", "SSC-MOUT", (
                        "-d", self.address(o), *match, "-m", "statistic", "--mode", "random",
                        "--probability", f"{duplicate:.6f}", *tag,
                        "-j", "TEE", "--gateway", self.address(o)), owners, "impair", 0))
                if delay_ms > 0 or jitter_ms > 0:
                    rules.append(_Rule(node, "mangle", "SSC-MOUT", (
                        "-d", self.address(o), *match, *tag,
                        "-j", "NFQUEUE", "--queue-num", str(QUEUE_NUM), "--queue-bypass"),
                        owners, "impair", 1))
        if delay_ms > 0 or jitter_ms > 0:
            if seed is None:
                seed = zlib.crc32(f"{self.k}:{node}".encode())
            try:
                self._start_delayer(node, delay_ms, jitter_ms, seed)
            except BaseException:
                self._sync({r.node for r in before} | {node})   # at least the old one is gone
                raise
        self._rules += rules
        self._sync({r.node for r in before + rules} | {node})

    def heal(self, node: str | None = None) -> None:
        """Removes all cuts and impairments (node=None), or those involving `node`: cuts with
        it on either side and its own impairment (not other nodes' impairments towards it)."""
        if not self._created:            # nothing to heal before setup() or after close()
            for n in list(self._delayers):
                self._stop_delayer(n)
            self._rules.clear()
            return
        if node is None:
            for n in list(self._delayers):
                self._stop_delayer(n)
            self._rules.clear()
            self._sync(set(self.nodes))
            return
        self._check(node)
        gone = [r for r in self._rules if node in r.owners]
        self._rules = [r for r in self._rules if node not in r.owners]
        # Rules first (no new packets to the queue), then the delayer, which releases the
        # packets it holds on SIGTERM.
        self._sync({r.node for r in gone} | {node})
        self._stop_delayer(node)

    def rules(self, node: str) -> str:
        """iptables-save of the node's namespace (for failure messages)."""
        return _run(["ip", "netns", "exec", self.netns(node), "iptables-save"], check=False).stdout

    # ------------------------------------------------------------ delayer processes

    def _start_delayer(self, node: str, delay_ms: float, jitter_ms: float, seed: int) -> None:
        argv = self.wrap(node, [sys.executable, os.path.abspath(__file__), "delayer",
                                "--queue", str(QUEUE_NUM), "--delay-ms", str(delay_ms),
                                "--jitter-ms", str(jitter_ms), "--seed", str(seed),
                                "--parent-pid", str(os.getpid())])
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        self._delayers[node] = proc
        # Wait for "ready" (queue bound): from then on the NFQUEUE rule delays packets.
        ready, _, _ = select.select([proc.stdout], [], [], 10.0)
        line = proc.stdout.readline().decode(errors="replace").strip() if ready else ""
        if line != "ready":
            self._stop_delayer(node)
            raise LabError(f"delayer in {self.netns(node)} did not start (said {line!r}, "
                           f"exit {proc.returncode}); see its stderr")

    def _stop_delayer(self, node: str) -> None:
        proc = self._delayers.pop(node, None)
        if proc is None:
            return
        _stop_pid(proc)
        if proc.stdout:
            proc.stdout.close()


# ================================================================ the NFQUEUE delayer

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
SO_RCVBUFFORCE = 33
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NF_ACCEPT = 1
NLA_TYPE_MASK = 0x3FFF


def _nla(atype: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("=HH", length, atype) + data + b"\0" * (-length % 4)


def _nfq_msg(msg_type: int, flags: int, seq: int, queue: int, attrs: bytes) -> bytes:
    # nlmsghdr (host order) + nfgenmsg (family AF_UNSPEC, version 0, res_id = queue, big endian)
    payload = struct.pack("=BB", socket.AF_UNSPEC, 0) + struct.pack("!H", queue) + attrs
    return struct.pack("=IHHII", 16 + len(payload), (NFNL_SUBSYS_QUEUE << 8) | msg_type,
                       flags, seq, 0) + payload


def _verdict(queue: int, packet_id: int) -> bytes:
    return _nfq_msg(NFQNL_MSG_VERDICT, NLM_F_REQUEST, 0, queue,
                    _nla(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id)))


def _parse(data: bytes):
    """Yields ('packet', id) and ('error', seq, errno) from one netlink datagram."""
    off = 0
    while off + 16 <= len(data):
        length, mtype, _flags, seq, _pid = struct.unpack_from("=IHHII", data, off)
        if length < 16:
            break
        if mtype == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", data, off + 16)
            yield ("error", seq, -err)
        elif mtype == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            a, end = off + 20, off + length          # attributes follow the 4-byte nfgenmsg
            while a + 4 <= end:
                alen, atype = struct.unpack_from("=HH", data, a)
                if alen < 4:
                    break
                if atype & NLA_TYPE_MASK == NFQA_PACKET_HDR:
                    (pid,) = struct.unpack_from("!I", data, a + 4)
                    yield ("packet", pid)
                    break
                a += (alen + 3) & ~3
        off += (length + 3) & ~3


def run_delayer(queue: int, delay_ms: float, jitter_ms: float, seed: int,
                parent_pid: int | None = None) -> int:
    """Binds NFQUEUE `queue` of the current namespace and accepts each packet after a delay
    drawn uniformly from [delay-jitter, delay+jitter] ms. Prints "ready" once bound. On SIGTERM
    (or when the parent is gone) accepts everything still held and exits."""
    rng = random.Random(seed)
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    try:  # drop overrun notifications rather than getting ENOBUFS (handled below anyway)
        sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
    except OSError:
        pass
    sock.bind((0, 0))

    sock.settimeout(5.0)

    def configure(seq: int, attrs: bytes) -> None:
        sock.send(_nfq_msg(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, seq, queue, attrs))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for item in _parse(sock.recv(65536)):
                if item[0] == "error" and item[1] == seq:
                    if item[2]:
                        raise OSError(item[2], f"nfqueue config: {os.strerror(item[2])}")
                    return
        raise TimeoutError("no ack from nfnetlink_queue")

    configure(1, _nla(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0)))
    # META: the packet's metadata only, we never look at the payload; a long queue so bursts
    # are held rather than dropped.
    configure(2, _nla(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))
              + _nla(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 8192)))
    sock.setblocking(False)

    # SIGTERM wakes select() through a wakeup fd, so the handler never interrupts a send.
    stop = []
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno())
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))

    print("ready", flush=True)
    heap: list[tuple[float, int, int]] = []   # (release time, arrival order, packet id)
    order = itertools.count()
    lo, hi = max(0.0, delay_ms - jitter_ms) / 1000, max(0.0, delay_ms + jitter_ms) / 1000
    counts = {"packets": 0, "enobufs": 0, "verdict_errors": 0}

    def release(upto: float) -> None:
        msgs = []
        while heap and heap[0][0] <= upto:
            msgs.append(_verdict(queue, heapq.heappop(heap)[2]))
        for i in range(0, len(msgs), 256):     # several verdicts per datagram
            try:
                sock.send(b"".join(msgs[i:i + 256]))
            except OSError as exc:
                counts["verdict_errors"] += 1
                print(f"delayer: verdict send: {exc}", file=sys.stderr)

    while not stop:
        if parent_pid is not None and os.getppid() != parent_pid:
            break                              # the lab process died: do not linger
        now = time.monotonic()
        release(now)
        timeout = min(0.5, heap[0][0] - now) if heap else 0.5
        try:
            readable, _, _ = select.select([sock, wake_r], [], [], max(0.0, timeout))
        except InterruptedError:
            continue
        if wake_r in readable:
            try:
                wake_r.recv(64)
            except OSError:
                pass
        if sock not in readable:
            continue
        while True:                            # drain everything queued so far
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # overrun: some packets lost to us, go on
                    counts["enobufs"] += 1
                    continue
                raise
            arrival = time.monotonic()
            for item in _parse(data):
                if item[0] == "packet":
                    counts["packets"] += 1
                    heapq.heappush(heap, (arrival + rng.uniform(lo, hi), next(order), item[1]))
                elif item[2]:
                    counts["verdict_errors"] += 1
    release(float("inf"))                      # hand back what we hold: heal loses nothing
    sock.close()
    print(f"delayer queue {queue}: {counts}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("delayer", help="NFQUEUE delayer (run inside a node's namespace)")
    d.add_argument("--queue", type=int, default=QUEUE_NUM)
    d.add_argument("--delay-ms", type=float, required=True)
    d.add_argument("--jitter-ms", type=float, default=0.0)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--parent-pid", type=int, default=None)
    c = sub.add_parser("cleanup", help="remove the leftovers of lab K")
    c.add_argument("k", type=int)
    args = ap.parse_args(argv)
    if args.cmd == "delayer":
        return run_delayer(args.queue, args.delay_ms, args.jitter_ms, args.seed, args.parent_pid)
    logging.basicConfig(level=logging.INFO)
    cleanup_stale(args.k)
    return 0


if __name__ == "__main__":
    sys.exit(main())
