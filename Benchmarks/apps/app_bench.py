#!/usr/bin/env python3
"""App-level benchmark: what an app sees through its framework, side by side in one run.

Three comparisons, each as a ratio of requests per second (wrk, 2 threads, 50 connections,
200 sessions, every request reads its session and changes one field):

  hummingbird  the example shop on ClusterSessionMiddleware, 3 nodes (R=2) behind nginx,
               vs the same shop on hummingbird-auth's SessionMiddleware + MemoryPersistDriver,
               one process behind nginx                                   target >= 0.8x
  vapor        the example shop on SessionClusterVaporDriver, 3 nodes (R=2) behind nginx,
               vs the same shop on Vapor's in-memory sessions, one process  target >= 0.8x
  node         session-node: PUT /session/attributes/visits through nginx, 3 nodes,
               vs its own no-op route (GET /health) through the same nginx  target >= 0.8x
  hummingbird-affinity  the Hummingbird comparison again, nginx routing each session to
               the node named by its SESSION_NODE cookie (its owner) instead of round-robin

Each side runs `--rounds` times, alternating, and the medians are compared (the machine is
noisy). Release binaries: `swift build -c release` first (`make bench` does).

    python3 Benchmarks/apps/app_bench.py [--seconds 10] [--rounds 3] [--only hummingbird,vapor,node]
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "Tests", "fault"))
sys.path.insert(0, os.path.join(ROOT, "Examples"))
from cluster import Client, HarnessError  # noqa: E402
import run as examples  # noqa: E402

SESSIONS = 200
WRK_SCRIPT = """
local cookies = {}
for line in io.lines("%(cookies)s") do cookies[#cookies + 1] = line end
local counter = 0
request = function()
  counter = counter + 1
  local cookie = cookies[(counter %% #cookies) + 1]
  return wrk.format("%(method)s", "%(path)s", {["Cookie"] = cookie, ["Content-Length"] = "%(length)d"}, "%(body)s")
end
"""


def ensure_wrk() -> str:
    if shutil.which("wrk"):
        return shutil.which("wrk")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    print("[setup] installing wrk with apt-get", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env, stdout=subprocess.DEVNULL)
    return shutil.which("wrk")


def release_bin(name: str) -> str:
    path = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    return os.path.join(path, name)


def wrk(port: int, path: str, method: str, cookies: list[str], seconds: int, workdir: str, body: str = "") -> float:
    cookie_file = os.path.join(workdir, "cookies.txt")
    with open(cookie_file, "w") as f:
        f.write("\n".join(cookies) + "\n")
    script = os.path.join(workdir, "bench.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT % {"cookies": cookie_file, "method": method, "path": path, "body": body,
                              "length": len(body)})
    out = subprocess.run([ensure_wrk(), "-t2", "-c50", f"-d{seconds}s", "-s", script, f"http://127.0.0.1:{port}"],
                         capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors and int(errors.group(1)) > 0:
        raise HarnessError(f"wrk saw {errors.group(1)} error responses on {method} {path}:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def cookies_from(port: int, method: str, path: str, name: str, affinity: bool = False) -> list[str]:
    """One Cookie header value per session; with `affinity`, the SESSION_NODE cookie too."""
    client, cookies = Client(), []
    for index in range(SESSIONS):
        response = client.request(port, method, path.replace("{i}", str(index)))
        for _ in range(50):  # a cluster still settling answers 503 with Retry-After: honour it
            if response.status != 503:
                break
            time.sleep(0.2)
            response = client.request(port, method, path.replace("{i}", str(index)))
        header = response.headers.get("set-cookie", "")
        wanted = [name] + (["SESSION_NODE"] if affinity else [])
        found = {n: m.group(1) for n in wanted if (m := re.search(rf"(?:^|[;,]\s*){re.escape(n)}=([^;,\s]+)", header))}
        if response.status >= 300 or len(found) != len(wanted):
            raise HarnessError(f"{method} {path}: {response.status} {response.text[:200]} {header!r}")
        cookies.append("; ".join(f"{n}={found[n]}" for n in wanted))
    return cookies


def compare(name: str, ours, peer, rounds: int) -> dict:
    """Runs `ours()` and `peer()` alternately `rounds` times; each returns requests/s."""
    ours_runs, peer_runs = [], []
    for round_ in range(rounds):
        ours_runs.append(ours())
        peer_runs.append(peer())
        print(f"  {name} round {round_ + 1}: ours {ours_runs[-1]:,.0f} req/s, baseline {peer_runs[-1]:,.0f} req/s",
              flush=True)
    ours_median, peer_median = statistics.median(ours_runs), statistics.median(peer_runs)
    return {"name": name, "ours": ours_median, "baseline": peer_median, "ratio": ours_median / peer_median,
            "ours_runs": ours_runs, "baseline_runs": peer_runs}


def shop(app: str, seconds: int, rounds: int, affinity: bool = False) -> dict:
    binary, cookie = release_bin(examples.BINARIES[app]), examples.COOKIES[app]

    def run(count: int, extra: list[str], affinity: bool = False) -> float:
        with tempfile.TemporaryDirectory(prefix=f"bench-{app}-") as workdir, \
                examples.Shop(app, workdir, count, extra + ["--log-level", "error"], binary, affinity) as p:
            cookies = cookies_from(p.nginx.port, "POST", "/login?user=u{i}", cookie, affinity)
            wrk(p.nginx.port, "/visit", "POST", cookies, 2, workdir)  # warm up
            return wrk(p.nginx.port, "/visit", "POST", cookies, seconds, workdir)

    name = f"{app}-affinity" if affinity else app
    return compare(name, lambda: run(3, [], affinity), lambda: run(1, ["--sessions", "memory"]), rounds)


def node(seconds: int, rounds: int) -> dict:
    binary = release_bin("session-node")
    with tempfile.TemporaryDirectory(prefix="bench-node-") as workdir, \
            examples.Shop("node", workdir, 3, ["--log-level", "error"], binary) as p:
        cookies = cookies_from(p.nginx.port, "POST", "/session", "SESSION_ID")
        wrk(p.nginx.port, "/session/attributes/visits", "PUT", cookies, 2, workdir, body="1")
        return compare(
            "node",
            lambda: wrk(p.nginx.port, "/session/attributes/visits", "PUT", cookies, seconds, workdir, body="1"),
            lambda: wrk(p.nginx.port, "/health", "GET", cookies, seconds, workdir), rounds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="hummingbird,vapor,node,hummingbird-affinity")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    results = []
    for which in args.only.split(","):
        print(f"[{which}]", flush=True)
        if which == "node":
            results.append(node(args.seconds, args.rounds))
        elif which == "hummingbird-affinity":
            results.append(shop("hummingbird", args.seconds, args.rounds, affinity=True))
        else:
            results.append(shop(which, args.seconds, args.rounds))
    print("\n| comparison | ours (median req/s) | baseline (median req/s) | ratio | target |")
    print("|---|---|---|---|---|")
    labels = {
        "hummingbird": "Hummingbird shop: ClusterSessionMiddleware, 3 nodes R=2 / MemoryPersistDriver, 1 process",
        "vapor": "Vapor shop: SessionClusterVaporDriver, 3 nodes R=2 / in-memory sessions, 1 process",
        "node": "session-node: attribute update / its no-op GET /health, both through nginx",
        "hummingbird-affinity": "same Hummingbird shop, nginx routing each session to its owner (SESSION_NODE cookie)",
    }
    for r in results:
        print(f"| {labels[r['name']]} | {r['ours']:,.0f} | {r['baseline']:,.0f} | {r['ratio']:.2f}x | >= 0.8x |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
