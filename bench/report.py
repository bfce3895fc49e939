#!/usr/bin/env python3
"""Collects one `bench/run.sh` run into bench/results/<date>.json and
regenerates docs/benchmarks.md and docs/img/{latency,throughput,openloop}.png.

    python bench/report.py --raw bench/results/raw-<date> [--total-seconds N] [--docs DIR] [--json PATH]

Every figure comes from the raw outputs of the same run (ratios are computed
within it); scenarios that failed or were skipped are listed with the reason.
Plots need matplotlib (bench/run.sh installs it into bench/.venv); without
it the report is written without plots and says so.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUBLISHED = [("t3.xlarge", 11), ("t3.medium", 59)]  # Bifrost's published added latency, µs, at 5k RPS


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=ROOT).stdout.strip()
    except Exception:
        return ""


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def json_lines(text):
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def machine():
    cpu = ""
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = ""
    for line in read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal"):
            mem = "%.1f GiB" % (int(line.split()[1]) / 1048576)
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "kernel": platform.release(),
            "os": sh("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME")}


def versions():
    go = sh("sh", "-c", "command -v go || echo /usr/local/go/bin/go")
    gomod = read(os.path.join(ROOT, "bench", "go", "go.mod"))
    m = re.search(r"github.com/maximhq/bifrost/core (v\S+)", gomod)
    ws = read(os.path.join(ROOT, "Cargo.toml"))
    v = re.search(r'^version\s*=\s*"([^"]+)"', ws, re.M)
    return {
        "bifrost": v.group(1) if v else "",
        "git": sh("git", "describe", "--always", "--dirty"),
        "rustc": sh("rustc", "-V"),
        "go": sh(go, "version") if os.path.exists(go) else "",
        "bifrost_go_core": m.group(1) if m else "",
        "node": sh("node", "--version"),
        "python": sys.version.split()[0],
        "gcc": sh("gcc", "-dumpfullversion"),
        "wrk": (sh("sh", "-c", "wrk --version 2>&1 | head -1").split(" Copyright")[0]),
    }


# --------------------------------------------------------------- parsers

def parse_pool(raw):
    res = []
    for est in sorted(glob.glob(os.path.join(raw, "criterion", "submit_await", "*", "new", "estimates.json"))):
        name = est.split(os.sep)[-3]
        d = load_json(est)
        bench = load_json(os.path.join(os.path.dirname(est), "benchmark.json")) or {}
        elems = (bench.get("throughput") or {}).get("Elements") or 65536
        if d:
            ns = d["mean"]["point_estimate"]
            lo, hi = d["mean"]["confidence_interval"]["lower_bound"], d["mean"]["confidence_interval"]["upper_bound"]
            res.append({"bench": name, "submitters": int(name.split("_")[0]), "limits": name.endswith("_limits"),
                        "jobs_per_s": elems / ns * 1e9,
                        "jobs_per_s_ci": [elems / hi * 1e9, elems / lo * 1e9], "ns_per_job": ns / elems})
    return sorted(res, key=lambda r: (r["limits"], r["submitters"]))


def parse_alloc(raw):
    m = re.search(r"([\d.]+) jobs/s, ([\d.]+) bytes and ([\d.]+) allocations per job", read(os.path.join(raw, "alloc.out")))
    return {"jobs_per_s": float(m.group(1)), "bytes_per_job": float(m.group(2)), "allocs_per_job": float(m.group(3))} if m else None


def parse_http(raw):
    rows = []
    for line in read(os.path.join(raw, "http.out")).splitlines():
        m = re.match(r"\s*(\d+)\s+([\d.]+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+(\d+)\s+(\d+)\s+([+-]?\d+) µs\s+\(ratio ([\d.]+)\)", line)
        if m:
            rows.append({"inflight": int(m.group(1)), "reqwest_rps": float(m.group(2)), "reqwest_p50_us": int(m.group(3)),
                         "reqwest_p99_us": int(m.group(4)), "bifrost_rps": float(m.group(5)), "bifrost_p50_us": int(m.group(6)),
                         "bifrost_p99_us": int(m.group(7)), "added_p50_us": int(m.group(8)), "p50_ratio": float(m.group(9))})
    return rows


def parse_c(raw):
    rows = []
    for line in read(os.path.join(raw, "c.out")).splitlines():
        m = re.match(r"threads=(\d+)\s+C\s+(\d+) ns\s+Rust\s+(\d+) ns\s+Rust\+JSON\s+(\d+) ns\s+C/Rust ([\d.]+)x\s+C/\(Rust\+JSON\) ([\d.]+)x", line)
        if m:
            rows.append({"threads": int(m.group(1)), "c_ns": int(m.group(2)), "rust_ns": int(m.group(3)), "rust_json_ns": int(m.group(4)),
                         "c_over_rust": float(m.group(5)), "c_over_rust_json": float(m.group(6))})
    return rows


def closed_row(r, note):
    """A closed-loop JSON line of bench/node, bench/c/http.c or core/examples/bench_openloop -> a throughput row."""
    row = {"client": r["client"], "lang": r["lang"], "latency_ms": int(r["latency_ms"]), "inflight": int(r["inflight"]),
           "req_s": r["req_s"], "p50_us": r["p50_us"], "p99_us": r["p99_us"], "max_us": r.get("max_us"),
           "cpu_us_per_req": r.get("cpu_us_per_req"), "cpu_note": note, "mock_cpu_us_per_req": r.get("mock_cpu_us_per_req"),
           "errors": r.get("errors", 0)}
    if r.get("first_error"):
        row["first_error"] = r["first_error"]
    if r.get("js_cpu_us_per_req") is not None:
        row["js_cpu_us_per_req"] = r["js_cpu_us_per_req"]
    return row


def parse_node(raw):
    return [closed_row(r, "process CPU (incl. addon threads)") for r in json_lines(read(os.path.join(raw, "node.out")))
            if r.get("mode") == "closed"]


def parse_closed(raw, pattern, note):
    """Closed-loop cells of the Rust example (rust-*) and the C driver (chttp-*)."""
    rows = []
    for out in sorted(glob.glob(os.path.join(raw, pattern))):
        rows += [closed_row(r, note) for r in json_lines(read(out)) if r.get("mode") == "closed"]
    return rows


def parse_openloop(raw):
    """Every open-loop cell (openloop-*.out), one row per client, rate and latency."""
    rows = []
    for out in sorted(glob.glob(os.path.join(raw, "openloop-*.out"))):
        scen = os.path.basename(out)[:-4]
        for r in json_lines(read(out)):
            if r.get("mode") != "open":
                continue
            r = dict(r)
            r["scenario"] = scen
            r["rate"] = float(r["rate"])
            r["latency_ms"] = int(r["latency_ms"])
            # The driver's kept_up says the rate was sustained (every request done, >= 95 % achieved);
            # keeping up also means no queue built up inside the client: median added latency < 5 ms.
            r["sustained"] = bool(r.get("kept_up"))
            r["kept_up"] = r["sustained"] and r.get("completed", 0) > 0 and r["added_p50_us"] < KEPT_UP_P50_US
            rows.append(r)
    return rows


def parse_python(raw):
    files = sorted(glob.glob(os.path.join(raw, "python", "python-*.json")))
    if not files:
        return [], None
    d = load_json(files[-1]) or {}
    names = {"bifrost": "python: bifrost achat", "aiohttp": "python: aiohttp (raw)", "openai": "python: openai AsyncOpenAI",
             "litellm": "python: LiteLLM Router.acompletion"}
    rows = []
    for key, c in (d.get("cells") or {}).items():
        client, lat, inflight = key.split("/")
        rows.append({"client": names.get(client, "python: " + client), "lang": "Python", "latency_ms": int(lat), "inflight": int(inflight),
                     "req_s": c["rps"], "p50_us": c["p50_ms"] * 1000, "p99_us": c["p99_ms"] * 1000, "cpu_us_per_req": c.get("proc_cpu_us"),
                     "cpu_note": "client process", "mock_cpu_us_per_req": c.get("mock_cpu_us"), "errors": c.get("errors", 0)})
    return rows, d


def parse_streams(raw):
    """Stream cells (issue 20): one JSON object per cell from core/examples/bench_stream.rs,
    bench/python/stream.py and bench/node/stream.js, all with the same fields."""
    rows = []
    for path in sorted(glob.glob(os.path.join(raw, "stream-*.out"))):
        for r in json_lines(read(path)):
            if r.get("mode") == "stream" and r.get("chunks"):
                r["scenario"] = os.path.basename(path)[:-4]
                rows.append(r)
    return rows


def parse_inflight(raw):
    """10,000-in-flight cells (issue 20): closed-loop rows of inflight-rust-*.out, inflight-node.out
    and inflight-python/python-*.json, each with its resident memory near the end of the window."""
    rows = []
    for path in sorted(glob.glob(os.path.join(raw, "inflight-rust-*.out"))) + sorted(glob.glob(os.path.join(raw, "inflight-node-*.out"))):
        for r in json_lines(read(path)):
            if r.get("mode") == "closed":
                row = closed_row(r, "process CPU")
                row["rss_kib"] = r.get("rss_kib")
                rows.append(row)
    for path in sorted(glob.glob(os.path.join(raw, "inflight-python", "python-*.json")))[-1:]:
        d = load_json(path) or {}
        names = {"bifrost": "python: bifrost achat", "aiohttp": "python: aiohttp (raw)"}
        for key, c in (d.get("cells") or {}).items():
            client, lat, inflight = key.split("/")
            rows.append({"client": names.get(client, "python: " + client), "lang": "Python", "latency_ms": int(lat),
                         "inflight": int(inflight), "req_s": c["rps"], "p50_us": c["p50_ms"] * 1000, "p99_us": c["p99_ms"] * 1000,
                         "cpu_us_per_req": c.get("proc_cpu_us"), "rss_kib": c.get("rss_kib"), "errors": c.get("errors", 0)})
    for r in rows:
        ideal = r["inflight"] / (r["latency_ms"] / 1000) if r["latency_ms"] else None
        r["ideal_req_s"] = ideal
        r["of_ideal"] = r["req_s"] / ideal if ideal else None
        r["kib_per_inflight"] = r["rss_kib"] / r["inflight"] if r.get("rss_kib") else None
    return rows


# Stream comparisons within a run: (language, bifrost label prefix, peer label prefix, target ratio of CPU per chunk)
STREAM_PEERS = [
    ("Rust", "rust: bifrost", "rust: reqwest", 1.2),
    ("Rust vs Go", "rust: bifrost", "go: Bifrost core", None),
    ("Python", "python: bifrost", "python: aiohttp", 1 / 3),
    ("Python", "python: bifrost", "python: openai", None),
    ("Node", "node: bifrost", "node: node:http", 0.5),
    ("Node", "node: bifrost", "node: openai", None),
]


def stream_find(rows, prefix, streams, delay):
    for r in rows:
        if r["client"].startswith(prefix) and r["streams"] == streams and r["chunk_delay_ms"] == delay:
            return r
    return None


def stream_ratios(rows):
    """(language, bifrost, peer, target, [(streams, delay, cpu ratio, chunks/s ratio)])."""
    cells = sorted({(r["streams"], r["chunk_delay_ms"]) for r in rows}, key=lambda c: (c[1], c[0]))
    out = []
    for lang, mine, peer, target in STREAM_PEERS:
        got = []
        for n, d in cells:
            a, b = stream_find(rows, mine, n, d), stream_find(rows, peer, n, d)
            if a and b and a.get("cpu_us_per_chunk") and b.get("cpu_us_per_chunk"):
                got.append((n, d, a["cpu_us_per_chunk"] / b["cpu_us_per_chunk"], a["chunks_per_s"] / b["chunks_per_s"]))
        if got:
            out.append((lang, mine, peer, target, got))
    return out


def parse_cell(raw, stem, label, lang):
    """wrk-*/go-*/gohttp-* cells: JSON line + /usr/bin/time + mock CPU."""
    rows = []
    for out in sorted(glob.glob(os.path.join(raw, stem + "-*.out"))):
        base = out[:-4]
        m = re.search(stem + r"-(\d+)-(\d+)$", base)
        if not m:
            continue
        res = json_lines(read(out))
        if not res:
            continue
        r = res[-1]
        t = load_json(base + ".time") or {}
        mc = load_json(base + ".mockcpu") or {}
        n = r.get("requests") or 0
        cpu = (t.get("client_cpu_s", 0) + t.get("client_sys_s", 0))
        row = {"client": label, "lang": lang, "latency_ms": int(m.group(1)), "inflight": int(m.group(2)), "req_s": r["req_s"],
               "p50_us": r["p50_us"], "p99_us": r["p99_us"], "max_us": r.get("max_us"),
               # whole-process CPU incl. start-up (time(1)); the Go program's own getrusage figure is preferred
               "cpu_us_per_req": r.get("cpu_us_per_req") or (cpu * 1e6 / n if n else None),
               "cpu_note": "process CPU (getrusage)" if r.get("cpu_us_per_req") else "process CPU (time(1), incl. start-up)",
               "mock_cpu_us_per_req": r.get("mock_cpu_us_per_req") or ((mc.get("mock_cpu_s", 0) * 1e6 / n) if n and mc else None),
               "errors": r.get("errors")}
        for k in ("module", "go_version", "gomaxprocs", "first_error"):
            if k in r:
                row[k] = r[k]
        rows.append(row)
    return rows


# --------------------------------------------------------------- rendering

def fmt(v, digits=0):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in r) + " |" for r in rows]
    return "\n".join(out)


def clean_cmd(cmd):
    """The command as a reader would type it: no time(1) wrapper, paths relative, the mock's port as PORT."""
    cmd = re.sub(r"^/usr/bin/time -f '[^']*' -o \S+ ", "", cmd or "")
    cmd = cmd.replace(ROOT + "/", "").replace(ROOT, ".")
    cmd = re.sub(r"(-?-mock-pid) \d+", r"\1 PID", cmd)
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", cmd)


