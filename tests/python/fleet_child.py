"""One process of the fleet test (tests/node/fleet.test.js): its own
Gateway on the shared Redis store; submits FLEET_SPEC["jobs"] requests at
once and prints {"ok": n}. The same config as tests/node/fleet_child.js.
(Not a test module: pytest collects test_*.py only.)"""

import json
import os

import bifrost


def main() -> None:
    spec = json.loads(os.environ["FLEET_SPEC"])
    gw = bifrost.Gateway(spec["config"])
    jobs = [
        gw.submit({"model": spec["model"], "messages": [{"role": "user", "content": f"python {os.getpid()} {i}"}]})
        for i in range(spec["jobs"])
    ]
    ok = sum(1 for j in jobs if j.result(timeout=120)["object"] == "chat.completion")
    store = gw.stats()["providers"]["o"]["limits_store"]
    assert store["up"], store
    gw.shutdown(10.0)
    print(json.dumps({"ok": ok}), flush=True)


if __name__ == "__main__":
    main()
