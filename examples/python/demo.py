"""bifrost from Python: 5,000 asyncio requests through two mock providers,
one of which sheds load (drop_oldest), then the stats. No API keys needed.

    python examples/python/demo.py
"""

import asyncio
import time

import bifrost

CONFIG = {
    "providers": {
        "steady": {"kind": "mock", "mock": {"latency_ms": 5, "jitter_ms": 5},
                   "concurrency_and_buffer_size": {"concurrency": 64, "buffer_size": 1000}},
        "bursty": {"kind": "mock", "mock": {"latency_ms": 20, "failure_rate": 0.05},
                   "concurrency_and_buffer_size": {"concurrency": 8, "buffer_size": 100},
                   "queue": {"policy": "drop_oldest"}},
    }
}


async def main() -> None:
    async with bifrost.Gateway(CONFIG) as gw:
        started = time.perf_counter()

        async def one(i: int) -> str:
            provider = "steady" if i % 2 == 0 else "bursty"
            try:
                await gw.achat({"model": f"{provider}/demo", "messages": [{"role": "user", "content": f"hi {i}"}],
                                "fallbacks": ["steady/demo"] if provider == "bursty" else []})
                return "ok"
            except bifrost.BifrostError as e:
                return e.kind

        results = await asyncio.gather(*(one(i) for i in range(5000)))
        elapsed = time.perf_counter() - started
        print(f"{results.count('ok')} of {len(results)} succeeded in {elapsed:.2f} s ({len(results) / elapsed:.0f} req/s)")
        for name, p in gw.stats()["providers"].items():
            j = p["jobs"]
            print(f"  {name:7} submitted {j['submitted']:5}  completed {j['completed']:5}  failed {j['failed']:4}  "
                  f"dropped {j['dropped']:4}  served as fallback {j['fallbacks_served']:4}  "
                  f"queue p99 {p['latency_us']['queue_wait']['p99']} µs")


if __name__ == "__main__":
    asyncio.run(main())