def cmd_of(status, name):
    for s in status:
        if s["scenario"] == name:
            return clean_cmd(s["command"])
    return ""


def p50_p99_bars(ax, labels, p50, p99, xlabel, title):
    """Horizontal p50/p99 bar pairs per label on a log axis."""
    y = range(len(labels))
    ax.barh([i + 0.2 for i in y], p50, height=0.4, label="p50")
    ax.barh([i - 0.2 for i in y], p99, height=0.4, label="p99")
    ax.set_yticks(list(y))
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=8)


def plots(data, img_dir):
    try:
        import matplotlib
        import matplotlib.ticker
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: no plots"
    os.makedirs(img_dir, exist_ok=True)
    rows = [r for r in data["throughput"] if r.get("req_s")]
    concs = sorted({r["inflight"] for r in rows if r["inflight"] > 1}) or [64, 256]
    # throughput vs concurrency, 0 and 50 ms
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    for ax, lat in zip(axes, (0, 50)):
        ax.set_prop_cycle(color=plt.cm.tab20.colors)
        clients = sorted({r["client"] for r in rows if r["latency_ms"] == lat})
        for c in clients:
            pts = sorted((r["inflight"], r["req_s"]) for r in rows if r["client"] == c and r["latency_ms"] == lat)
            if not pts:
                continue
            style = "-o" if "bifrost" in c else "--."
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=c, linewidth=2 if "bifrost" in c else 1)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("requests in flight")
        ax.set_ylabel("requests/s")
        ax.set_title(f"throughput vs concurrency, mock latency {lat} ms")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(f"bifrost benchmarks {data['date']} — {data['machine']['cpu']}, {data['machine']['cores']} cores (one run)", fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(img_dir, "throughput.png"), dpi=110)
    plt.close(fig)
    # latency: p50 and p99 per client at 0 ms, one panel per concurrency
    fig, axes = plt.subplots(1, len(concs), figsize=(6.5 * len(concs), 6.5))
    for ax, conc in zip(axes if len(concs) > 1 else [axes], concs):
        sel = sorted([r for r in rows if r["latency_ms"] == 0 and r["inflight"] == conc], key=lambda r: r["p50_us"])
        y = range(len(sel))
        p50_p99_bars(ax, [r["client"] for r in sel], [r["p50_us"] / 1000 for r in sel], [r["p99_us"] / 1000 for r in sel],
                     "latency, ms (log)", f"closed loop, {conc} in flight, mock 0 ms")
    fig.suptitle(f"bifrost benchmarks {data['date']} — latency at fixed concurrency, one run", fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(img_dir, "latency.png"), dpi=110)
    plt.close(fig)
    # open loop: added latency p50 / p99 per client and rate, 0 and 50 ms
    ol = [r for r in data.get("openloop") or [] if r.get("completed")]
    if ol:
        fig, axes = plt.subplots(1, 2, figsize=(14, 0.9 + 0.32 * max(8, len(ol) // 2)))
        for ax, lat in zip(axes, (0, 50)):
            sel = sorted([r for r in ol if r["latency_ms"] == lat], key=lambda r: (-r["rate"], -r["added_p50_us"]))
            labels = [f"{r['client']} @ {r['rate']:,.0f}/s" + ("" if r.get("kept_up") else " (behind)") for r in sel]
            p50_p99_bars(ax, labels, [max(1, r["added_p50_us"]) for r in sel], [max(1, r["added_p99_us"]) for r in sel],
                         "added latency, µs (log scale)", f"open loop, mock latency {lat} ms")
        fig.suptitle(f"bifrost benchmarks {data['date']} — fixed rate (open loop), one run", fontsize=9)
        fig.tight_layout()
        fig.savefig(os.path.join(img_dir, "openloop.png"), dpi=110)
        plt.close(fig)
    # streams: client CPU per chunk per client, one panel per (delay, streams) cell
    st = data.get("streams") or []
    if st:
        cells = sorted({(r["chunk_delay_ms"], r["streams"]) for r in st})
        fig, axes = plt.subplots(1, len(cells), figsize=(5.2 * len(cells), 5.5), squeeze=False)
        for ax, (d, n) in zip(axes[0], cells):
            sel = sorted([r for r in st if r["chunk_delay_ms"] == d and r["streams"] == n], key=lambda r: r["cpu_us_per_chunk"])
            colors = ["tab:blue" if "bifrost" in r["client"] else "tab:gray" for r in sel]
            ax.barh(range(len(sel)), [r["cpu_us_per_chunk"] for r in sel], color=colors)
            ax.set_yticks(range(len(sel)))
            ax.set_yticklabels([r["client"] for r in sel], fontsize=7)
            ax.invert_yaxis()
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlabel("client CPU µs per chunk (log; lower is better)")
            ax.set_title(f"{n:,} streams, {d} ms between chunks", fontsize=9)
            ax.grid(True, axis="x", which="both", alpha=0.3)
        fig.suptitle(f"bifrost benchmarks {data['date']} — streams of 200 chunks, one run", fontsize=9)
        fig.tight_layout()
        fig.savefig(os.path.join(img_dir, "streams.png"), dpi=110)
        plt.close(fig)
    return ""


FLOOR = "rust: plain reqwest"
KEPT_UP_P50_US = 5000  # median added latency above this: requests queue inside the client
# bifrost versus its peers, requests/s ratios within the run: (label, numerator prefix, denominator prefix)
RATIOS = [
    ("Rust: bifrost / plain reqwest", "rust: bifrost", "rust: plain reqwest"),
    ("Rust bifrost / Bifrost Go core", "rust: bifrost", "go: Bifrost core"),
    ("Go: Bifrost core / net/http", "go: Bifrost core", "go: net/http"),
    ("C: bifrost / plain reqwest (Rust)", "c: bifrost", "rust: plain reqwest"),
    ("Python: bifrost / aiohttp", "python: bifrost", "python: aiohttp"),
    ("Python: bifrost / openai SDK", "python: bifrost", "python: openai"),
    ("Python: bifrost / LiteLLM", "python: bifrost", "python: LiteLLM"),
    ("Node: bifrost / http keep-alive", "node: bifrost", "node: node http"),
    ("Node: bifrost / fetch", "node: bifrost", "node: fetch"),
    ("Node: bifrost / openai + p-limit", "node: bifrost", "node: openai"),
]


def find(rows, prefix, lat, conc):
    for r in rows:
        if r["client"].startswith(prefix) and r["latency_ms"] == lat and r["inflight"] == conc and r.get("req_s"):
            return r
    return None


def ol_find(rows, prefix, lat, rate):
    for r in rows:
        if r["client"].startswith(prefix) and r["latency_ms"] == lat and r["rate"] == rate:
            return r
    return None


def kept_up_text(r):
    if r.get("kept_up"):
        return "yes"
    why = [f"achieved {r.get('achieved_rps', 0):,.0f}/s"]
    if r.get("sustained"):
        why.insert(0, f"median added {r['added_p50_us'] / 1000:,.0f} ms: requests queue in the client")
    if r.get("unfinished"):
        why.append(f"{r['unfinished']:,} unfinished")
    if r.get("errors"):
        why.append(f"{r['errors']:,} errors")
    return "**no** — " + ", ".join(why)


def render(data):
    m, v, st = data["machine"], data["versions"], data["status"]
    s = data["settings"]
    L = []
    w = L.append
    w("# Benchmarks\n")
    w(f"Generated by `make bench` (`bash bench/run.sh` → `bench/report.py`) on {data['date']}; raw results: "
      f"`bench/results/{data['date']}.json`. **Everything below comes from one run on one machine**; ratios are computed "
      f"within that run. Short settings ({s['seconds_per_cell']} s per closed-loop cell, {s['openloop_seconds']} s per open-loop "
      f"cell after {s['openloop_warmup_s']} s of warm-up, one round): expect ±10–20 % between runs "
      "on a shared 2-core machine. Total run time: " + (f"{data['total_seconds'] // 60} min {data['total_seconds'] % 60} s." if data.get("total_seconds") else "–"))
    w("")
    w(f"- **Machine**: {m['cpu']}, {m['cores']} cores, {m['memory']}, Linux {m['kernel']} ({m['os']}). Other jobs may have shared the cores.")
    w(f"- **Versions**: bifrost {v['bifrost']} ({v['git']}), {v['rustc']}, {v['go']}, Bifrost Go core `github.com/maximhq/bifrost/core {v['bifrost_go_core']}`, "
      f"node {v['node']}" + (f" (openai {v['node:openai']}, p-limit {v['node:p-limit']})" if v.get("node:openai") else "")
      + f", Python {v['python']}" + (f" (aiohttp {v.get('py:aiohttp')}, openai {v.get('py:openai')}, litellm {v.get('py:litellm')})" if v.get("py:litellm") else "")
      + f", gcc {v['gcc']}, {v['wrk']}.")
    w("- **Upstream**: `bifrost-mock` (this repository), OpenAI route `/v1/chat/completions`, 2 worker threads, on the same machine — "
      "so client and server share the 2 cores; the mock's CPU per request is shown where measured. Mock latency 50 ms is the "
      "mock's `--latency-ms 50` (the same as the `latency_ms=50` directive).")
    w("- **Longer cells**: `BENCH_SECONDS=5 BENCH_OPENLOOP_SECONDS=20 make bench` (issue 8 suggests 20 s per open-loop cell; "
      "the default 5 s keeps the whole run under 15 minutes on 2 cores).")
    w("")
    skipped = [x for x in st if x["status"] != "ok"]
    if skipped:
        w("**Skipped or failed in this run:**\n")
        for x in skipped:
            w(f"- `{x['scenario']}`: {x['status']} — {x['note']}")
        w("")
    w("![throughput](img/throughput.png)\n")
    w("![latency](img/latency.png)\n")
    if data.get("openloop"):
        w("![open loop](img/openloop.png)\n")

    # --- headline
    w("## Headline\n")
    h = data["headline"]
    for line in h["lines"]:
        w(f"- {line}")
    w("")

    # --- open loop
    ol = data.get("openloop") or []
    if ol:
        rates = sorted({r["rate"] for r in ol})
        w("## Overhead at a fixed rate (open loop)\n")
        w("Each client is driven at a fixed rate: request *i* is started at t0 + *i*/rate whatever the earlier requests do "
          "(open loop), and its latency is measured from that **scheduled** time, so a client or sender that falls behind "
          "shows it (no coordinated omission). **added** = completion − scheduled send time − the mock's configured latency. "
          "At 0 ms that is the whole round trip over loopback HTTP, mock included; at 50 ms it also holds the mock's own timer "
          "overshoot (about 1 ms: its timers have millisecond granularity), the same for every client. So the figure to read "
          f"for a library's cost is **over floor**: its added p50 minus that of the plain `reqwest` client (the floor) at the "
          "same rate and mock latency, in this run.\n")
        w("**lag** is how late the request was handed to the client: each driver has a sender that sleeps until every "
          "scheduled time (Rust: a thread, then a spawn on the runtime; C: `clock_nanosleep`, then `bifrost_submit_cb` from "
          "that thread; Go: a goroutine locked to its OS thread calling `nanosleep` — `time.Sleep` overshoots by ~0.5–1 ms; "
          "Node: a worker thread in `Atomics.wait`, then `postMessage` to the main thread — `setTimeout` has 1 ms granularity; "
          "Python: a thread in `time.sleep`, then `call_soon_threadsafe` to the event loop). The lag is part of *added*, and "
          "is the same mechanism for bifrost and its peer in each language. Client CPU is µs of CPU of the whole client "
          "process per completed request over the measured part (at a fixed rate it compares the clients directly; idle "
          f"wake-ups are included). Requests of the first {s['openloop_warmup_s']} s are sent but not counted. A client **keeps up** "
          "when every request is done within 2 s + 2 × latency after the last send, it achieves at least 95 % of the rate, "
          f"and its median added latency stays under {KEPT_UP_P50_US // 1000} ms (above that, requests are queuing inside "
          "the client); otherwise the row says what it achieved.\n")
        for lat in (0, 50):
            rows = [r for r in ol if r["latency_ms"] == lat]
            if not rows:
                continue
            w(f"### Mock latency {lat} ms\n")
            trs = []
            for rate in rates:
                floor = ol_find(rows, FLOOR, lat, rate)
                for r in sorted([r for r in rows if r["rate"] == rate], key=lambda r: (not r.get("kept_up"), r["added_p50_us"])):
                    over = (f"{r['added_p50_us'] - floor['added_p50_us']:+,}" if floor and floor.get("completed") and r.get("completed") else "–")
                    if r["client"].startswith(FLOOR):
                        over = "(floor)"
                    trs.append([r["client"], f"{rate:,.0f}", fmt(float(r["achieved_rps"])), fmt(r["added_p50_us"]), fmt(r["added_p99_us"]),
                                fmt(r["added_max_us"]), over, f"{r['lag_p50_us']:,} / {r['lag_p99_us']:,}",
                                fmt(r.get("cpu_us_per_req"), 1), kept_up_text(r)])
            w(table(["client", "rate req/s", "achieved req/s", "added p50 µs", "added p99 µs", "added max µs", "p50 over floor µs",
                     "lag p50 / p99 µs", "client CPU µs/req", "kept up"], trs))
            w("")
        w("Commands (per mock latency; `PORT` is that mock's): " + "; ".join(f"`{c}`" for c in h["openloop_commands"] if c) + "\n")

    # --- streams
    srows = data.get("streams") or []
    if srows:
        w("## Streams\n")
        w("N concurrent streams of 200 chunks each (`gpt~chunks=200&chunk_delay_ms=D` from `bifrost-mock`, one worker "
          f"thread, its own process per language), started back to back for {s.get('stream_seconds', 3)} s per cell; every "
          "stream started runs to its end. **CPU µs/chunk** is the client process's user + system CPU (all its threads: "
          "bifrost's Rust runtime included) per content chunk received; **ttfc** is the time from starting a stream to its "
          "first content chunk; **gap p99** the 99th percentile between consecutive chunks of a stream. Peers: Rust — reqwest "
          "reading the body and splitting SSE lines itself, parsing each payload into the same `Chunk` type; Python — aiohttp "
          "(`TCPConnector(limit=0)`) reading lines and `json.loads`, and the openai SDK's `stream=True` over an httpx pool "
          "without a connection cap; Node — `node:http` with a keep-alive Agent (`maxSockets` = streams) splitting lines and "
          "`JSON.parse`, and openai-node's `stream: true` (its fetch has no per-host cap); Go — Bifrost's Go core embedded "
          "(`ChatCompletionStreamRequest`, its channel read to the end; bench/go/stream.go). `complete` says every stream "
          "delivered the same number of chunks.\n")
        w("![streams](img/streams.png)\n")
        ratios = stream_ratios(srows)
        if ratios:
            w("bifrost's CPU per chunk over its peer's, and its chunks/s over the peer's, per cell (streams @ ms between chunks):\n")
            for lang, mine, peer, target, got in ratios:
                cells = "; ".join(f"{n:,} @ {d} ms: CPU {c:.2f}×, chunks/s {t:.2f}×" for n, d, c, t in got)
                aim = f" (target ≤ {target:.2f}×)" if target else ""
                w(f"- {lang}, `{mine}` / `{peer}`{aim}: {cells}")
            w("")
        trs = []
        for r in sorted(srows, key=lambda r: (r["chunk_delay_ms"], r["streams"], r["lang"], r["cpu_us_per_chunk"])):
            trs.append([f"{r['streams']:,}", r["chunk_delay_ms"], r["client"], fmt(r["chunks_per_s"]), fmt(r["cpu_us_per_chunk"], 1),
                        fmt(r.get("ttfc_p50_ms"), 1), fmt(r.get("gap_p99_ms"), 1), "yes" if r.get("complete") else "**no**"])
        w(table(["streams", "ms between chunks", "client", "chunks/s", "CPU µs/chunk", "ttfc p50 ms", "gap p99 ms", "complete"], trs))
        w("")
        w("Commands: " + "; ".join(f"`{clean_cmd(x['command'])}`" for x in data["status"] if x["scenario"].startswith("stream-") and x["command"]) + "\n")

    # --- 10k in flight
    irows = data.get("inflight") or []
    if irows:
        n, lat = irows[0]["inflight"], irows[0]["latency_ms"]
        w(f"## {n:,} in flight at {lat / 1000:g} s\n")
        w(f"Closed loop: {n:,} requests kept in flight against a `bifrost-mock` that answers each after {lat} ms (2 worker "
          "threads), 2 s of warm-up, then 5 s measured; lane *i* of N starts *i*/N of a latency late, so completions "
          "arrive spread evenly (started together, all of them would come back in one wave per round trip and the "
          "window's count would depend on where the waves fall), and a request counts when it ends inside the window. "
          "The ideal rate is in-flight ÷ latency; **of ideal** is the rate "
          "achieved over it (the target is ≥ 95 %). **RSS** is the client process's resident memory near the end of the "
          "window with every request in flight, and **per in flight** that over the requests in flight (the target is "
          "≤ 16 KiB). **added p99** is the 99th-percentile latency minus the mock's. Peers are configured without a "
          f"connection cap (Node's Agent `maxSockets` = {n:,}, aiohttp `TCPConnector(limit={n:,})`, reqwest has none).\n")
        trs = []
        for r in sorted(irows, key=lambda r: (r["lang"], r["client"])):
            trs.append([r["client"], fmt(r["req_s"]), f"{r['of_ideal'] * 100:.1f} %" if r.get("of_ideal") else "–",
                        fmt(r.get("cpu_us_per_req"), 1), f"{r['rss_kib'] / 1024:,.0f} MiB" if r.get("rss_kib") else "–",
                        f"{r['kib_per_inflight']:.1f} KiB" if r.get("kib_per_inflight") else "–",
                        fmt((r["p99_us"] / 1000 - r["latency_ms"]) if r.get("p99_us") else None, 1), r.get("errors", 0)])
        w(table(["client", "req/s", "of ideal", "client CPU µs/req", "RSS", "per in flight", "added p99 ms", "errors"], trs))
        w("")
        w("Where the memory per request goes (heaptrack on `bench_openloop --client bifrost --closed 10000`, the peak "
          "heap by allocation site): most of it is the HTTP/1 connection each request in flight holds, and hyper, "
          "under reqwest (ours and the peer's alike), allocates three blocks per connection before a byte is sent — "
          "the dispatch channel's first block (tokio's unbounded mpsc allocates 32 slots of the request envelope, "
          "about 9 KiB), the connection's header write buffer (`Vec::with_capacity(8192)`) and its read buffer "
          "(8 KiB). That is about 25 KiB per connection; plain reqwest's RSS per request in flight is that plus its "
          "task and request. bifrost adds the worker task that runs the request (about 4.9 KiB: the worker's future "
          "with the attempt inline) and the job. hyper also opens more connections than requests in flight (10,000 "
          "to 12,700 here): a request that finds no idle connection starts a connect and takes whichever comes "
          "first, and the connection that lost the race stays idle in the pool. 16 KiB per request in flight is "
          "below what hyper's HTTP/1 client holds per connection; meeting it needs smaller per-connection buffers "
          "than hyper allows through reqwest, or HTTP/2 multiplexing — not done.\n")
        w("Commands: " + "; ".join(f"`{clean_cmd(x['command'])}`" for x in data["status"] if x["scenario"].startswith("inflight") and x["command"]) + "\n")

    # --- overhead vs Bifrost published
    w("## Added latency: bifrost versus Bifrost's published figures\n")
    w(table(["what", "added µs", "how it is measured"], h["added_rows"]))
    w("")
    w("How the measurements differ: Bifrost's 11 µs / 59 µs are its own published overhead of the Go **HTTP gateway** at "
      "5,000 requests/s on an AWS t3.xlarge / t3.medium, with the upstream mocked — time spent inside a gateway process "
      "that the client reaches over the network, measured by the gateway. Ours is **in-process added latency**: a library "
      "call (no gateway hop) against `bifrost-mock` over loopback HTTP, on 2 shared cores where client and mock compete "
      "for CPU, at 1k and 3k requests/s (open loop) or 1 request in flight (closed loop), measured end to end by the "
      "client, with a plain HTTP client doing the same POST as the floor. The Go rows apply the same method to Bifrost's "
      "Go core embedded as a library (versus Go `net/http`), so our Rust and Go rows are like for like; the published "
      "figures are not.\n")
    w("A difference of a few µs between two clients is below this machine's noise: single runs move by ±10–20 µs (other "
      "builds, frequency changes), so a small or negative value means the overhead is below this run's resolution, not "
      "that the library is faster than the bare client. The CPU per request columns are the steadier measure of work done.\n")
    cmds = [f"`{c}`" for c in (cmd_of(st, "http"), cmd_of(st, "go-0-1"), cmd_of(st, "gohttp-0-1")) if c]
    w("Commands: " + ", ".join(cmds + (["the open-loop commands above"] if ol else [])) + ".\n")

    # --- throughput
    w("## Throughput and latency at fixed concurrency (closed loop)\n")
    w("N lanes, each sending its next request as soon as the previous one is answered (lane *i* starts *i*/N of "
      "the mock's latency late; requests that end inside the measured window count). Client CPU is µs of CPU per "
      "request of the whole client process (user + system); mock CPU is bifrost-mock's, per request. `vs floor` = "
      "requests/s relative to `wrk` at the same concurrency and latency, in this run.\n")
    inflights = sorted({r["inflight"] for r in data["throughput"]})
    for lat in (0, 50):
        rows = sorted([r for r in data["throughput"] if r["latency_ms"] == lat], key=lambda r: (r["inflight"], -r["req_s"]))
        if not rows:
            continue
        w(f"### Mock latency {lat} ms\n")
        floor = {r["inflight"]: r["req_s"] for r in rows if r["client"].startswith("wrk")}
        trs = []
        for r in rows:
            f = floor.get(r["inflight"])
            unsteady = r["p50_us"] >= 1e6  # a median round trip of a second or more: a short cell is no steady state
            trs.append([r["client"] + ("²" if unsteady else ""), r["inflight"], fmt(r["req_s"]), fmt(r["p50_us"]), fmt(r["p99_us"]),
                        fmt(r.get("cpu_us_per_req"), 1), fmt(r.get("mock_cpu_us_per_req"), 1),
                        (f"{r['req_s'] / f:.2f}×" if r['req_s'] / f >= 0.1 else f"{r['req_s'] / f:.3f}×") if f else "–"])
        w(table(["client", "in flight", "req/s", "p50 µs", "p99 µs", "client CPU µs/req", "mock CPU µs/req", "vs floor"], trs))
        w("")
    if any("in-process mock" in r["client"] for r in data["throughput"]):
        w("¹ These Rust rows come from the Rust HTTP bench, whose bifrost-mock runs inside the bench process on one tokio "
          "thread (client CPU not separable); every other row talks to a separate bifrost-mock process with 2 worker threads.\n")
    if any(r["p50_us"] >= 1e6 for r in data["throughput"]):
        w("² Median round trip of a second or more: the cell lasts only a few round trips, so this is what the client "
          "completed in the window, not a steady state — at this concurrency it is far past its capacity anyway.\n")
    w("`wrk` opens all its connections at the start of its cell, with no warm-up; the mock listens with an accept queue of "
      "4096 so that burst is not dropped (a dropped SYN is retried only after 1 s). If the scenario log still notes "
      "listen-queue overflows, `wrk` at 1024 fell below clients that warmed up first, and `vs floor` above 1 there is that "
      "artefact.\n")
    w("At 50 ms with few requests in flight, `wrk` is not a ceiling: with short cells its connection ramp-up costs a "
      "visible share of the window, so `vs floor` above 1 there means 'as fast as the upstream allows', not 'faster "
      "than the machine'. At 50 ms the ceiling of a client that keeps N requests in flight is N / 50 ms "
      "(1,280 / 5,120 / 20,480 req/s at 64 / 256 / 1024); below it, the client or the shared CPU is the limit.\n")

    # --- ratios
    trows = data["throughput"]
    cols = [(lat, c) for lat in (0, 50) for c in inflights if c > 1 and any(r["latency_ms"] == lat and r["inflight"] == c for r in trows)]
    rrows = []
    for label, num, den in RATIOS:
        vals = []
        for lat, c in cols:
            a, b = find(trows, num, lat, c), find(trows, den, lat, c)
            vals.append(f"{a['req_s'] / b['req_s']:.2f}×" if a and b else "–")
        if any(x != "–" for x in vals):
            rrows.append([label] + vals)
    if rrows:
        w("### Ratios within this run (requests/s)\n")
        w(table(["comparison"] + [f"{lat} ms, {c}" for lat, c in cols], rrows))
        w("")

    # --- Node: CPU of the JS thread itself (what an application's event loop pays)
    js = [r for r in trows if r.get("js_cpu_us_per_req") is not None]
    if js:
        jcols = [(lat, c) for lat, c in cols if any(r["latency_ms"] == lat and r["inflight"] == c for r in js)]
        jrows = []
        for client in sorted({r["client"] for r in js}):
            vals = []
            for lat, c in jcols:
                m = [r for r in js if r["client"] == client and r["latency_ms"] == lat and r["inflight"] == c]
                vals.append(fmt(m[0]["js_cpu_us_per_req"], 1) if m else "–")
            jrows.append([client] + vals)
        w("### Node: JS-thread CPU per request (µs)\n")
        w("CPU time (user + system) of the Node main thread, the event loop, per completed request, read from "
          "`/proc/self/task/<pid>/stat` by `bench/node/bench.js`; with bifrost, HTTP, the pool and the serializing of responses run on "
          "bifrost's own threads; the event loop keeps the promise work and one `JSON.parse` per batch of completions.\n")
        w(table(["client"] + [f"{lat} ms, {c}" for lat, c in jcols], jrows))
        w("")

    def ratio_range(num, den, lat):
        rs = [a["req_s"] / b["req_s"] for c in inflights if c > 1
              for a, b in [(find(trows, num, lat, c), find(trows, den, lat, c))] if a and b]
        return (min(rs), max(rs)) if rs else None

    why = []
    rr, gg, cr = (ratio_range("rust: bifrost", "rust: plain reqwest", 0), ratio_range("go: Bifrost core", "go: net/http", 0),
                  ratio_range("c: bifrost", "rust: bifrost", 0))
    if rr and rr[0] < 0.97:
        why.append(f"**A bare HTTP client at 0 ms**: plain `reqwest` moves {1 / rr[1]:.2f}–{1 / rr[0]:.2f}× the requests/s of "
                   "Rust bifrost here" + (f" (and Go `net/http` {1 / gg[1]:.2f}–{1 / gg[0]:.2f}× Bifrost's Go core)" if gg and gg[0] < 0.97 else "")
                   + ". With a zero-latency upstream on 2 shared cores, throughput is client CPU, and a gateway does more per "
                   "request than a bare POST: the job goes through the provider's bounded queue to a worker task (a hand-off "
                   "between tasks), is counted in the stats, and the request and response are built and parsed as typed "
                   "values (compare the client CPU µs/req columns). With a real upstream latency (50 ms) the gap closes.")
    if cr and cr[0] < 0.97:
        why.append(f"**The C API at 0 ms** moves {cr[0]:.2f}–{cr[1]:.2f}× the requests/s of Rust bifrost: every request crosses "
                   "the C ABI as JSON text (parsed in, the response serialized out to a C string) and completes through a "
                   "callback on a runtime thread, work the Rust API does not do.")
    if why:
        w("Where a peer wins, and why:\n")
        for x in why:
            w(f"- {x}")
        w("")
    w("Commands: " + "; ".join(f"`{c}`" for c in h["throughput_commands"] if c) + "\n")

    # --- Rust HTTP vs reqwest
    if data["http"]:
        w("## Rust: bifrost over HTTP versus plain reqwest, in-process mock (0 ms)\n")
        w(table(["in flight", "reqwest req/s", "reqwest p50 µs", "reqwest p99 µs", "bifrost req/s", "bifrost p50 µs", "bifrost p99 µs", "added p50 µs", "p50 ratio"],
                [[r["inflight"], fmt(r["reqwest_rps"]), r["reqwest_p50_us"], r["reqwest_p99_us"], fmt(r["bifrost_rps"]), r["bifrost_p50_us"],
                  r["bifrost_p99_us"], r["added_p50_us"], f"{r['p50_ratio']:.2f}"] for r in data["http"]]))
        w(f"\nCommand: `{cmd_of(st, 'http')}` (bifrost-mock inside the bench process on one tokio thread; rounds alternate "
          "between the clients).\n")

    # --- pool machinery
    if data["pool"] or data["alloc"]:
        w("## Pool machinery (embedded zero-latency mock provider, no network)\n")
        if data["pool"]:
            plain = [r for r in data["pool"] if not r.get("limits")]
            w(table(["submitters", "jobs/s (mean)", "95 % CI", "ns per job"],
                    [[r["submitters"], fmt(r["jobs_per_s"]), f"{r['jobs_per_s_ci'][0]:,.0f} – {r['jobs_per_s_ci'][1]:,.0f}", fmt(r["ns_per_job"])] for r in plain]))
            w(f"\nCommand: `{cmd_of(st, 'pool')}` (criterion; 65,536 jobs per iteration).\n")
            off = {r["submitters"]: r for r in plain}
            rows = [[r["submitters"], fmt(off[r["submitters"]]["jobs_per_s"]), fmt(r["jobs_per_s"]),
                     f"{r['ns_per_job'] - off[r['submitters']]['ns_per_job']:+,.0f}",
                     f"{(r['jobs_per_s'] / off[r['submitters']]['jobs_per_s'] - 1) * 100:+.1f} %"]
                    for r in data["pool"] if r.get("limits") and r["submitters"] in off]
            if rows:
                w("Admission cost of `limits` (the same runs, a provider with request and token limits that never bind: "
                  "every job takes its claims at admission and settles its tokens after):\n")
                w(table(["submitters", "jobs/s, no limits", "jobs/s, limits", "ns per job added", "throughput change"], rows))
        if data["alloc"]:
            a = data["alloc"]
            w(f"Allocations: {a['allocs_per_job']:.1f} allocations and {a['bytes_per_job']:,.0f} bytes per job (64 submitters, "
              f"{a['jobs_per_s']:,.0f} jobs/s under the counting allocator). Command: `{cmd_of(st, 'alloc')}`.\n")
        pools = ((data.get("backpressure") or {}).get("memory") or {}).get("growth", {}).get("object_pools")
        if pools:
            w("Object-pool hit ratios after the 1M-request memory run (HTTP provider):\n")
            w(table(["pool", "requests", "hits", "misses", "hit ratio"],
                    [[k, p.get("requests"), p.get("hits"), p.get("misses"),
                      f"{p['hits'] / p['requests']:.4f}" if p.get("requests") else "–"] for k, p in pools.items()]))
            w("")

    # --- fleet limits on Redis
    fl = data.get("fleet")
    if fl:
        w("## Fleet limits on Redis (`limits_store: redis`)\n")
        w(f"A real `redis-server` {fl.get('redis_version', '')} on loopback, started by the benchmark; processes are Python "
          "(`bench/fleet/child.py`), each with its own gateway.\n")
        w("Admission, one process: jobs submitted at once to the in-process mock provider, limits that never bind, so only "
          "admission differs. With the Redis store, the worker that starts a pool's front job asks Redis outside the queue "
          "lock, for as many front jobs as there are workers waiting to start them (up to 16, one script call); the "
          "settlements go through one writer that merges them:\n")
        w(table(["setup", "jobs", "jobs/s", "µs per job", "script calls per job", "Redis commands per job", "settlements dropped"],
                [[r["setup"], r["jobs"], fmt(r["jobs_per_s"]), f"{r['us_per_job']:.1f}", f"{r['script_calls_per_job']:.2f}",
                  f"{r['redis_commands_per_job']:.2f}", r.get("dropped_writes", 0)] for r in fl["admission"]]))
        w("\nThroughput, 4 processes against one bifrost-mock over HTTP (0 ms), limits that never bind:\n")
        w(table(["setup", "jobs", "jobs/s (all 4)"], [[r["setup"], r["jobs"], fmt(r["jobs_per_s"])] for r in fl["throughput"]]))
        ol = fl.get("over_limit") or []
        if ol:
            o0 = ol[0]
            w(f"\nKeeping one limit, 4 processes for {o0['seconds']:g} s each: bifrost-mock allows {o0['limit_per_minute']} "
              "requests in any 60 s (a sliding log, like a provider) and answers 429 past it, so its 429s are the requests "
              f"over the limit. bifrost: `requests_per_minute` {o0['limit_per_minute'] - 10}, `burst` 10 (no 60 s window can "
              f"hold more than {o0['limit_per_minute']}), in Redis. LiteLLM: a Router deployment with `rpm` "
              f"{o0['limit_per_minute']}, `routing_strategy` usage-based-routing-v2 and the same Redis (its documented "
              "multi-instance setup). Each process runs 8 request loops; a refused request is retried 5 ms later.\n")
            w(table(["client", "sent to the mock", "admitted", "over the limit (429)", "refused by the client", "completed",
                     "rate while admitting, per minute", "densest 60 s admitted"],
                    [[r["client"], r["sent"], r["admitted"], r["over_limit_429"], r["client_refusals"], r["ok"],
                      f"{(r['admitted'] - 1) / r['span_s'] * 60:.0f}" if r.get("span_s") else "–", r.get("densest_60s", "–")]
                     for r in ol]))
            w("\n(A run lasts past its seconds while the requests already waiting for capacity drain: bifrost's queued "
              "jobs wait for the bucket instead of being refused.)\n")
        w(f"\nCommand: `{cmd_of(st, 'fleet')}`.\n")

    # --- C
    if data["c"]:
        w("## C API versus Rust API (submit → wait round trip, embedded zero-latency mock)\n")
        w(table(["threads", "C ns", "Rust ns", "Rust+JSON ns", "C / Rust", "C / (Rust+JSON)"],
                [[r["threads"], r["c_ns"], r["rust_ns"], r["rust_json_ns"], f"{r['c_over_rust']:.2f}×", f"{r['c_over_rust_json']:.2f}×"] for r in data["c"]]))
        w(f"\nCommand: `{cmd_of(st, 'c')}` (median of rounds).\n")

    # --- backpressure
    bp = data.get("backpressure")
    if bp:
        w("## Backpressure: a burst of 10 × buffer_size under each queue policy\n")
        b0 = bp["backpressure"][0]
        w(f"Embedded mock provider at {b0['mock_latency_ms']} ms, {b0['workers']} workers, buffer_size {b0['buffer_size']}, "
          f"`queue.wait_timeout_ms` {b0['wait_timeout_ms']}; {b0['burst']} submissions started at once (one task each). "
          f"The wait limit is deliberately shorter than the time a full queue takes to drain "
          f"({b0['buffer_size']} / {b0['workers']} × {b0['mock_latency_ms']} ms = {b0['buffer_size'] * b0['mock_latency_ms'] // b0['workers']} ms), "
          "so jobs queued near the back end QUEUE_TIMEOUT (`timed out`) under every policy; 'accepted' counts completed jobs only. "
          "`invariant` is the stats identity submitted = queued + running + completed + failed + dropped + rejected + timed_out + cancelled.\n")
        w(table(["policy", "accepted", "dropped", "rejected", "timed out", "other", "p50 accepted µs", "p99 accepted µs", "burst ms", "RSS before MiB", "RSS peak MiB", "invariant"],
                [[r["policy"], r["accepted"], r["dropped"], r["rejected"], r["timed_out"], r["other"], r["accepted_p50_us"], r["accepted_p99_us"],
                  r["burst_ms"], f"{r['rss_before_kib'] / 1024:.1f}", f"{r['rss_peak_kib'] / 1024:.1f}", "holds" if r["invariant_holds"] else "BROKEN"]
                 for r in bp["backpressure"]]))
        w("")
        q, g = bp["memory"]["queued_10k"], bp["memory"]["growth"]
        w("## Memory\n")
        w(table(["measure", "value"], [
            ["RSS with 10k jobs queued (before → with queue)", f"{q['rss_before_kib'] / 1024:.1f} → {q['rss_with_queue_kib'] / 1024:.1f} MiB (~{q['bytes_per_queued_job']:,.0f} B per queued job)"],
            [f"RSS after {g['requests_small']:,} requests", f"{g['rss_after_small_kib'] / 1024:.1f} MiB"],
            [f"RSS after {g['requests_large']:,} requests", f"{g['rss_after_large_kib'] / 1024:.1f} MiB"],
            ["growth between the two", f"{g['growth_kib']:+,} KiB ({g['growth_bytes_per_request']:+.3f} B per request)"],
            ["throughput of that run", f"{g['req_s']:,.0f} req/s ({g['upstream']})"],
        ]))
        w(f"\nCommand: `{cmd_of(st, 'backpressure')}`.\n")

    w("## Scenario log\n")
    w("`note`: the CPU cores other jobs kept busy just before the scenario (the run waits, within a budget, for them to "
      "calm down), and any accept-queue overflows of the mock during it (a dropped SYN is retried after 1 s, which "
      "shows as a ~1 s latency outlier and lowers that cell's requests/s).\n")
    w(table(["scenario", "status", "seconds", "note", "command"],
            [[x["scenario"], x["status"], x["seconds"], x.get("note", ""), f"`{clean_cmd(x['command'])}`" if x["command"] else ""] for x in st]))
    w("")
    return "\n".join(L)


def headline(data):
    lines, added = [], []
    t = data["throughput"]
    ol = data.get("openloop") or []

    def get(client_prefix, lat, conc):
        return find(t, client_prefix, lat, conc)

    for conc in sorted({r["inflight"] for r in t if r["inflight"] > 1}):
        rs, go, wrk = get("rust: bifrost", 0, conc), get("go: Bifrost core", 0, conc), get("wrk", 0, conc)
        gh, cc = get("go: net/http", 0, conc), get("c: bifrost", 0, conc)
        py, aio = get("python: bifrost", 0, conc), get("python: aiohttp", 0, conc)
        nd, nh, no = get("node: bifrost", 0, conc), get("node: node http", 0, conc), get("node: openai", 0, conc)
        parts = []
        if rs:
            parts.append(f"Rust bifrost {rs['req_s']:,.0f} req/s")
        if go:
            parts.append(f"Bifrost Go core {go['req_s']:,.0f} req/s" + (f" (Rust/Go {rs['req_s'] / go['req_s']:.2f}×)" if rs else ""))
        if gh:
            parts.append(f"Go net/http {gh['req_s']:,.0f}")
        if cc:
            parts.append(f"C bifrost {cc['req_s']:,.0f}")
        if wrk:
            parts.append(f"wrk floor {wrk['req_s']:,.0f}")
        if py and aio:
            parts.append(f"Python bifrost/aiohttp {py['req_s'] / aio['req_s']:.2f}×")
        if nd and nh:
            parts.append(f"Node bifrost/http {nd['req_s'] / nh['req_s']:.2f}×")
        if nd and no:
            parts.append(f"Node bifrost/(openai + p-limit) {nd['req_s'] / no['req_s']:.1f}×")
        if parts:
            lines.append(f"0 ms mock, {conc} in flight: " + ", ".join(parts) + ".")
    # open loop: added p50 over the reqwest floor, per language, at the highest rate
    if ol:
        for lat in (0, 50):
            rates = sorted({r["rate"] for r in ol if r["latency_ms"] == lat})
            if not rates:
                continue
            rate = rates[-1]
            floor = ol_find(ol, FLOOR, lat, rate)
            parts = []
            for label, prefix, peer, peer_label in (("Rust", "rust: bifrost", None, ""), ("C", "c: bifrost", None, ""),
                                                    ("Python", "python: bifrost", "python: aiohttp", "raw aiohttp"),
                                                    ("Node", "node: bifrost", "node: node http", "Node http")):
                r = ol_find(ol, prefix, lat, rate)
                if r and r.get("completed"):
                    txt = f"{label} {r['added_p50_us']:,} µs"
                    extra = []
                    if floor and floor.get("completed"):
                        extra.append(f"{r['added_p50_us'] - floor['added_p50_us']:+,} over the floor")
                    q = ol_find(ol, peer, lat, rate) if peer else None
                    if q and q.get("completed"):
                        extra.append(f"{peer_label} {q['added_p50_us']:,} µs" + ("" if q.get("kept_up") else ", did not keep up"))
                    if extra:
                        txt += " (" + "; ".join(extra) + ")"
                    if not r.get("kept_up"):
                        txt += " — did not keep up"
                    parts.append(txt)
            g, gh = ol_find(ol, "go: Bifrost core", lat, rate), ol_find(ol, "go: net/http", lat, rate)
            if parts and floor:
                line = (f"Open loop at {rate:,.0f} req/s, {lat} ms mock: added p50 (round trip minus the mock's latency) is "
                        f"{floor['added_p50_us']:,} µs for plain reqwest (the floor); bifrost: " + ", ".join(parts))
                if g and gh and g.get("completed") and gh.get("completed"):
                    line += (f"; Bifrost's Go core {g['added_p50_us']:,} µs ({g['added_p50_us'] - gh['added_p50_us']:+,} over Go net/http)")
                lines.append(line + ".")
        behind = sorted({f"{r['client']} at {r['rate']:,.0f}/s, {r['latency_ms']} ms mock (achieved {r['achieved_rps']:,.0f}/s, "
                         f"median added {r['added_p50_us'] / 1000:,.1f} ms)" for r in ol if not r.get("kept_up")})
        if behind:
            lines.append("Could not keep up with the open-loop rate: " + "; ".join(behind) + ".")
        else:
            lines.append("Every client kept up with every open-loop rate.")
        # One row per library: its added p50 over its floor in every open-loop cell of this run.
        cells = [(lat, rate) for lat in (0, 50) for rate in sorted({r["rate"] for r in ol if r["latency_ms"] == lat})]
        for label, prefix, floor_prefix, floor_name in (
                ("bifrost (Rust, in-process)", "rust: bifrost", FLOOR, "plain reqwest"),
                ("Bifrost Go core (embedded)", "go: Bifrost core", "go: net/http", "Go net/http")):
            vals, detail = [], []
            for lat, rate in cells:
                a, b = ol_find(ol, prefix, lat, rate), ol_find(ol, floor_prefix, lat, rate)
                if a and b and a.get("completed") and b.get("completed"):
                    vals.append(f"{a['added_p50_us'] - b['added_p50_us']:+,}")
                    detail.append(f"{rate / 1000:g}k/s {lat} ms: {a['added_p50_us']:,} vs {b['added_p50_us']:,}")
            if vals:
                added.append([f"{label}, open loop — this run", " / ".join(vals),
                              f"p50 of added latency over {floor_name} at the same rate, cells "
                              + ", ".join(f"{rate / 1000:g}k/s {lat} ms" for lat, rate in cells)
                              + f" (µs, {'; '.join(detail)}); loopback HTTP, 2 shared cores"])
    http1 = next((r for r in data["http"] if r["inflight"] == 1), None)
    if http1:
        mean_added = 1e6 / http1["bifrost_rps"] - 1e6 / http1["reqwest_rps"]
        added.append(["bifrost (Rust, in-process), 1 in flight, closed loop — this run", f"{http1['added_p50_us']:+d} (p50) / {mean_added:+.1f} (mean)",
                      f"p50 {http1['bifrost_p50_us']} µs vs plain reqwest {http1['reqwest_p50_us']} µs; mean = 1/throughput "
                      f"({1e6 / http1['bifrost_rps']:.1f} vs {1e6 / http1['reqwest_rps']:.1f} µs); mock in-process"])
    g1, h1 = get("go: Bifrost core", 0, 1), get("go: net/http", 0, 1)
    if g1 and h1:
        gmean = 1e6 / g1["req_s"] - 1e6 / h1["req_s"]
        added.append(["Bifrost Go core (embedded), 1 in flight, closed loop — this run", f"{g1['p50_us'] - h1['p50_us']:+.0f} (p50) / {gmean:+.1f} (mean)",
                      f"p50 {g1['p50_us']:.0f} µs vs Go net/http {h1['p50_us']:.0f} µs; mean {1e6 / g1['req_s']:.1f} vs {1e6 / h1['req_s']:.1f} µs"])
    for machine_, us in PUBLISHED:
        added.append([f"Bifrost HTTP gateway, published ({machine_})", f"{us}",
                      "Bifrost's own benchmark: overhead inside its HTTP gateway at 5,000 RPS on AWS, upstream mocked"])
    if http1:
        lines.append(f"Closed loop, 1 in flight (Rust HTTP bench): bifrost adds {http1['added_p50_us']:+d} µs at p50 over plain reqwest. "
                     "Bifrost publishes 11 µs (t3.xlarge) and 59 µs (t3.medium) for its HTTP gateway at 5k RPS — a different "
                     "measurement, see below.")
    bp = data.get("backpressure")
    if bp:
        g = bp["memory"]["growth"]
        lines.append(f"Memory: RSS {g['rss_after_small_kib'] / 1024:.1f} MiB after {g['requests_small']:,} requests, "
                     f"{g['rss_after_large_kib'] / 1024:.1f} MiB after {g['requests_large']:,} ({g['growth_kib']:+,} KiB).")
        ok = all(r["invariant_holds"] for r in bp["backpressure"])
        lines.append("Backpressure bursts: every job accounted for under all four policies." if ok else
                     "Backpressure bursts: the accounting invariant did NOT hold for some policy (see table).")
    st = data["status"]
    cmds = [cmd_of(st, name) for name in ("node", "python", "rust-bifrost-0", "rust-reqwest-0", "chttp-0", "go-0-64", "gohttp-0-64", "wrk-0-64")]
    olcmds = [cmd_of(st, name) for name in ("openloop-rust-reqwest-0", "openloop-rust-bifrost-0", "openloop-c-0", "openloop-node-0",
                                           "openloop-python-0", "openloop-go-0", "openloop-gohttp-0")]
    for r in data.get("inflight") or []:
        if "bifrost" in r["client"] and r.get("of_ideal"):
            lines.append(f"{r['inflight']:,} in flight at {r['latency_ms'] / 1000:g} s, `{r['client']}`: {r['of_ideal'] * 100:.1f} % of the ideal rate"
                         + (f", {r['kib_per_inflight']:.1f} KiB RSS per request in flight" if r.get("kib_per_inflight") else "")
                         + " (targets ≥ 95 %, ≤ 16 KiB)")
    for lang, mine, peer, target, got in stream_ratios(data.get("streams") or []):
        cpu = ", ".join(f"{n:,} streams @ {d} ms {c:.2f}×" for n, d, c, _ in got)
        lines.append(f"Streams, {lang}: CPU per chunk of `{mine}` / `{peer}`: {cpu}" + (f" (target ≤ {target:.2f}×)" if target else ""))
    return {"lines": lines, "added_rows": added, "throughput_commands": cmds, "openloop_commands": olcmds}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--raw", required=True)
    p.add_argument("--total-seconds", type=int, default=None)
    p.add_argument("--docs", default=os.path.join(ROOT, "docs"), help="where benchmarks.md and img/ go")
    p.add_argument("--json", default=None, help="results file (default bench/results/<date>.json)")
    args = p.parse_args()
    raw = os.path.abspath(args.raw)
    date = os.path.basename(raw).replace("raw-", "") or datetime.date.today().isoformat()
    status = json_lines(read(os.path.join(raw, "status.jsonl")))
    py_rows, py_doc = parse_python(raw)
    http = parse_http(raw)
    rust_rows = parse_closed(raw, "rust-*.out", "process CPU (incl. bifrost's runtime threads)")
    if not rust_rows:  # fall back to the Rust HTTP bench's cells (mock in-process)
        for r in http:
            if r["inflight"] > 1:
                rust_rows.append({"client": "rust: bifrost gw.chat (in-process mock¹)", "lang": "Rust", "latency_ms": 0, "inflight": r["inflight"], "req_s": r["bifrost_rps"],
                                  "p50_us": r["bifrost_p50_us"], "p99_us": r["bifrost_p99_us"], "cpu_us_per_req": None, "mock_cpu_us_per_req": None,
                                  "cpu_note": "mock in-process: not separable"})
                rust_rows.append({"client": "rust: plain reqwest (in-process mock¹)", "lang": "Rust", "latency_ms": 0, "inflight": r["inflight"], "req_s": r["reqwest_rps"],
                                  "p50_us": r["reqwest_p50_us"], "p99_us": r["reqwest_p99_us"], "cpu_us_per_req": None, "mock_cpu_us_per_req": None,
                                  "cpu_note": "mock in-process: not separable"})
    node_rows = parse_node(raw)
    throughput = (parse_cell(raw, "wrk", "wrk (native floor)", "C") + parse_cell(raw, "go", "go: Bifrost core (embedded)", "Go")
                  + parse_cell(raw, "gohttp", "go: net/http keep-alive", "Go") + rust_rows
                  + parse_closed(raw, "chttp-*.out", "process CPU (incl. bifrost's runtime threads)") + node_rows + py_rows)
    bp = None
    bp_text = read(os.path.join(raw, "backpressure.out"))
    if bp_text.strip():
        try:
            bp = json.loads(bp_text)
        except ValueError:
            bp = None
    env = os.environ.get
    data = {
        "date": date, "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "total_seconds": args.total_seconds,
        "settings": {"seconds_per_cell": float(env("BENCH_SECONDS", "3")), "inflight": env("BENCH_CONC", "64,256,1024"),
                     "openloop_seconds": float(env("BENCH_OPENLOOP_SECONDS", "5")), "openloop_warmup_s": float(env("BENCH_OPENLOOP_WARMUP", "0.5")),
                     "openloop_rates": env("BENCH_OPENLOOP_RATES", "1000,3000"),
                     "streams": env("BENCH_STREAMS", "256,1024"), "stream_seconds": float(env("BENCH_STREAM_SECONDS", "3"))},
        "machine": machine(), "versions": versions(), "status": status,
        "throughput": throughput, "openloop": parse_openloop(raw), "http": http, "pool": parse_pool(raw), "alloc": parse_alloc(raw),
        "c": parse_c(raw), "backpressure": bp, "python_raw": py_doc, "published_bifrost_us": dict(PUBLISHED),
        "fleet": load_json(os.path.join(raw, "fleet", "fleet.json")),
        "streams": parse_streams(raw),
        "inflight": parse_inflight(raw),
    }
    for s_ in data["settings"]:
        if isinstance(data["settings"][s_], float) and data["settings"][s_].is_integer():
            data["settings"][s_] = int(data["settings"][s_])
    if py_doc:
        data["versions"].update({f"py:{k}": v for k, v in (py_doc.get("versions") or {}).items()})
    for r in json_lines(read(os.path.join(raw, "node.out"))):
        for k, v in (r.get("versions") or {}).items():
            if k != "node":
                data["versions"][f"node:{k}"] = v
    data["headline"] = headline(data)
    out_json = args.json or os.path.join(ROOT, "bench", "results", f"{date}.json")
    os.makedirs(os.path.dirname(out_json), exist_ok=True)
    with open(out_json, "w") as f:
        json.dump(data, f, indent=1)
    note = plots(data, os.path.join(args.docs, "img"))
    md = render(data)
    if note:
        md = (md.replace("![throughput](img/throughput.png)\n", f"_{note}_\n").replace("![latency](img/latency.png)\n", "")
              .replace("![open loop](img/openloop.png)\n", "").replace("![streams](img/streams.png)\n", ""))
    os.makedirs(args.docs, exist_ok=True)
    with open(os.path.join(args.docs, "benchmarks.md"), "w") as f:
        f.write(md)
    print(f"# wrote {os.path.relpath(out_json, ROOT)}, {os.path.relpath(os.path.join(args.docs, 'benchmarks.md'), ROOT)}"
          + ("" if note else " and the plots in " + os.path.relpath(os.path.join(args.docs, "img"), ROOT)), file=sys.stderr)
    print("\n".join("  " + l for l in data["headline"]["lines"]), file=sys.stderr)


if __name__ == "__main__":
    main()
