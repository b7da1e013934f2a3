#!/usr/bin/env python3
"""Redis peer side of the swift-session-cluster benchmark.

Measures what a user would get from Redis (master + replicas + Sentinel) for the
figures the project compares itself against, and prints one JSON document to
stdout (also written to --out PATH). Python 3.11, standard library only.

    python3 Benchmarks/peer/redis_peer.py --quick --out results/redis-quick.json
    python3 Benchmarks/peer/redis_peer.py        --out results/redis-full.json

Every process listens on 127.0.0.1 on a free port picked by binding port 0, runs
with --save '' --appendonly no in a temp dir, and is stopped by its PID (also when
this script is interrupted, and via PR_SET_PDEATHSIG if it is killed). The system
redis service is never used.

Output schema (all numbers are measured unless noted; latencies in microseconds):

{
  "tool": "redis_peer", "schema": 1, "mode": "quick" | "full",
  "started_at": ISO-8601 UTC, "duration_s": float,
  "loadavg_start": [1, 5, 15 min], "loadavg_end": [...],   # other load skews figures
  "machine": {"nproc": int, "cpu_model": str, "mem_total_mb": int},
  "redis": {"version": "7.0.15", "server": "<redis-server --version>",
            "benchmark": "<redis-benchmark --version>"},
  "read": {"command": "HGETALL <key>", "session_json_bytes": int, "fields": int,
           "clients": 50, "requests": int, "p50_us": f, "p99_us": f, "avg_us": f,
           "ops": f},
  "update": {"command": "HSET <key> flash <100 B>", "clients": 50, "replicas": 1,
             "keyspace": int, "value_bytes": 100,
             "1k": {"session_json_bytes": int, "requests": int, "ops": f,
                    "p50_us": f, "p99_us": f, "requests_p16": int, "ops_p16": f,
                    "p50_us_p16": f, "p99_us_p16": f},
             "4k": {... same ...}},
  "repl_bytes": {"updates": 10000, "value_bytes": 100, "key_bytes": int,
                 "resp_bytes_per_command": int, "offset_delta": int,
                 "bytes_per_update": f,          # one replication stream
                 "stream_total_by_n": {"3": f, "5": f, "7": f},  # N-1 replicas
                 "broadcast_baseline": {
                    "source": "fixtures" | "samples", "primary": name,
                    "formula": "json_bytes * (N-1)",
                    "sessions": {name: {"json_bytes": int,
                                        "by_n": {"3": int, "5": int, "7": int}}}}},
  "failover": {"runs": [{"outage_s": f|null, "sentinel_switch_s": f|null,
                         "acked_writes": int, "acked_old_master": int,
                         "acked_new_master": int, "lost_writes": int|null,
                         "old_master": "host:port", "new_master": "host:port",
                         "error": str|null}],
               "median_outage_s": f|null, "median_lost_writes": f|null,
               "lost_writes_total": int, "config": {...}},
  "memory": {"runs": [{"sessions": int, "used_memory_growth": int,
                       "bytes_per_session": f, "encoding": str,
                       "load_s": f}],
             "payload_json_bytes": int, "payload_kv_bytes": int, "key_bytes": int,
             "bytes_per_session": f,   # from the largest run
             "ratio_to_payload": f},
  "state_transfer": {"sessions": int, "seconds": f, "method": str}
}
A figure that failed carries {"error": "..."} instead of (or besides) its numbers.
"""
from __future__ import annotations

import argparse
import base64
import csv
import ctypes
import datetime as dt
import glob
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SAMPLES = HERE / "samples"
HOST = "127.0.0.1"

# The single attribute every update writes: a 100-byte flash message.
UPDATE_FIELD = "flash"
UPDATE_VALUE = '{"level":"info","text":"Added to your cart: Merino wool crew socks, charcoal, size M (qty 2)","n":1}'
assert len(UPDATE_VALUE.encode()) == 100

QUICK = dict(read_n=100_000, upd_n=100_000, upd_p16_n=300_000, keyspace=10_000,
             repl_k=10_000, failover_runs=1, mem_sizes=[100_000])
FULL = dict(read_n=500_000, upd_n=400_000, upd_p16_n=2_000_000, keyspace=10_000,
            repl_k=10_000, failover_runs=5, mem_sizes=[100_000, 1_000_000])


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------
# installation (fresh CI machine)

