"""Fleet limits on Redis (issue 17's benchmark): what the Redis store costs
next to the memory store, and how well a 4-process fleet keeps one limit
with bifrost versus LiteLLM's Router with its Redis-backed `rpm`.

    bench/fleet/bench.py --mock PATH [--seconds 65] [--out DIR]

Needs redis-server and, for LiteLLM, `pip install litellm redis`
(bench/fleet/run.sh sets up bench/.venv). Every server runs on loopback
and is started here:

1. Admission, one process: N jobs submitted at once to a provider whose
   limits never bind (the in-process mock provider, so only admission
   differs): no limits, the memory store, the Redis store. Redis round
   trips per job come from INFO commandstats.
2. Throughput, 4 processes: each sends its jobs to one bifrost-mock over
   HTTP, limits that never bind, memory store (each process its own) and
   Redis store (shared).
3. Keeping a limit, 4 processes: bifrost-mock enforces 600 requests per
   any 60 s (a sliding log, like a provider) and answers 429 past it.
   Four processes send as fast as they may for `--seconds`. bifrost:
   `requests_per_minute` 590 with `burst` 10 (so no 60 s window can hold
   more than 600), in Redis; LiteLLM: a Router deployment with `rpm` 600
   and its Redis. The judge is the mock: requests it refused with 429 are
   over the limit.

Writes DIR/fleet.json (bench/report.py renders it) and prints a summary.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(HERE, "child.py")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="bifrost-bench-redis-")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(400):
            if self.cli("ping").strip() == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True)
        return r.stdout

    def script_calls(self):
        """EVAL/EVALSHA/FCALL calls so far (every bifrost store call is one)."""
        n = 0
        for line in self.cli("info", "commandstats").splitlines():
            if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
                n += int(line.split("calls=")[1].split(",")[0])
        return n

    def commands(self):
        n = 0
        for line in self.cli("info", "commandstats").splitlines():
            if line.startswith("cmdstat_"):
                n += int(line.split("calls=")[1].split(",")[0])
        return n

    def flush(self):
        self.cli("flushall")

    def stop(self):
        self.proc.kill()
        self.proc.wait()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"


class Mock:
    def __init__(self, binary, *args):
        self.proc = subprocess.Popen([binary, "--port", "0", "--workers", "2", *args], stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline().strip())
        self.url = f"http://127.0.0.1:{self.port}"

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def children(specs):
    procs = [subprocess.Popen([sys.executable, CHILD, json.dumps(s)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for s in specs]
    out = []
    for p in procs:
        o, e = p.communicate(timeout=900)
        if p.returncode != 0:
            raise RuntimeError(f"child failed: {e[-2000:]}")
        out.append(json.loads(o.strip().splitlines()[-1]))
    return out


def store(kind, redis, fleet=4):
    if kind == "memory":
        return {}
    return {"limits_store": {"kind": "redis", "url": redis.url, "fleet_size": fleet, "timeout_ms": 1000}}


NEVER_BINDS = {"requests_per_second": 1_000_000_000, "tokens_per_second": 1_000_000_000_000}


def admission(redis, jobs):
    rows = []
    for label, kind, limits in [("no limits", "memory", None), ("limits, memory store", "memory", NEVER_BINDS),
                                ("limits, Redis store", "redis", NEVER_BINDS)]:
        p = {"kind": "mock", "concurrency_and_buffer_size": {"concurrency": 32, "buffer_size": jobs + 100}}
        if limits:
            p["limits"] = limits
        cfg = {"providers": {"p": p}, **store(kind, redis)}
        redis.flush()
        before, cmds = redis.script_calls(), redis.commands()
        r = children([{"mode": "bifrost-jobs", "config": cfg, "model": "p/m", "jobs": jobs}])[0]
        calls, all_cmds = redis.script_calls() - before, redis.commands() - cmds
        total = jobs + 20  # the warm-up requests too
        rows.append({"setup": label, "jobs": jobs, "jobs_per_s": jobs / r["seconds"], "us_per_job": r["seconds"] / jobs * 1e6,
                     "script_calls_per_job": calls / total if kind == "redis" else 0.0,
                     "redis_commands_per_job": all_cmds / total if kind == "redis" else 0.0,
                     "dropped_writes": r.get("dropped_writes", 0)})
    return rows


def fleet_throughput(redis, mock_bin, jobs):
    rows = []
    mock = Mock(mock_bin)
    try:
        for label, kind in [("4 processes, memory store (each its own limits)", "memory"),
                            ("4 processes, Redis store (shared limits)", "redis")]:
            p = {"kind": "openai", "keys": [{"value": "mock-key", "models": ["*"]}],
                 "network_config": {"base_url": mock.url + "/v1"}, "limits": NEVER_BINDS,
                 "concurrency_and_buffer_size": {"concurrency": 32, "buffer_size": jobs + 100}}
            cfg = {"providers": {"o": p}, **store(kind, redis)}
            redis.flush()
            t0 = time.perf_counter()
            out = children([{"mode": "bifrost-jobs", "config": cfg, "model": "o/gpt-4o-mini", "jobs": jobs}] * 4)
            wall = time.perf_counter() - t0
            busiest = max(o["seconds"] for o in out)
            rows.append({"setup": label, "jobs": 4 * jobs, "jobs_per_s": 4 * jobs / busiest, "wall_s": wall})
    finally:
        mock.stop()
    return rows


def over_limit(redis, mock_bin, seconds, loops, litellm):
    rows = []
    limit = 600
    labels = ["bifrost (Redis store)"] + (["LiteLLM Router (Redis, usage-based-routing-v2)"] if litellm else [])
    for label in labels:
        mock = Mock(mock_bin, "--requests-per-minute", str(limit))
        redis.flush()
        try:
            if label.startswith("bifrost"):
                p = {"kind": "openai", "keys": [{"value": "mock-key", "models": ["*"]}],
                     "network_config": {"base_url": mock.url + "/v1", "max_retries": 0},
                     "limits": {"requests_per_minute": limit - 10, "burst": {"requests": 10}},
                     "queue": {"wait_timeout_ms": 120000},
                     "concurrency_and_buffer_size": {"concurrency": 16, "buffer_size": 1000}}
                spec = {"mode": "bifrost-for", "config": {"providers": {"o": p}, **store("redis", redis)},
                        "model": "o/gpt-4o-mini", "loops": loops, "seconds": seconds}
            else:
                spec = {"mode": "litellm-for", "redis": f"127.0.0.1:{redis.port}", "mock": mock.url + "/v1", "rpm": limit,
                        "loops": loops, "seconds": seconds}
            out = children([spec] * 4)
            stats = mock.get("/_mock/stats")
            log = mock.get("/_mock/admissions")
            admitted = len(log)
            span_s = (log[-1]["at_ns"] - log[0]["at_ns"]) / 1e9 if len(log) > 1 else 0.0
            # The densest 60 s of the mock's log: what a provider counting
            # any 60 s would have seen (the mock refused the rest).
            densest, j = 0, 0
            for i in range(len(log)):
                while log[i]["at_ns"] - log[j]["at_ns"] >= 60_000_000_000:
                    j += 1
                densest = max(densest, i - j + 1)
            rows.append({"client": label, "seconds": seconds, "limit_per_minute": limit, "span_s": span_s,
                         "densest_60s": densest,
                         "sent": stats["requests"], "admitted": admitted, "over_limit_429": stats["requests"] - admitted,
                         "client_refusals": sum(o["refused"] for o in out), "ok": sum(o["ok"] for o in out)})
        finally:
            mock.stop()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mock", required=True, help="the bifrost-mock binary")
    ap.add_argument("--jobs", type=int, default=20000, help="jobs of the admission runs")
    ap.add_argument("--fleet-jobs", type=int, default=5000, help="jobs per process of the throughput runs")
    ap.add_argument("--seconds", type=float, default=65.0, help="length of each keep-the-limit run")
    ap.add_argument("--loops", type=int, default=8, help="concurrent request loops per process (keep-the-limit)")
    ap.add_argument("--skip-litellm", action="store_true")
    ap.add_argument("--out", default=".")
    a = ap.parse_args()
    redis = Redis()
    try:
        res = {"admission": admission(redis, a.jobs), "throughput": fleet_throughput(redis, a.mock, a.fleet_jobs)}
        res["over_limit"] = over_limit(redis, a.mock, a.seconds, a.loops, not a.skip_litellm)
        res["redis_version"] = redis.cli("info", "server").split("redis_version:")[1].split()[0]
    finally:
        redis.stop()
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "fleet.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
