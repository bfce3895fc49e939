"""One process of the fleet benchmark (bench/fleet/bench.py): its spec in
argv[1] as JSON; prints one JSON line of what it did.

Modes:
- `bifrost-jobs`: `jobs` requests through a bifrost Gateway (`config`),
  all submitted at once; reports the wall time.
- `bifrost-for`: `loops` concurrent loops of `achat` for `seconds`.
- `litellm-for`: the same loops through a LiteLLM Router whose deployment
  has `rpm` and whose usage lives in the Redis at `redis` (LiteLLM's
  documented multi-instance setup); a request LiteLLM itself refuses is
  retried 5 ms later.
"""

import asyncio
import json
import os
import sys
import time


def bifrost_jobs(spec):
    import bifrost

    gw = bifrost.Gateway(spec["config"])
    req = {"model": spec["model"], "messages": [{"role": "user", "content": "hi"}]}
    # Warm the connections and the store's scripts first.
    for _ in range(20):
        gw.chat(req)
    t0 = time.perf_counter()
    jobs = [gw.submit(req) for _ in range(spec["jobs"])]
    for j in jobs:
        j.result(timeout=300)
    elapsed = time.perf_counter() - t0
    store = next(iter(gw.stats()["providers"].values())).get("limits_store") or {}
    gw.shutdown(10.0)
    return {"jobs": spec["jobs"], "seconds": elapsed, "dropped_writes": store.get("dropped_writes", 0)}


async def loops(call, n, seconds):
    end = time.monotonic() + seconds
    counts = {"ok": 0, "refused": 0}

    async def one():
        while time.monotonic() < end:
            try:
                await call()
                counts["ok"] += 1
            except Exception:  # noqa: BLE001 (a refusal of either kind is counted, then retried)
                counts["refused"] += 1
                await asyncio.sleep(0.005)

    await asyncio.gather(*(one() for _ in range(n)))
    return counts


def bifrost_for(spec):
    import bifrost

    gw = bifrost.Gateway(spec["config"])
    req = {"model": spec["model"], "messages": [{"role": "user", "content": "hi"}], "timeout_ms": 120000}
    counts = asyncio.run(loops(lambda: gw.achat(req), spec["loops"], spec["seconds"]))
    gw.shutdown(10.0)
    return counts


def litellm_for(spec):
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    host, port = spec["redis"].split(":")
    router = litellm.Router(
        model_list=[{
            "model_name": "m",
            "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": spec["mock"], "api_key": "mock-key",
                               "rpm": spec["rpm"]},
        }],
        redis_host=host,
        redis_port=int(port),
        routing_strategy="usage-based-routing-v2",
        num_retries=0,
    )
    msgs = [{"role": "user", "content": "hi"}]
    return asyncio.run(loops(lambda: router.acompletion(model="m", messages=msgs), spec["loops"], spec["seconds"]))


def main():
    spec = json.loads(sys.argv[1])
    run = {"bifrost-jobs": bifrost_jobs, "bifrost-for": bifrost_for, "litellm-for": litellm_for}[spec["mode"]]
    print(json.dumps(run(spec)), flush=True)


if __name__ == "__main__":
    main()