def ensure_redis() -> None:
    missing = [b for b in ("redis-server", "redis-cli", "redis-benchmark") if not shutil.which(b)]
    if not missing:
        return
    log(f"[setup] missing {missing}: installing redis-server redis-sentinel with apt-get")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "update"], check=True, timeout=600, env=env,
                   stdout=sys.stderr)
    subprocess.run(sudo + ["apt-get", "install", "-y", "redis-server", "redis-sentinel"],
                   check=True, timeout=900, env=env, stdout=sys.stderr)
    still = [b for b in ("redis-server", "redis-cli", "redis-benchmark") if not shutil.which(b)]
    if still:
        raise SystemExit(f"still missing after apt-get: {still}")


# ----------------------------------------------------------------------------
# processes: every one is registered and stopped by PID

_PROCS: list[subprocess.Popen] = []
_LIBC = None
try:
    _LIBC = ctypes.CDLL(None, use_errno=True)
except OSError:
    pass


def _child_setup() -> None:
    # Die with the parent even if the parent is SIGKILLed (PR_SET_PDEATHSIG = 1).
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGKILL, 0, 0, 0)


def stop_proc(p: subprocess.Popen, sig=signal.SIGTERM, wait_s: float = 5.0) -> None:
    if p.poll() is None:
        try:
            p.send_signal(sig)
            p.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log(f"[warn] pid {p.pid} did not exit after SIGKILL")
        except ProcessLookupError:
            pass
    if p in _PROCS:
        _PROCS.remove(p)


def stop_all() -> None:
    for p in list(_PROCS):
        stop_proc(p)


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)


_USED_PORTS: set[int] = set()


def free_port() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port not in _USED_PORTS:
            _USED_PORTS.add(port)
            return port
    raise RuntimeError("could not find a free port")


# ----------------------------------------------------------------------------
# minimal RESP client (no redis-py)

class RespError(Exception):
    pass


def encode(args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(a), a))
    return b"".join(out)


class Resp:
    def __init__(self, port: int, host: str = HOST, timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rf = self.sock.makefile("rb")

    def close(self) -> None:
        try:
            self.rf.close()
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, *args):
        self.sock.sendall(encode(args))
        return self.read()

    def read(self):
        line = self.rf.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed by server")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RespError(rest.decode(errors="replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.rf.read(n + 2)
            if len(data) != n + 2:
                raise ConnectionError("short bulk read")
            return data[:-2]
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ConnectionError(f"unexpected RESP type {line[:40]!r}")


def info(port: int, section: str = "") -> dict[str, str]:
    with Resp(port) as c:
        raw = c.call("INFO", section) if section else c.call("INFO")
    out = {}
    for line in raw.decode().splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v
    return out


def ping(port: int) -> bool:
    with Resp(port, timeout=0.5) as c:
        return c.call("PING") == "PONG"


def wait_until(pred, timeout: float, step: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except (OSError, RespError, ConnectionError) as e:
            last_exc = e
        time.sleep(step)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}"
                       + (f" (last error: {last_exc})" if last_exc else ""))


# ----------------------------------------------------------------------------
# servers

class Server:
    def __init__(self, name: str, port: int, proc: subprocess.Popen, d: Path):
        self.name, self.port, self.proc, self.dir = name, port, proc, d

    @property
    def addr(self) -> str:
        return f"{HOST}:{self.port}"

    def stop(self, sig=signal.SIGTERM):
        stop_proc(self.proc, sig)


def _spawn(argv: list[str], logpath: Path, cwd: Path) -> subprocess.Popen:
    logf = open(logpath, "ab")
    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                             cwd=cwd, preexec_fn=_child_setup)
    finally:
        logf.close()
    _PROCS.append(p)
    return p


def _start_on_free_port(root: Path, name: str, what: str, argv_for_port, ready_timeout: float = 10.0) -> Server:
    """Starts a redis-server or sentinel on a free port and waits for PING; retries when
    another process took the port between our pick and its bind."""
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    log = d / f"{what}.log"
    for attempt in range(5):
        port = free_port()
        p = _spawn(argv_for_port(port, d), log, d)
        srv = Server(name, port, p, d)
        try:
            wait_until(lambda: p.poll() is not None or ping(port),
                       ready_timeout, what=f"{name} to answer PING")
        except TimeoutError:
            srv.stop(signal.SIGKILL)
            raise
        if p.poll() is None:
            return srv
        stop_proc(p)
        tail = log.read_text(errors="replace")[-600:]
        if "Address already in use" in tail:
            continue
        raise RuntimeError(f"{what} {name} exited: {tail}")
    raise RuntimeError(f"could not start {name}: ports kept colliding")


