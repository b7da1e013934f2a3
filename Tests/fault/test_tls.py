"""A sniffed peer link (issue 15): with mutual TLS on, nothing a node replicates or forwards
can be read off the peer network; with it off, the same capture reads the values, which
shows the sniffer sees the links. Real `session-node serve` processes on 127.0.0.1; the
capture is a raw AF_PACKET socket on `lo` (root), keeping TCP payloads to or from the
nodes' peer ports."""
import os
import secrets
import subprocess

import pytest

from cluster import Cluster, node_binary, wait_until
from sniffer import LoopbackSniffer


def write_and_capture(cluster: Cluster, count: int = 30) -> tuple[list[str], bytes, int]:
    """Creates `count` sessions through different nodes, each with a random value, reads each
    through another node, and returns the values and what the peer links carried meanwhile."""
    sniffer = LoopbackSniffer([nd.bind_port for nd in cluster.nodes])
    values = []
    try:
        for i in range(count):
            value = secrets.token_urlsafe(24)
            writer = cluster.nodes[i % len(cluster.nodes)]
            session = cluster.client.create_with_value(writer.http_target, "card", value, tries=20, pause=0.1)
            reader = cluster.nodes[(i + 1) % len(cluster.nodes)]
            got = cluster.client.get_attr(reader.http_target, session, "card")
            assert got.status == 200 and got.text == value, f"read {got.status} {got.text!r}"
            values.append(value)
    finally:
        sniffer.stop()
    return values, sniffer.tcp_payload(), sniffer.packets


def certs(tmp: str, ids: list[str]) -> str:
    directory = os.path.join(tmp, "certs")
    subprocess.run([node_binary(), "certs", "--out", directory, *ids], check=True, capture_output=True, timeout=60)
    return directory


def test_a_sniffed_peer_link_reads_nothing_with_tls_and_everything_without():
    # Control: without TLS the sniffer reads the values off the links.
    plain = Cluster(3, 2, name="plain", with_nginx=False)
    try:
        plain.start()
        values, captured, packets = write_and_capture(plain)
    finally:
        plain.close()
    readable = [v for v in values if v.encode() in captured]
    assert packets > 0 and readable, f"the sniffer saw {packets} packets and no value in clear: it sees nothing"

    secure = Cluster(3, 2, name="tls", with_nginx=False)
    try:
        directory = certs(secure.tmp, [nd.id for nd in secure.nodes])
        for nd in secure.nodes:
            nd.extra_args += ["--tls-cert", f"{directory}/{nd.id}.pem", "--tls-key", f"{directory}/{nd.id}-key.pem",
                              "--tls-ca", f"{directory}/ca.pem"]
        secure.start()
        values, captured, packets = write_and_capture(secure)
    finally:
        secure.close()
    assert packets > 0, "no peer traffic captured with TLS on"
    leaked = [v for v in values if v.encode() in captured]
    assert not leaked, f"{len(leaked)} of {len(values)} values readable on a TLS link"
    print(f"tls: {len(captured)} payload bytes captured, none of {len(values)} values readable "
          f"(without TLS: {len(readable)} of them)")
