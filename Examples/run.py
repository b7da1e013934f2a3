#!/usr/bin/env python3
"""Runs an example shop as three processes behind nginx on 127.0.0.1.

    python3 Examples/run.py hummingbird          # until Ctrl-C, printing what to try
    python3 Examples/run.py vapor --check        # walk through sign-in, cart, log out everywhere; exit

`make example-hummingbird` and `make example-vapor` build first and run the first form.
Every process is started here and stopped here by PID; logs stay under a temporary folder.
"""
import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Tests", "fault"))
from cluster import Client, HarnessError, Nginx, Node, free_port, wait_until  # noqa: E402

BINARIES = {"hummingbird": "hummingbird-shop", "vapor": "vapor-shop"}
COOKIES = {"hummingbird": "SESSION_ID", "vapor": "vapor-session"}


def binary(app: str) -> str:
    path = os.environ.get("EXAMPLE_BIN_DIR") or subprocess.run(
        ["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    return os.path.join(path, BINARIES[app])


class AffinityNginx(Nginx):
    """Round-robin for requests without a SESSION_NODE cookie; with one, the node it names
    (the owner of the session), the others as backups should it be down."""

    def __init__(self, prefix: str, nodes: list, cookie: str = "SESSION_NODE", **kw):
        super().__init__(prefix, [n.http_port for n in nodes], **kw)
        self.nodes, self.cookie = nodes, cookie

    def render(self) -> str:
        conf = super().render()
        blocks = []
        for node in self.nodes:
            servers = [f"        server 127.0.0.1:{node.http_port} max_fails=0;"] + [
                f"        server 127.0.0.1:{other.http_port} backup;" for other in self.nodes if other is not node]
            blocks.append(f"    upstream node_{node.id} {{\n" + "\n".join(servers) + "\n        keepalive 32;\n    }")
        routes = "\n".join(f"        {node.id} node_{node.id};" for node in self.nodes)
        blocks.append(f"    map $cookie_{self.cookie} $session_upstream {{\n        default session_nodes;\n{routes}\n    }}")
        conf = conf.replace("    server {", "\n".join(blocks) + "\n\n    server {", 1)
        return conf.replace("proxy_pass http://session_nodes;", "proxy_pass http://$session_upstream;")


class Shop:
    """Nodes of one app (an example shop, or session-node) and nginx round-robin in front of
    them; a context manager that stops every process by PID."""

    def __init__(self, app: str, workdir: str, nodes: int = 3, extra_args: list[str] | None = None,
                 binary_path: str | None = None, affinity: bool = False):
        self.app, self.workdir, self.binary = app, workdir, binary_path or binary(app)
        key_file = os.path.join(workdir, "cluster.key")
        # session-node refuses a key file others can read: create it private to its owner.
        with open(os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(secrets.token_hex(32))
        peers = [free_port(udp_too=True) for _ in range(nodes)]
        seeds = [f"127.0.0.1:{p}" for p in peers]
        self.nodes = [Node(id=f"{app[0]}{i + 1}", http_port=free_port(), bind_port=peers[i], seeds=seeds,
                           replicas=min(2, nodes), key_file=key_file, logdir=workdir, extra_args=list(extra_args or []))
                      for i in range(nodes)]
        prefix = os.path.join(workdir, "nginx")
        self.nginx = (AffinityNginx(prefix, self.nodes, read_timeout="10s") if affinity  # the shops' deadline budget
                      else Nginx(prefix, [n.http_port for n in self.nodes], read_timeout="10s"))

    def start(self):
        for node in self.nodes:
            node.start(self.binary)
        client = Client()
        for node in self.nodes:
            wait_until(lambda: client.request(node.http_port, "GET", "/health").status == 200, 60,
                       what=f"{node.id} healthy")
        self.nginx.start()

    def stop(self):
        self.nginx.stop()
        for node in self.nodes:
            node.terminate()

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()


def walk_through(shop: Shop) -> None:
    """Sign in twice as ada, fill a cart through round-robin nginx, log out everywhere."""
    client, port, name = Client(), shop.nginx.port, COOKIES[shop.app]

    def call(method, path, cookie=None, expect=200):
        headers = {"Cookie": f"{name}={cookie}"} if cookie else {}
        response = client.request(port, method, path, headers=headers)
        for _ in range(50):  # a cluster still settling answers 503 with Retry-After: honour it
            if response.status != 503:
                break
            time.sleep(0.2)
            response = client.request(port, method, path, headers=headers)
        if response.status != expect:
            raise HarnessError(f"{method} {path}: {response.status} {response.text}")
        value = response.headers.get("set-cookie", "")
        if value.startswith(f"{name}="):
            cleared = "max-age=0" in value.lower() or "1970" in value
            cookie = None if cleared else value.split(";", 1)[0].split("=", 1)[1]
        return cookie, response.text

    phone, said = call("POST", "/login?user=ada")
    print(f"  POST /login?user=ada -> {said.strip()}")
    laptop, _ = call("POST", "/login?user=ada")
    for item in ["apple", "pear", "plum"]:
        phone, cart = call("POST", f"/cart/{item}", phone)
    print(f"  cart through three nodes, round-robin -> {cart.strip()}")
    if cart.strip() != "apple,pear,plum":
        raise HarnessError(f"the cart lost an item: {cart!r}")
    _, sessions = call("GET", "/sessions", laptop)
    print(f"  GET /sessions -> {sessions.strip()}")
    if "2 sessions" not in sessions:
        raise HarnessError(f"expected ada's 2 sessions: {sessions!r}")
    call("POST", "/logout-everywhere", phone, expect=204)
    _, after = call("GET", "/sessions", laptop, expect=401)
    print("  after log out everywhere, the laptop: GET /sessions -> 401 (signed out)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("app", choices=sorted(BINARIES))
    parser.add_argument("--check", action="store_true", help="walk through the shop once and exit")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix=f"example-{args.app}-") as workdir:
        shop = Shop(args.app, workdir)
        try:
            shop.start()
            print(f"{args.app} shop: 3 nodes ({', '.join(str(n.http_port) for n in shop.nodes)}) behind nginx on "
                  f"http://127.0.0.1:{shop.nginx.port}")
            walk_through(shop)
            if args.check:
                return 0
            jar = os.path.join(workdir, "cookies")
            print(f"\nTry it (Ctrl-C stops everything):\n"
                  f"  curl -c {jar} -b {jar} -X POST 'http://127.0.0.1:{shop.nginx.port}/login?user=ada'\n"
                  f"  curl -c {jar} -b {jar} -X POST http://127.0.0.1:{shop.nginx.port}/cart/apple\n"
                  f"  curl -c {jar} -b {jar} http://127.0.0.1:{shop.nginx.port}/sessions\n"
                  f"  curl -c {jar} -b {jar} -X POST http://127.0.0.1:{shop.nginx.port}/logout-everywhere")
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0
        except HarnessError as error:
            print(f"example failed: {error}", file=sys.stderr)
            for node in shop.nodes:
                print(node.tails(), file=sys.stderr)
            return 1
        finally:
            shop.stop()


if __name__ == "__main__":
    sys.exit(main())