def start_redis(root: Path, name: str, extra: list[str] = (), ready_timeout: float = 10.0) -> Server:
    def argv(port: int, d: Path) -> list[str]:
        return ["redis-server", "--port", str(port), "--bind", HOST, "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
                "--dir", str(d), *extra]
    return _start_on_free_port(root, name, "redis", argv, ready_timeout)


def start_sentinel(root: Path, name: str, master_port: int, quorum: int = 2) -> Server:
    def argv(port: int, d: Path) -> list[str]:
        conf = d / "sentinel.conf"
        conf.write_text(
            f"port {port}\nbind {HOST}\ndaemonize no\ndir {d}\nlogfile \"\"\n"
            f"sentinel monitor mymaster {HOST} {master_port} {quorum}\n"
            "sentinel down-after-milliseconds mymaster 1000\n"
            "sentinel failover-timeout mymaster 5000\n"
            "sentinel parallel-syncs mymaster 1\n")
        if shutil.which("redis-sentinel"):
            return ["redis-sentinel", str(conf)]
        return ["redis-server", str(conf), "--sentinel"]
    return _start_on_free_port(root, name, "sentinel", argv)


def wait_link_up(replica_port: int, timeout: float = 20.0) -> None:
    wait_until(lambda: info(replica_port, "replication").get("master_link_status") == "up",
               timeout, step=0.05, what="master_link_status:up")


def wait_replicas(master_port: int, n: int = 1, timeout_ms: int = 10_000) -> int:
    with Resp(master_port, timeout=timeout_ms / 1000 + 5) as c:
        got = c.call("WAIT", n, timeout_ms)
    if got < n:
        raise TimeoutError(f"WAIT {n}: only {got} replica(s) acknowledged")
    return got


# ----------------------------------------------------------------------------
# sessions

def load_samples() -> dict[str, dict[str, str]]:
    out = {}
    for name in ("session_1k", "session_4k"):
        with open(SAMPLES / f"{name}.json") as f:
            out[name] = json.load(f)
    return out


def json_size(obj) -> int:
    return len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())


def baseline_sessions(samples) -> tuple[str, dict[str, int]]:
    """Sizes used for the full-session broadcast baseline: Fixtures/sessions/*.json
    if the repo has any at run time, else our samples."""
    sizes = {}
    for path in sorted(glob.glob(str(REPO / "Fixtures" / "sessions" / "*.json"))):
        try:
            with open(path) as f:
                sizes[Path(path).stem] = json_size(json.load(f))
        except (OSError, ValueError) as e:
            log(f"[warn] skipping fixture {path}: {e}")
    if sizes:
        return "fixtures", sizes
    return "samples", {k: json_size(v) for k, v in samples.items()}


def broadcast_bytes(session_json_bytes: int, n: int) -> int:
    """Bytes on the wire per update when the whole session is sent to every other node."""
    return session_json_bytes * (n - 1)


def session_factory(session: dict[str, str], key_len: int):
    """Returns make(key: bytes, i: int) -> RESP bytes of HSET key <all fields>, with
    user_id and csrf_token varied per session (same lengths, so one template)."""
    vary = {"user_id", "csrf_token"}
    parts = [b"*%d\r\n$4\r\nHSET\r\n" % (2 + 2 * len(session)), b"$%d\r\n" % key_len, b"%b\r\n"]
    lens = {}
    for f, v in session.items():
        fb, vb = f.encode(), v.encode()
        parts.append((b"$%d\r\n%b\r\n" % (len(fb), fb)).replace(b"%", b"%%"))
        if f in vary:
            lens[f] = len(vb)
            parts.append(b"$%d\r\n" % len(vb) + b"%b\r\n")
        else:
            parts.append((b"$%d\r\n%b\r\n" % (len(vb), vb)).replace(b"%", b"%%"))
    tmpl = b"".join(parts)
    order = [f for f in session if f in vary]
    uid_len, csrf_len = lens.get("user_id", 10), lens.get("csrf_token", 43)

    def make(key: bytes, i: int) -> bytes:
        assert len(key) == key_len
        vals = []
        for f in order:
            if f == "user_id":
                vals.append((b"u_%0*d" % (uid_len - 2, i))[-uid_len:])
            else:
                tok = base64.urlsafe_b64encode(hashlib.sha256(b"%d" % i).digest()).rstrip(b"=")
                vals.append((tok * 2)[:csrf_len])
        return tmpl % (key, *vals)
    return make


