#!/usr/bin/env python3
"""Python clients side by side against bifrost-mock (issue 5's benchmark).

Not a test. Run through `bench/python/run.sh`, which sets up bench/.venv,
installs bifrost (release) and the peers from PyPI, builds bifrost-mock and
then runs this file.

What it measures, in one run: closed loop (N asyncio tasks, each sending
requests back to back), at 0 ms and 50 ms mock latency and N = 64 and 256
requests in flight, for

  bifrost   bifrost.Gateway(...).achat(...)  (openai provider -> the mock)
  aiohttp   one aiohttp.ClientSession (connector limit = N), json.dumps
            of the request, json.loads of the body
  openai    openai.AsyncOpenAI(base_url=..., api_key="mock-key") with an
            asyncio.Semaphore(N)
  litellm   litellm.Router(model_list=[...]).acompletion(...)

requests/s, p50/p99 latency, process CPU us/request (getrusage(RUSAGE_SELF)
user+sys: includes bifrost's Rust threads), main-thread CPU us/request
(time.thread_time() on the event-loop thread) and the mock server's CPU
us/request (/proc/<pid>/stat utime+stime), plus how busy the whole machine
was (/proc/stat), so a reader sees when the upstream or the machine is the
limit.

Each client lives in its own worker process (started once, so its imports,
threads and caches never touch another client's numbers); the parent hands
the workers one cell at a time, so only one client runs at any moment.
Cells are interleaved: every round visits every (latency, N) group and runs
all clients there, in an order rotated between rounds; ratios are computed
within each round and the table combines the rounds.

Open loop (issue 8's fixed-rate scenario), against a running bifrost-mock:

  bench.py --openloop --base http://127.0.0.1:PORT --latency-ms 50 \
      --rates 1000,3000 --seconds 5 --warmup 1 [--clients bifrost]

A sender thread sleeps (time.sleep, sub-millisecond; asyncio's own timers
wake on whole milliseconds) until each send time t0 + i/rate and hands
request i to the event loop (call_soon_threadsafe), which starts it at once,
whatever the completions do. Latency runs from the *scheduled* send time,
minus the mock's configured latency (--latency-ms): "added" µs; "lag" =
scheduled -> the request's task started on the loop. One JSON object per
rate and client on stdout (the fields of core/examples/bench_openloop.rs).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLIENTS = ["bifrost", "aiohttp", "openai", "litellm"]
MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "hello"}]
TICKS = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------
# worker side: one client, one event loop, cells on request
# --------------------------------------------------------------------------


def rss_kib() -> int | None:
    """This process's resident memory, KiB (VmRSS in /proc/self/status; Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_busy() -> tuple[float, float]:
    """(busy jiffies, total jiffies) over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + vals[4]  # idle + iowait
    total = sum(vals[:8])  # user..steal (guest is already in user)
    return total - idle, total


def self_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Client:
    """Builds one client for one cell; `call()` sends one request and returns
    the assistant text (so every client does the same work: a parsed reply)."""

    async def open(self, base: str, inflight: int) -> None: ...

    async def call(self) -> str: ...

    async def close(self) -> None: ...


class BifrostClient(Client):
    async def open(self, base: str, inflight: int) -> None:
        import bifrost

        self.gw = bifrost.Gateway(
            {
                "providers": {
                    "openai": {
                        "keys": [{"value": "mock-key", "models": ["*"]}],
                        "network_config": {"base_url": f"{base}/v1", "max_retries": 0},
                        "concurrency_and_buffer_size": {"concurrency": inflight, "buffer_size": inflight * 16},
                    }
                }
            }
        )
        self.req = {"model": f"openai/{MODEL}", "messages": MESSAGES}

    async def call(self) -> str:
        r = await self.gw.achat(self.req)
        return r["choices"][0]["message"]["content"]

    async def close(self) -> None:
        await self.gw.ashutdown(5.0)


class AiohttpClient(Client):
    async def open(self, base: str, inflight: int) -> None:
        import aiohttp

        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=inflight))
        self.url = f"{base}/v1/chat/completions"
        self.headers = {"Authorization": "Bearer mock-key", "Content-Type": "application/json"}

    async def call(self) -> str:
        body = json.dumps({"model": MODEL, "messages": MESSAGES})
        async with self.session.post(self.url, data=body, headers=self.headers) as resp:
            raw = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {raw[:200]!r}")
        return json.loads(raw)["choices"][0]["message"]["content"]

    async def close(self) -> None:
        await self.session.close()


class OpenAIClient(Client):
    async def open(self, base: str, inflight: int) -> None:
        import openai
        from openai._constants import DEFAULT_CONNECTION_LIMITS

        # The SDK's default pool keeps only 100 idle connections, which would
        # make it reconnect at N = 256; give it a pool as large as N (its best
        # case). The Limits class is the SDK's own HTTP library's (httpx or,
        # in openai 3.x, httpx2).
        limits = type(DEFAULT_CONNECTION_LIMITS)(
            max_connections=inflight, max_keepalive_connections=inflight, keepalive_expiry=60.0
        )
        http = openai.DefaultAsyncHttpxClient(limits=limits)
        self.client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="mock-key", max_retries=0, http_client=http)
        self.sem = asyncio.Semaphore(inflight)

    async def call(self) -> str:
        async with self.sem:
            r = await self.client.chat.completions.create(model=MODEL, messages=MESSAGES)
        return r.choices[0].message.content

    async def close(self) -> None:
        await self.client.close()


class LiteLLMClient(Client):
    async def open(self, base: str, inflight: int) -> None:
        import litellm

        litellm.telemetry = False
        litellm.suppress_debug_info = True
        litellm.set_verbose = False
        self.router = litellm.Router(
            model_list=[
                {
                    "model_name": MODEL,
                    "litellm_params": {"model": f"openai/{MODEL}", "api_base": f"{base}/v1", "api_key": "mock-key"},
                }
            ],
            num_retries=0,
        )

    async def call(self) -> str:
        r = await self.router.acompletion(model=MODEL, messages=MESSAGES)
        return r.choices[0].message.content

    async def close(self) -> None:
        pass


CLIENT_CLASSES = {"bifrost": BifrostClient, "aiohttp": AiohttpClient, "openai": OpenAIClient, "litellm": LiteLLMClient}


async def run_cell(client: Client, inflight: int, warmup: float, seconds: float, mock_pid: int, latency_ms: float = 0) -> dict:
    """Closed loop: `inflight` tasks, each calling back to back; measured over
    [t0, t1] after `warmup` seconds. Task i starts i/inflight of a mock latency
    late, so completions are spread evenly rather than coming back in one wave
    per round trip (whose position in the window would decide the count)."""
    lat: list[float] = []
    errors = 0
    first_error = None
    state = {"measuring": False, "stop": False}

    async def worker(offset: float) -> None:
        nonlocal errors, first_error
        pc = time.perf_counter
        if offset > 0:
            await asyncio.sleep(offset)
        while not state["stop"]:
            start = pc()
            try:
                text = await client.call()
                if not text:
                    raise RuntimeError("empty reply")
            except Exception as e:  # counted, shown in the table
                errors += 1
                if first_error is None:
                    first_error = f"{type(e).__name__}: {e}"[:300]
                await asyncio.sleep(0.01)
                continue
            end = pc()
            if state["measuring"]:
                lat.append(end - start)

    def snapshot() -> dict:
        busy, total = machine_busy()
        return {
            "t": time.perf_counter(),
            "proc": self_cpu_s(),
            "thread": time.thread_time(),
            "mock": proc_cpu_s(mock_pid),
            "busy": busy,
            "total": total,
        }

    tasks = [asyncio.ensure_future(worker(latency_ms / 1000 * i / inflight)) for i in range(inflight)]
    await asyncio.sleep(warmup)
    s0 = snapshot()
    done0 = len(lat)
    state["measuring"] = True
    await asyncio.sleep(seconds)
    # Requests that ended in [t0, t1] (closed loop: started any time after warm-up began).
    s1 = snapshot()
    rss = rss_kib()  # every request still in flight
    n = len(lat) - done0
    state["measuring"] = False
    state["stop"] = True
    # Requests still in flight are outside the window: cancel them rather than wait (a slow client
    # at N = 1024 would take seconds to drain).
    for t in tasks:
        t.cancel()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=60)
    lat = lat[done0 : done0 + n]
    elapsed = s1["t"] - s0["t"]
    lat.sort()

    def pct(p: float) -> float | None:
        if not lat:
            return None
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3

    per = 1e6 / n if n else float("nan")
    return {
        "requests": n,
        "errors": errors,
        "first_error": first_error,
        "seconds": elapsed,
        "rps": n / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": lat[-1] * 1e3 if lat else None,
        "mean_ms": statistics.fmean(lat) * 1e3 if lat else None,
        "proc_cpu_us": (s1["proc"] - s0["proc"]) * per,
        "rss_kib": rss,
        "thread_cpu_us": (s1["thread"] - s0["thread"]) * per,
        "mock_cpu_us": (s1["mock"] - s0["mock"]) * per,
        "proc_cpu_util": (s1["proc"] - s0["proc"]) / elapsed,  # cores
        "thread_cpu_util": (s1["thread"] - s0["thread"]) / elapsed,
        "mock_cpu_util": (s1["mock"] - s0["mock"]) / elapsed,
        "machine_busy": (s1["busy"] - s0["busy"]) / max(1, s1["total"] - s0["total"]),  # 0..1 of all cores
        # CPU used on the machine by neither this process nor the mock (cores): other load.
        "other_cores": (s1["busy"] - s0["busy"]) / TICKS / elapsed - (s1["proc"] - s0["proc"]) / elapsed
        - (s1["mock"] - s0["mock"]) / elapsed,
    }


async def serve(name: str) -> None:
    """Worker loop: one JSON command per stdin line, one JSON result per stdout line."""
    cls = CLIENT_CLASSES[name]
    out = sys.stdout
    loop = asyncio.get_running_loop()
    profile = os.environ.get("BENCH_CPROFILE")
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        cmd = json.loads(line)
        if cmd.get("op") == "versions":
            out.write(json.dumps(versions(name)) + "\n")
            out.flush()
            continue
        client = cls()
        try:
            await client.open(cmd["base"], cmd["inflight"])
            prof = None
            if profile:
                import cProfile

                prof = cProfile.Profile()
                prof.enable()
            res = await run_cell(client, cmd["inflight"], cmd["warmup"], cmd["seconds"], cmd["mock_pid"], cmd["latency_ms"])
            if prof:
                prof.disable()
                path = f"{profile}-{name}-{cmd['latency_ms']}ms-{cmd['inflight']}.prof"
                prof.dump_stats(path)
                res["cprofile"] = path
        except Exception as e:
            res = {"failed": f"{type(e).__name__}: {e}"[:500]}
        finally:
            try:
                await client.close()
            except Exception:
                pass
        out.write(json.dumps(res) + "\n")
        out.flush()


def versions(name: str) -> dict:
    from importlib import metadata

    pkgs = {"bifrost": ["bifrost"], "aiohttp": ["aiohttp"], "openai": ["openai", "httpx2", "httpx"], "litellm": ["litellm", "openai", "httpx", "aiohttp"]}
    v = {}
    for p in pkgs[name]:
        try:
            v[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            v[p] = None
    return v


async def open_loop_cell(client: Client, rate: float, latency_ms: int, seconds: float, warmup: float) -> dict:
    """Requests started at t0 + i/rate by a sender thread; see the module docs."""
    import threading

    loop = asyncio.get_running_loop()
    total = round((warmup + seconds) * rate)
    first = round(warmup * rate)
    interval = 1.0 / rate
    start = [-1.0] * total
    done = [-1.0] * total
    failed = [False] * total
    state = {"first_error": None, "cpu0": None}
    pc = time.perf_counter
    t0 = pc() + 0.05  # the sender starts first
    tasks = set()

    async def one(i: int) -> None:
        try:
            text = await client.call()
            if not text:
                raise RuntimeError("empty reply")
        except Exception as e:  # counted
            failed[i] = True
            if state["first_error"] is None:
                state["first_error"] = f"{type(e).__name__}: {e}"[:300]
        done[i] = pc() - t0

    def begin(i: int) -> None:
        if i == first:
            state["cpu0"] = self_cpu_s()
        start[i] = pc() - t0
        t = loop.create_task(one(i))
        tasks.add(t)
        t.add_done_callback(tasks.discard)

    def sender() -> None:
        for i in range(total):
            d = t0 + i * interval - pc()
            if d > 0:
                time.sleep(d)
            loop.call_soon_threadsafe(begin, i)

    th = threading.Thread(target=sender, name="open-loop-sender", daemon=True)
    th.start()
    while th.is_alive():
        await asyncio.sleep(0.05)
    deadline = pc() + 2.0 + 2 * latency_ms / 1000
    while pc() < deadline and any(d < 0 for d in done[first:]):
        await asyncio.sleep(0.002)
    cpu = self_cpu_s() - (state["cpu0"] if state["cpu0"] is not None else self_cpu_s())
    for t in list(tasks):  # stragglers past the grace period: unfinished
        t.cancel()
    win_lo = first * interval
    last_done = win_lo
    added, lag = [], []
    errors = unfinished = 0
    for i in range(first, total):
        sched = i * interval
        if done[i] < 0:
            unfinished += 1
        elif failed[i]:
            errors += 1
        else:
            last_done = max(last_done, done[i])
            added.append(max(0, int((done[i] - sched) * 1e6) - latency_ms * 1000))
            lag.append(max(0, int((start[i] - sched) * 1e6)))
    added.sort()
    lag.sort()

    def pct(xs: list[int], p: float) -> int:
        return xs[int((len(xs) - 1) * p)] if xs else 0

    # Rate achieved: measured requests completed, over the time from the window's start to the
    # last completion less the mock's latency (at least `seconds`: a client that keeps up shows
    # the target rate).
    achieved = len(added) / max(last_done - win_lo - latency_ms / 1000, seconds)
    return {
        "rate": rate, "latency_ms": latency_ms, "seconds": seconds, "warmup_s": warmup,
        "scheduled": total - first, "completed": len(added), "errors": errors, "unfinished": unfinished,
        "achieved_rps": achieved, "kept_up": unfinished == 0 and errors == 0 and achieved >= 0.95 * rate,
        "added_p50_us": pct(added, 0.5), "added_p99_us": pct(added, 0.99), "added_max_us": pct(added, 1.0),
        "lag_p50_us": pct(lag, 0.5), "lag_p99_us": pct(lag, 0.99), "lag_max_us": pct(lag, 1.0),
        "cpu_us_per_req": cpu * 1e6 / len(added) if added else None,
        "first_error": state["first_error"],
    }


OPEN_LABELS = {"bifrost": "python: bifrost achat", "aiohttp": "python: aiohttp (raw)",
               "openai": "python: openai AsyncOpenAI", "litellm": "python: LiteLLM Router.acompletion"}


async def open_loop_main(args: argparse.Namespace) -> None:
    for name in args.clients.split(","):
        for rate in [float(x) for x in args.rates.split(",")]:
            client = CLIENT_CLASSES[name]()
            # Enough workers / connections for every request the mock holds at this rate.
            await client.open(args.base.rstrip("/"), 1024)
            try:
                r = await open_loop_cell(client, rate, args.latency_ms, args.seconds, args.warmup)
            finally:
                try:
                    await client.close()
                except Exception:
                    pass
            r = {"mode": "open", "client": OPEN_LABELS[name], "lang": "Python", **r, "versions": versions(name)}
            print(json.dumps(r), flush=True)
            print(
                f"# {r['client']} {rate:.0f}/s @{args.latency_ms} ms: added p50 {r['added_p50_us']} p99 {r['added_p99_us']} "
                f"max {r['added_max_us']} µs, lag p50 {r['lag_p50_us']} µs, achieved {r['achieved_rps']:.0f}/s"
                + ("" if r["kept_up"] else " (did NOT keep up)"),
                file=sys.stderr,
                flush=True,
            )


def worker_main(name: str) -> None:
    # Worker stdout is the protocol channel: keep library chatter on stderr.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = proto
    t = time.perf_counter()
    if name == "litellm":
        import litellm  # noqa: F401  (import outside the measured cells)

        litellm.telemetry = False
        litellm.suppress_debug_info = True
    elif name == "openai":
        import openai  # noqa: F401
    elif name == "aiohttp":
        import aiohttp  # noqa: F401
    else:
        import bifrost  # noqa: F401
    sys.stdout.write(json.dumps({"ready": name, "import_s": time.perf_counter() - t}) + "\n")
    sys.stdout.flush()
    asyncio.run(serve(name))


# --------------------------------------------------------------------------
# parent side: mock servers, workers, rounds, table
# --------------------------------------------------------------------------


class Mock:
    def __init__(self, binary: str, latency_ms: int, workers: int) -> None:
        args = [binary, "--port", "0", "--workers", str(workers)]
        if latency_ms:
            args += ["--latency-ms", str(latency_ms)]
        self.args = args
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            raise SystemExit(f"bifrost-mock printed {line!r} instead of its port")
        self.base = f"http://127.0.0.1:{int(line)}"

    def requests(self) -> int:
        import urllib.request

        with urllib.request.urlopen(f"{self.base}/_mock/stats", timeout=5) as r:
            return json.loads(r.read())["requests"]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=5)


class Worker:
    def __init__(self, name: str) -> None:
        self.name = name
        env = dict(os.environ)
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.ready = None

    def wait_ready(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"worker {self.name} died at start (see stderr above)")
        self.ready = json.loads(line)
        return self.ready

    def ask(self, cmd: dict) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            return {"failed": f"worker {self.name} exited with {self.proc.wait()}"}
        return json.loads(line)

    def stop(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()


def machine_info() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory": mem,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "python_impl": platform.python_implementation(),
    }


def git_rev() -> str | None:
    try:
        return subprocess.run(
            ["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10
        ).stdout.strip() or None
    except Exception:
        return None


def combine(runs: list[dict]) -> dict:
    """Rounds of one cell -> one row: sums for counts/CPU, request-weighted
    percentiles are not recoverable, so p50/p99 are the medians of the rounds."""
    ok = [r for r in runs if "failed" not in r and r["requests"]]
    if not ok:
        return {"failed": "; ".join(r.get("failed", "no requests") for r in runs)}
    n = sum(r["requests"] for r in ok)
    secs = sum(r["seconds"] for r in ok)

    def wsum(key: str) -> float:
        return sum(r[key] * r["requests"] for r in ok) / n

    return {
        "rounds": len(ok),
        "requests": n,
        "errors": sum(r["errors"] for r in ok),
        "rps": n / secs,
        "rps_rounds": [r["rps"] for r in ok],
        "p50_ms": statistics.median(r["p50_ms"] for r in ok),
        "p99_ms": statistics.median(r["p99_ms"] for r in ok),
        "proc_cpu_us": wsum("proc_cpu_us"),
        "rss_kib": max((r.get("rss_kib") or 0 for r in ok), default=None) or None,
        "thread_cpu_us": wsum("thread_cpu_us"),
        "mock_cpu_us": wsum("mock_cpu_us"),
        "proc_cpu_util": sum(r["proc_cpu_util"] * r["seconds"] for r in ok) / secs,
        "thread_cpu_util": sum(r["thread_cpu_util"] * r["seconds"] for r in ok) / secs,
        "mock_cpu_util": sum(r["mock_cpu_util"] * r["seconds"] for r in ok) / secs,
        "machine_busy": sum(r["machine_busy"] * r["seconds"] for r in ok) / secs,
        "other_cores": sum(r["other_cores"] * r["seconds"] for r in ok) / secs,
    }


def fmt(v, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def render(result: dict) -> str:
    a = result["args"]
    lines = []
    lines.append(f"# Python clients against bifrost-mock — {result['date']}")
    lines.append("")
    m = result["machine"]
    lines.append(
        f"Machine: {m['nproc']} × {m['cpu_model']}, {m['memory']}, Linux {m['kernel']}, Python {m['python']}. "
        f"Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(result["versions"].items())) + f". bifrost commit {result['git']}."
    )
    lines.append("")
    lines.append(f"Command: `{result['command']}`")
    lines.append("")
    lines.append(
        f"Closed loop, N asyncio tasks sending back to back; {a['warmup']} s warm-up then "
        f"{a['seconds']} s measured per cell ({a['slow_seconds']} s for openai and litellm), "
        f"{a['rounds']} interleaved rounds (client order rotated), combined. bifrost-mock with "
        f"`--workers {a['mock_workers']}`, one server per latency. "
        "**proc CPU** = the client process's user+sys CPU per request (bifrost: includes its Rust threads); "
        "**py-thread CPU** = the event-loop thread's CPU per request; **mock CPU** = the upstream's CPU per request; "
        "**proc / mock cores** = CPU cores those processes kept busy; **other cores** = CPU used on the "
        f"machine by anything else during the cell (other jobs: noise; the machine has {m['nproc']} cores). "
        "**× aiohttp** = throughput ratio to raw aiohttp, per round (same run), shown as the rounds' values."
    )
    lines.append("")
    for lat in a["latencies"]:
        lines.append(f"## {lat} ms mock latency")
        lines.append("")
        lines.append(
            "| client | N | req/s | × aiohttp | p50 ms | p99 ms | proc CPU µs/req | py-thread CPU µs/req | proc cores | mock CPU µs/req | mock cores | other cores | errors |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n in a["inflight"]:
            for c in a["clients"]:
                row = result["cells"].get(f"{c}/{lat}/{n}")
                if row is None:
                    continue
                if "failed" in row:
                    lines.append(f"| {c} | {n} | failed: {row['failed'][:120]} |||||||||||")
                    continue
                ratios = result["ratios"].get(f"{c}/{lat}/{n}")
                rtxt = " / ".join(f"{x:.2f}" for x in ratios) if ratios else "–"
                lines.append(
                    f"| {c} | {n} | {row['rps']:,.0f} | {rtxt} | {fmt(row['p50_ms'], '.2f')} | {fmt(row['p99_ms'], '.2f')} | "
                    f"{row['proc_cpu_us']:.0f} | {row['thread_cpu_us']:.0f} | {row['proc_cpu_util']:.2f} | "
                    f"{row['mock_cpu_us']:.0f} | {row['mock_cpu_util']:.2f} | {row['other_cores']:.2f} | {row['errors']} |"
                )
        lines.append("")
    t = result["targets"]
    lines.append("## Issue 5 targets")
    lines.append("")
    for item in t:
        lines.append(f"- {item}")
    lines.append("")
    return "\n".join(lines)


def targets(result: dict) -> list[str]:
    a = result["args"]
    cells = result["cells"]
    out = []
    if 0 in a["latencies"]:
        for n in a["inflight"]:
            b, h = cells.get(f"bifrost/0/{n}"), cells.get(f"aiohttp/0/{n}")
            if b and h and "failed" not in b and "failed" not in h:
                r = result["ratios"].get(f"bifrost/0/{n}") or []
                ok = "met" if r and min(r) >= 2.0 else "NOT met"
                out.append(
                    f"bifrost ≥ 2× raw aiohttp throughput at 0 ms, N={n}: {b['rps']:,.0f} vs {h['rps']:,.0f} req/s "
                    f"(per round: {', '.join(f'{x:.2f}×' for x in r)}) — {ok}"
                )
    for lat in a["latencies"]:
        for n in a["inflight"]:
            b = cells.get(f"bifrost/{lat}/{n}")
            if b and "failed" not in b:
                ok = "met" if b["thread_cpu_us"] <= 50 else "NOT met"
                out.append(f"bifrost ≤ 50 µs Python-thread CPU/request, {lat} ms, N={n}: {b['thread_cpu_us']:.0f} µs — {ok}")
    if 50 in a["latencies"]:
        for n in a["inflight"]:
            rows = {c: cells.get(f"{c}/50/{n}") for c in a["clients"]}
            rows = {c: r for c, r in rows.items() if r and "failed" not in r}
            if "bifrost" in rows:
                best = min(rows, key=lambda c: rows[c]["p99_ms"])
                ok = "met" if best == "bifrost" else f"NOT met ({best} is lowest)"
                out.append(
                    f"lowest p99 at 50 ms, N={n}: "
                    + ", ".join(f"{c} {r['p99_ms']:.2f} ms" for c, r in rows.items())
                    + f" — {ok}"
                )
    return out


def other_load(sample_s: float = 0.5) -> float:
    """Cores busy on the machine over `sample_s` (the bench itself is idle then)."""
    b0, t0 = machine_busy()
    time.sleep(sample_s)
    b1, t1 = machine_busy()
    return (b1 - b0) / max(1, t1 - t0) * (os.cpu_count() or 1)


class Quiet:
    """Waits (bounded per cell and in total) for other jobs on the machine to
    calm down before a cell: this machine is shared, and a compiler running
    next to a cell distorts it. Every cell still records the load it saw."""

    def __init__(self, per_cell: float, budget: float, threshold: float) -> None:
        self.per_cell, self.budget, self.threshold = per_cell, budget, threshold
        self.waited = 0.0

    def wait(self) -> float:
        start = time.perf_counter()
        load = other_load(0.2)
        while load > self.threshold:
            spent = time.perf_counter() - start
            if spent >= self.per_cell or self.waited + spent >= self.budget:
                break
            load = other_load(0.5)
        self.waited += time.perf_counter() - start
        return load


def parent_main(args: argparse.Namespace) -> None:
    started = time.time()
    clients = args.clients.split(",")
    inflight = [int(x) for x in args.inflight.split(",")]
    latencies = [int(x) for x in args.latency.split(",")]
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of the cost map at import
    os.environ.setdefault("LITELLM_TELEMETRY", "False")

    mocks = {lat: Mock(args.mock, lat, args.mock_workers) for lat in latencies}
    workers = {c: Worker(c) for c in clients}
    try:
        imports = {c: w.wait_ready()["import_s"] for c, w in workers.items()}
        vers = {}
        for w in workers.values():
            vers.update(w.ask({"op": "versions"}))
        print(f"# workers ready (import s: {', '.join(f'{c} {t:.2f}' for c, t in imports.items())})", file=sys.stderr)

        runs: dict[str, list[dict]] = {}
        ratios: dict[str, list[float]] = {}
        quiet = Quiet(args.quiet_wait, args.quiet_budget, args.quiet_threshold)
        retry_left = args.retry_budget
        for rnd in range(args.rounds):
            for lat in latencies:
                for n in inflight:
                    k = rnd % len(clients)
                    order = clients[k:] + clients[:k]
                    this_round = {}
                    for c in order:
                        secs = args.slow_seconds if c in ("openai", "litellm") else args.seconds
                        cmd = {
                            "base": mocks[lat].base,
                            "mock_pid": mocks[lat].proc.pid,
                            "inflight": n,
                            "warmup": args.warmup,
                            "seconds": secs,
                            "latency_ms": lat,
                        }
                        before = quiet.wait()
                        res = workers[c].ask(cmd)
                        res["load_before"] = before
                        # Rerun once (bounded in total) a cell that other jobs disturbed; keep the
                        # less disturbed run (chosen on the load it saw, never on its result).
                        if "failed" not in res and res["other_cores"] > args.quiet_threshold * 2 and retry_left > 0:
                            retry_left -= secs + args.warmup
                            print(f"round {rnd + 1} {lat:>2} ms N={n:<4} {c:<8} rerun: other load {res['other_cores']:.2f} cores", file=sys.stderr)
                            before = quiet.wait()
                            again = workers[c].ask(cmd)
                            again["load_before"] = before
                            if "failed" not in again and again["other_cores"] < res["other_cores"]:
                                again["reran"] = True
                                res = again
                        res["round"] = rnd
                        runs.setdefault(f"{c}/{lat}/{n}", []).append(res)
                        this_round[c] = res
                        if "failed" in res:
                            print(f"round {rnd + 1} {lat:>2} ms N={n:<4} {c:<8} FAILED {res['failed']}", file=sys.stderr)
                        else:
                            print(
                                f"round {rnd + 1} {lat:>2} ms N={n:<4} {c:<8} {res['rps']:>8,.0f} req/s  "
                                f"p50 {fmt(res['p50_ms'], '.2f')} p99 {fmt(res['p99_ms'], '.2f')} ms  "
                                f"proc {res['proc_cpu_us']:.0f} µs  py-thread {res['thread_cpu_us']:.0f} µs  "
                                f"mock {res['mock_cpu_us']:.0f} µs  other {res['other_cores']:.2f} cores  "
                                f"errors {res['errors']}" + (f" ({res['first_error']})" if res["first_error"] else ""),
                                file=sys.stderr,
                                flush=True,
                            )
                    base = this_round.get("aiohttp")
                    if base and "failed" not in base and base["rps"]:
                        for c, res in this_round.items():
                            if "failed" not in res:
                                ratios.setdefault(f"{c}/{lat}/{n}", []).append(res["rps"] / base["rps"])
    finally:
        for w in workers.values():
            w.stop()
        for m in mocks.values():
            m.stop()

    date = _dt.datetime.now().strftime("%Y-%m-%d")
    result = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "command": os.environ.get("BENCH_COMMAND") or " ".join(shlex.quote(x) for x in [sys.executable] + sys.argv),
        "git": git_rev(),
        "machine": machine_info(),
        "versions": vers,
        "import_s": imports,
        "args": {
            "seconds": args.seconds,
            "slow_seconds": args.slow_seconds,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "inflight": inflight,
            "latencies": latencies,
            "clients": clients,
            "mock_workers": args.mock_workers,
            "quiet_wait": args.quiet_wait,
            "quiet_budget": args.quiet_budget,
            "quiet_threshold": args.quiet_threshold,
            "retry_budget": args.retry_budget,
            "quiet_waited_s": round(quiet.waited, 1),
            "mock_command": {lat: m.args for lat, m in mocks.items()},
        },
        "cells": {k: combine(v) for k, v in runs.items()},
        "ratios": ratios,
        "runs": runs,
        "wall_s": None,
    }
    result["targets"] = targets(result)
    result["wall_s"] = round(time.time() - started, 1)
    md = render(result)
    print(md)
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"python-{date}")
    with open(stem + ".md", "w") as f:
        f.write(md)
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=1)
    print(f"# wrote {stem}.md and {stem}.json ({result['wall_s']} s)", file=sys.stderr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--mock", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "bifrost-mock"))
    p.add_argument("--mock-workers", type=int, default=1)
    p.add_argument("--clients", default=",".join(CLIENTS))
    p.add_argument("--inflight", default="64,256")
    p.add_argument("--latency", default="0,50", help="mock latencies in ms")
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per cell (bifrost, aiohttp)")
    p.add_argument("--slow-seconds", type=float, default=3.0, help="measured seconds per cell (openai, litellm)")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--quiet-wait", type=float, default=8.0, help="max seconds to wait for other load to calm down before a cell")
    p.add_argument("--quiet-budget", type=float, default=60.0, help="max seconds of such waiting in a whole run")
    p.add_argument("--quiet-threshold", type=float, default=0.3, help="other load (cores) counted as quiet")
    p.add_argument("--retry-budget", type=float, default=40.0, help="max seconds of cells rerun because of other load")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    p.add_argument("--openloop", action="store_true", help="open loop at fixed rates against --base (see the module docs)")
    p.add_argument("--base", help="open loop: a running bifrost-mock, http://127.0.0.1:PORT")
    p.add_argument("--rates", default="1000,3000", help="open loop: requests/s")
    p.add_argument("--latency-ms", type=int, default=0, help="open loop: the mock's configured latency")
    args = p.parse_args()
    if args.openloop:
        if not args.base:
            p.error("--openloop needs --base")
        if args.clients == ",".join(CLIENTS):
            args.clients = "bifrost"
        os.environ.setdefault("LITELLM_LOG", "ERROR")
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        os.environ.setdefault("LITELLM_TELEMETRY", "False")
        asyncio.run(open_loop_main(args))
    elif args.worker:
        worker_main(args.worker)
    else:
        parent_main(args)


if __name__ == "__main__":
    main()
