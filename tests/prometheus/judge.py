"""Checks bifrost's Prometheus text with the official parser (prometheus_client).

Usage: judge.py METRICS_TXT EXPECTED_JSON

EXPECTED_JSON maps a histogram family name to {le: cumulative count}; every
family in it must parse as a histogram whose buckets match exactly, are
cumulative, and end at `_count`. Exits non-zero with a message otherwise.
Called by the Rust unit test `stats::tests::prometheus_buckets_pass_the_official_judges`.
"""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    text = open(sys.argv[1], encoding="utf-8").read()
    expected = json.load(open(sys.argv[2], encoding="utf-8"))
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, want in expected.items():
        fam = families.get(name)
        if fam is None or fam.type != "histogram":
            print(f"{name}: not parsed as a histogram ({fam and fam.type})")
            return 1
        buckets = [(s.labels["le"], s.value) for s in fam.samples if s.name == name + "_bucket"]
        count = [s.value for s in fam.samples if s.name == name + "_count"]
        got = {le: v for le, v in buckets}
        bounds = sorted((float(le), v) for le, v in buckets)
        if [v for _, v in bounds] != sorted(v for _, v in bounds):
            print(f"{name}: buckets not cumulative: {bounds}")
            return 1
        if not bounds or not math.isinf(bounds[-1][0]) or count != [bounds[-1][1]]:
            print(f"{name}: +Inf bucket {bounds[-1:]} != _count {count}")
            return 1
        for le, v in want.items():
            match = [g for k, g in got.items() if float(k) == float(le)]
            if match != [float(v)]:
                print(f"{name}: le={le} expected {v}, parsed {match}")
                return 1
    print(f"ok: {len(expected)} histograms, {len(families)} families")
    return 0


if __name__ == "__main__":
    sys.exit(main())