def pipeline_send(port: int, chunks, expected_replies: int, timeout: float = 300.0) -> None:
    """Send RESP commands pipelined over one socket while a thread counts the replies
    (each reply expected to be one line, e.g. ':12\\r\\n'). Fails on any error reply."""
    sock = socket.create_connection((HOST, port), timeout=60)
    state = {"lines": 0, "err": None}

    def reader():
        try:
            while state["lines"] < expected_replies:
                data = sock.recv(1 << 20)
                if not data:
                    state["err"] = "connection closed"
                    return
                if b"-" in data and state["err"] is None:
                    i = data.index(b"-")
                    state["err"] = data[i:i + 200].decode(errors="replace")
                state["lines"] += data.count(b"\r\n")
        except OSError as e:
            state["err"] = str(e)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    deadline = time.monotonic() + timeout
    try:
        for chunk in chunks:
            sock.sendall(chunk)
            if time.monotonic() > deadline or state["err"]:
                break
        t.join(max(1.0, deadline - time.monotonic()))
    finally:
        sock.close()
    if state["err"]:
        raise RuntimeError(f"pipeline: {state['err']}")
    if state["lines"] < expected_replies:
        raise TimeoutError(f"pipeline: {state['lines']}/{expected_replies} replies")


def load_sessions(port: int, session: dict, keyfmt: bytes, count: int, batch: int = 1000) -> None:
    key_len = len(keyfmt % 0)
    make = session_factory(session, key_len)

    def chunks():
        for start in range(0, count, batch):
            yield b"".join(make(keyfmt % i, i) for i in range(start, min(count, start + batch)))
    pipeline_send(port, chunks(), count)


# ----------------------------------------------------------------------------
# redis-benchmark

def _num(s: str) -> float | None:
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def parse_benchmark_csv(text: str) -> dict:
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    for i, r in enumerate(rows):
        if "rps" in r and i + 1 < len(rows):
            d = dict(zip(r, rows[i + 1]))
            out = {"ops": _num(d.get("rps"))}
            for src, dst in (("p50_latency_ms", "p50_us"), ("p99_latency_ms", "p99_us"),
                             ("avg_latency_ms", "avg_us")):
                v = _num(d.get(src))
                if v is not None:
                    out[dst] = round(v * 1000, 1)
            return out
    return {}


def parse_benchmark_text(text: str) -> dict:
    """Human output: Redis 7 'latency summary' block, else the cumulative
    distribution lines of Redis 6, else just requests per second."""
    text = text.replace("\r", "\n")
    out = {}
    m = re.search(r"throughput summary:\s*([\d.]+) requests per second", text) or \
        re.search(r"([\d.]+) requests per second", text)
    if m:
        out["ops"] = float(m.group(1))
    m = re.search(r"latency summary \(msec\):\s*\n\s*(.+)\n\s*(.+)\n", text)
    if m:
        d = dict(zip(m.group(1).split(), m.group(2).split()))
        for src, dst in (("p50", "p50_us"), ("p99", "p99_us"), ("avg", "avg_us")):
            if _num(d.get(src)) is not None:
                out[dst] = round(float(d[src]) * 1000, 1)
        return out
    dist = [(float(a), float(b)) for a, b in
            re.findall(r"([\d.]+)% <= ([\d.]+) milli", text)]
    for q, key in ((50, "p50_us"), (99, "p99_us")):
        for pct, ms in dist:
            if pct >= q:
                out[key] = round(ms * 1000, 1)
                break
    return out


def redis_benchmark(port: int, command: list[str], n: int, clients: int = 50,
                    pipeline: int = 1, keyspace: int | None = None, timeout: float = 180) -> dict:
    base = ["redis-benchmark", "-h", HOST, "-p", str(port), "-c", str(clients), "-n", str(n)]
    if pipeline > 1:
        base += ["-P", str(pipeline)]
    if keyspace:
        base += ["-r", str(keyspace)]
    r = subprocess.run(base + ["--csv"] + command, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {r.stderr[-400:]}")
    res = parse_benchmark_csv(r.stdout)
    if "p50_us" not in res or "p99_us" not in res or not res.get("ops"):
        r = subprocess.run(base + ["--precision", "3"] + command, capture_output=True,
                           text=True, timeout=timeout)
        res = {**parse_benchmark_text(r.stdout + r.stderr), **{k: v for k, v in res.items() if v}}
    if not res.get("ops"):
        raise RuntimeError(f"could not parse redis-benchmark output: {r.stdout[-400:]}")
    res["requests"] = n
    return res


# ----------------------------------------------------------------------------
# figures

def fig_read_update_repl(root: Path, samples, cfg) -> dict:
    out = {}
    master = start_redis(root, "pair-master")
    replica = start_redis(root, "pair-replica", ["--replicaof", HOST, str(master.port)])
    try:
        wait_link_up(replica.port)
        s1k, s4k = samples["session_1k"], samples["session_4k"]

        # (a) read
        try:
            key = "sess:read"
            with Resp(master.port) as c:
                c.call("HSET", key, *[x for kv in s1k.items() for x in kv])
                nf = c.call("HLEN", key)
            r = redis_benchmark(master.port, ["HGETALL", key], cfg["read_n"])
            out["read"] = {"command": f"HGETALL {key}", "session_json_bytes": json_size(s1k),
                           "fields": nf, "clients": 50, **r}
            log(f"[read] HGETALL 1 KB hash: p50 {r.get('p50_us')} us, p99 {r.get('p99_us')} us, "
                f"{r['ops']:.0f} ops/s")
        except Exception as e:  # keep going: one broken figure must not hide the others
            out["read"] = {"error": repr(e)}
            log(f"[read] FAILED: {e!r}")

        # (b) replicated update throughput
        upd = {"command": f"HSET <key> {UPDATE_FIELD} <{len(UPDATE_VALUE)} B>", "clients": 50,
               "replicas": 1, "keyspace": cfg["keyspace"], "value_bytes": len(UPDATE_VALUE)}
        try:
            for label, sess, prefix in (("1k", s1k, b"s1k:"), ("4k", s4k, b"s4k:")):
                load_sessions(master.port, sess, prefix + b"%012d", cfg["keyspace"])
                wait_replicas(master.port)
                with Resp(master.port) as c:
                    dbsize0 = c.call("DBSIZE")
                cmd = ["HSET", prefix.decode() + "__rand_int__", UPDATE_FIELD, UPDATE_VALUE]
                r1 = redis_benchmark(master.port, cmd, cfg["upd_n"], keyspace=cfg["keyspace"])
                wait_replicas(master.port, timeout_ms=30_000)
                r16 = redis_benchmark(master.port, cmd, cfg["upd_p16_n"], pipeline=16,
                                      keyspace=cfg["keyspace"])
                wait_replicas(master.port, timeout_ms=30_000)
                with Resp(master.port) as c:
                    if c.call("DBSIZE") != dbsize0:
                        raise RuntimeError("HSET benchmark created keys: __rand_int__ keys "
                                           "do not match the preloaded sessions")
                upd[label] = {"session_json_bytes": json_size(sess),
                              "requests": r1["requests"], "ops": r1["ops"],
                              "p50_us": r1.get("p50_us"), "p99_us": r1.get("p99_us"),
                              "requests_p16": r16["requests"], "ops_p16": r16["ops"],
                              "p50_us_p16": r16.get("p50_us"), "p99_us_p16": r16.get("p99_us")}
                log(f"[update] HSET 100 B field, {label} session, 1 replica: "
                    f"{r1['ops']:.0f} ops/s (no pipelining), {r16['ops']:.0f} ops/s (-P 16)")
        except Exception as e:
            upd["error"] = repr(e)
            log(f"[update] FAILED: {e!r}")
        out["update"] = upd

        # (c) bytes per update on the replication stream
        try:
            k = cfg["repl_k"]
            nkeys = 1000
            keyfmt = b"sess:%032x"
            load_sessions(master.port, s1k, keyfmt, nkeys)
            wait_replicas(master.port)
            keys = [keyfmt % (i % nkeys) for i in range(k)]
            cmds = [encode(["HSET", key, UPDATE_FIELD, UPDATE_VALUE]) for key in keys]
            with Resp(master.port) as c:
                c.call("PING")
            off0 = int(info(master.port, "replication")["master_repl_offset"])
            pipeline_send(master.port, (b"".join(cmds[i:i + 1000]) for i in range(0, k, 1000)), k)
            off1 = int(info(master.port, "replication")["master_repl_offset"])
            wait_replicas(master.port)
            delta = off1 - off0
            bpu = delta / k
            source, sizes = baseline_sessions(samples)
            primary = min(sizes, key=lambda n: abs(sizes[n] - 1024))
            out["repl_bytes"] = {
                "updates": k, "value_bytes": len(UPDATE_VALUE), "key_bytes": len(keys[0]),
                "resp_bytes_per_command": len(cmds[0]), "offset_delta": delta,
                "bytes_per_update": round(bpu, 2),
                "stream_total_by_n": {str(n): round(bpu * (n - 1), 2) for n in (3, 5, 7)},
                "broadcast_baseline": {
                    "source": source, "primary": primary, "formula": "json_bytes * (N-1)",
                    "sessions": {name: {"json_bytes": size,
                                        "by_n": {str(n): broadcast_bytes(size, n) for n in (3, 5, 7)}}
                                 for name, size in sizes.items()}}}
            b = out["repl_bytes"]["broadcast_baseline"]["sessions"][primary]["by_n"]
            log(f"[repl_bytes] {k} HSETs of a {len(UPDATE_VALUE)} B field: {bpu:.1f} B/update on the "
                f"replication stream (RESP command {len(cmds[0])} B); full-session broadcast "
                f"({primary}, {sizes[primary]} B, {source}) N=3/5/7: {b['3']}/{b['5']}/{b['7']} B")
        except Exception as e:
            out["repl_bytes"] = {"error": repr(e)}
            log(f"[repl_bytes] FAILED: {e!r}")
    finally:
        replica.stop()
        master.stop()
    return out


class Writer(threading.Thread):
    """Writes RPUSH <key> <seq> continuously to whatever master Sentinel reports;
    records each acknowledged seq with its time and the master that acked it."""

    def __init__(self, sentinel_ports: list[int], key: str, max_s: float):
        super().__init__(daemon=True)
        self.sentinels, self.key = sentinel_ports, key
        self.deadline = time.monotonic() + max_s
        self.stop_evt = threading.Event()
        self.acks: list[tuple[int, float, str]] = []
        self.addr_seen: list[tuple[float, str]] = []
        self.errors = 0

    def master_addr(self) -> str | None:
        for p in self.sentinels:
            try:
                with Resp(p, timeout=0.3) as c:
                    r = c.call("SENTINEL", "get-master-addr-by-name", "mymaster")
                if r:
                    a = f"{r[0].decode()}:{int(r[1])}"
                    if not self.addr_seen or self.addr_seen[-1][1] != a:
                        self.addr_seen.append((time.monotonic(), a))
                    return a
            except (OSError, RespError, ConnectionError, ValueError):
                continue
        return None

    def run(self):
        conn, addr, seq = None, None, 0
        while not self.stop_evt.is_set() and time.monotonic() < self.deadline:
            if conn is None:
                addr = self.master_addr()
                if addr is None:
                    time.sleep(0.005)
                    continue
                try:
                    host, port = addr.rsplit(":", 1)
                    conn = Resp(int(port), host=host, timeout=0.5)
                except OSError:
                    conn = None
                    self.errors += 1
                    time.sleep(0.005)
                    continue
            seq += 1
            try:
                conn.call("RPUSH", self.key, seq)
                self.acks.append((seq, time.monotonic(), addr))
            except (OSError, RespError, ConnectionError):
                self.errors += 1
                conn.close()
                conn = None
                time.sleep(0.005)
        if conn is not None:
            conn.close()


def sentinel_state(port: int) -> dict[str, str]:
    with Resp(port, timeout=1) as c:
        r = c.call("SENTINEL", "master", "mymaster")
    it = iter(x.decode() for x in r)
    return dict(zip(it, it))


def failover_run(root: Path, idx: int, wait_s: float = 20.0) -> dict:
    run_root = root / f"failover{idx}"
    run_root.mkdir()
    servers: list[Server] = []
    res = {"outage_s": None, "sentinel_switch_s": None, "acked_writes": 0,
           "acked_old_master": 0, "acked_new_master": 0, "lost_writes": None,
           "old_master": None, "new_master": None, "error": None}
    writer = None
    try:
        master = start_redis(run_root, "master")
        servers.append(master)
        for i in (1, 2):
            servers.append(start_redis(run_root, f"replica{i}", ["--replicaof", HOST, str(master.port)]))
        for r in servers[1:]:
            wait_link_up(r.port)
        sentinels = [start_sentinel(run_root, f"sentinel{i}", master.port) for i in (1, 2, 3)]
        servers += sentinels

        def ready():
            for s in sentinels:
                st = sentinel_state(s.port)
                if st.get("num-slaves") != "2" or st.get("num-other-sentinels") != "2" \
                        or st.get("flags") != "master":
                    return False
            return True
        wait_until(ready, wait_s, step=0.1, what="3 sentinels to see 2 replicas and each other")

        old = master.addr
        res["old_master"] = old
        writer = Writer([s.port for s in sentinels], "failover:log", max_s=wait_s + 15)
        writer.start()
        wait_until(lambda: len(writer.acks) > 100, 5.0, what="writer to get acks")
        time.sleep(0.5)
        t_kill = time.monotonic()
        os.kill(master.proc.pid, signal.SIGKILL)
        master.proc.wait(timeout=5)

        def new_ack():
            for seq, t, a in reversed(writer.acks[-1000:]):
                if a != old and t > t_kill:
                    return True
            return False
        try:
            wait_until(new_ack, wait_s, step=0.01, what="first acknowledged write on a new master")
        except TimeoutError as e:
            res["error"] = str(e)
        time.sleep(0.3)
        writer.stop_evt.set()
        writer.join(5)

        acks = list(writer.acks)
        res["acked_writes"] = len(acks)
        res["acked_old_master"] = sum(1 for _, _, a in acks if a == old)
        new_acks = [(s, t, a) for s, t, a in acks if a != old and t > t_kill]
        res["acked_new_master"] = len(new_acks)
        switch = [t for t, a in writer.addr_seen if a != old and t > t_kill]
        if switch:
            res["sentinel_switch_s"] = round(switch[0] - t_kill, 3)
        if new_acks:
            res["outage_s"] = round(new_acks[0][1] - t_kill, 3)
            new = new_acks[0][2]
            res["new_master"] = new
            host, port = new.rsplit(":", 1)
            with Resp(int(port), host=host, timeout=10) as c:
                stored = {int(x) for x in c.call("LRANGE", "failover:log", 0, -1)}
            lost = [s for s, _, _ in acks if s not in stored]
            res["lost_writes"] = len(lost)
            if lost:
                res["lost_seqs_sample"] = lost[:20]
        res["writer_errors"] = writer.errors
    except Exception as e:
        res["error"] = repr(e)
    finally:
        if writer is not None:
            writer.stop_evt.set()
            writer.join(5)
        for s in reversed(servers):
            s.stop()
        shutil.rmtree(run_root, ignore_errors=True)
    return res


def fig_failover(root: Path, runs: int) -> dict:
    out = {"config": {"replicas": 2, "sentinels": 3, "quorum": 2, "down_after_ms": 1000,
                      "failover_timeout_ms": 5000, "parallel_syncs": 1,
                      "writer": "RPUSH failover:log <seq>, one at a time, via "
                                "SENTINEL get-master-addr-by-name"},
           "runs": []}
    for i in range(runs):
        r = failover_run(root, i)
        out["runs"].append(r)
        log(f"[failover] run {i + 1}/{runs}: outage {r['outage_s']} s (sentinel switch "
            f"{r['sentinel_switch_s']} s), acked {r['acked_writes']}, lost {r['lost_writes']}"
            + (f", error: {r['error']}" if r["error"] else ""))
    outs = [r["outage_s"] for r in out["runs"] if r["outage_s"] is not None]
    losts = [r["lost_writes"] for r in out["runs"] if r["lost_writes"] is not None]
    out["median_outage_s"] = round(statistics.median(outs), 3) if outs else None
    out["median_lost_writes"] = statistics.median(losts) if losts else None
    out["lost_writes_total"] = sum(losts)
    out["completed_runs"] = len(outs)
    log(f"[failover] median outage {out['median_outage_s']} s over {len(outs)} run(s), "
        f"acknowledged writes lost: {out['lost_writes_total']} total")
    return out


def fig_memory(root: Path, samples, sizes: list[int]) -> tuple[dict, dict]:
    s1k = samples["session_1k"]
    keyfmt = b"sess:%032x"
    out = {"runs": [], "payload_json_bytes": json_size(s1k),
           "payload_kv_bytes": sum(len(k.encode()) + len(v.encode()) for k, v in s1k.items()),
           "key_bytes": len(keyfmt % 0), "key_format": "sess:<32 hex>",
           "metric": "INFO used_memory growth / sessions"}
    st = {}
    for n in sizes:
        srv = start_redis(root, f"mem{n}")
        replica = None
        try:
            base = int(info(srv.port, "memory")["used_memory"])
            t0 = time.monotonic()
            load_sessions(srv.port, s1k, keyfmt, n)
            load_s = time.monotonic() - t0
            with Resp(srv.port) as c:
                if c.call("DBSIZE") != n:
                    raise RuntimeError("DBSIZE does not match the loaded session count")
                enc = c.call("OBJECT", "ENCODING", keyfmt % 0).decode()
            used = int(info(srv.port, "memory")["used_memory"])
            bps = (used - base) / n
            out["runs"].append({"sessions": n, "used_memory_growth": used - base,
                                "bytes_per_session": round(bps, 1), "encoding": enc,
                                "load_s": round(load_s, 2)})
            log(f"[memory] {n} sessions of {out['payload_json_bytes']} B: {bps:.0f} B/session "
                f"in used_memory ({bps / out['payload_json_bytes']:.2f}x payload, hash encoding {enc})")
            if n == max(sizes):
                # state transfer: a fresh replica's full sync of the whole data set
                with Resp(srv.port) as c:
                    c.call("CONFIG", "SET", "repl-diskless-sync", "yes")
                    c.call("CONFIG", "SET", "repl-diskless-sync-delay", "0")
                # the fastest full sync Redis 7 offers a fresh replica: RDB streamed
                # from the master's fork straight into the replica's parser, no disk
                replica = start_redis(root, f"mem{n}-replica",
                                      ["--repl-diskless-load", "on-empty-db"])
                t0 = time.monotonic()
                with Resp(replica.port) as c:
                    c.call("REPLICAOF", HOST, str(srv.port))

                def synced():
                    if info(replica.port, "replication").get("master_link_status") != "up":
                        return False
                    with Resp(replica.port) as c:
                        return c.call("DBSIZE") == n
                wait_until(synced, 120, step=0.02, what="replica full sync")
                secs = time.monotonic() - t0
                st = {"sessions": n, "seconds": round(secs, 2),
                      "method": "REPLICAOF on an empty replica until master_link_status:up and "
                                "DBSIZE matches (repl-diskless-sync yes, delay 0; replica "
                                "repl-diskless-load on-empty-db)"}
                log(f"[state_transfer] full sync of {n} x 1 KB sessions to a new replica: {secs:.2f} s")
        finally:
            if replica is not None:
                replica.stop()
            srv.stop()
            shutil.rmtree(srv.dir, ignore_errors=True)
    if out["runs"]:
        big = max(out["runs"], key=lambda r: r["sessions"])
        out["bytes_per_session"] = big["bytes_per_session"]
        out["ratio_to_payload"] = round(big["bytes_per_session"] / out["payload_json_bytes"], 3)
    return out, st


# ----------------------------------------------------------------------------

def clean_stale_tempdirs() -> None:
    """Remove temp dirs left by an earlier run that was SIGKILLed (its servers died
    with it through PDEATHSIG, but its directory could not be removed)."""
    for d in glob.glob(os.path.join(tempfile.gettempdir(), "redis-peer-*")):
        try:
            pid = int(Path(d, "owner.pid").read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (OSError, ValueError):
            pass


def machine_info() -> dict:
    cpu = "unknown"
    mem_mb = None
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem_mb = int(line.split()[1]) // 1024
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": cpu, "mem_total_mb": mem_mb}


def redis_versions() -> dict:
    srv = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    bench = subprocess.run(["redis-benchmark", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    m = re.search(r"v=(\S+)", srv)
    return {"version": m.group(1) if m else srv, "server": srv, "benchmark": bench}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, 1 failover run (< 2 min)")
    ap.add_argument("--out", help="also write the JSON here")
    ap.add_argument("--only", help="comma list of: pair (read, update, repl_bytes), failover, memory")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    only = set(args.only.split(",")) if args.only else {"pair", "failover", "memory"}

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    ensure_redis()
    started = time.monotonic()
    result = {"tool": "redis_peer", "schema": 1, "mode": "quick" if args.quick else "full",
              "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine_info(), "redis": redis_versions(), "config": cfg}
    log(f"[redis] {result['redis']['server']}")
    log(f"[machine] {result['machine']}")
    result["loadavg_start"] = list(os.getloadavg())
    if result["loadavg_start"][0] > 0.5 * (os.cpu_count() or 1):
        log(f"[warn] machine busy before the run (load average {result['loadavg_start']}): "
            "figures will be lower and noisier")
    samples = load_samples()
    clean_stale_tempdirs()
    root = Path(tempfile.mkdtemp(prefix="redis-peer-"))
    (root / "owner.pid").write_text(str(os.getpid()))
    try:
        if "pair" in only:
            result.update(fig_read_update_repl(root, samples, cfg))
        if "failover" in only:
            result["failover"] = fig_failover(root, cfg["failover_runs"])
        if "memory" in only:
            try:
                result["memory"], result["state_transfer"] = fig_memory(root, samples, cfg["mem_sizes"])
            except Exception as e:
                result["memory"] = {"error": repr(e)}
                log(f"[memory] FAILED: {e!r}")
    finally:
        stop_all()
        shutil.rmtree(root, ignore_errors=True)
    result["duration_s"] = round(time.monotonic() - started, 1)
    result["loadavg_end"] = list(os.getloadavg())
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)
    log(f"[done] {result['duration_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
