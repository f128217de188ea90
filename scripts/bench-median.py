#!/usr/bin/env python3
"""Medians of several `tocsin bench` result files, per scenario and figure.

    python3 scripts/bench-median.py target/bench/sqlite-run*.json

Besides the tool's own figures, each scenario compared with the raw ceiling ((a)-(d)) gets
`server_cpu_in_raw_requests`: the server's CPU per delivery divided by the raw ceiling client's
CPU per request, measured just before it in the same run. The machine's speed drifts by +-20%
within minutes and moves both alike, so this quotient varies far less from run to run than
either figure does.
"""
import json
import statistics
import sys

FIGURES = [
    "requests_per_sec", "events_per_sec_accepted", "deliveries_per_sec", "ratio_to_raw_ceiling",
    "drain_deliveries_per_sec", "rss_mib_holding_backlog", "peak_rss_mib", "cpu_seconds_per_1000_deliveries",
    "sink_cpu_seconds_per_1000_deliveries", "load_test_cpu_seconds_per_1000_deliveries",
    "client_cpu_seconds_per_1000_requests", "sink_cpu_seconds_per_1000_requests",
    "duplicates", "lost", "latency_ms.p50", "latency_ms.p95", "latency_ms.p99",
    "machine_cpu.idle_percent", "machine_cpu.steal_percent", "server_cpu_in_raw_requests",
]


def get(result, path):
    value = result
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value if isinstance(value, (int, float)) else None


runs = [json.load(open(path)) for path in sys.argv[1:]]
by_scenario = {}
for run in runs:
    raw_client = None
    for result in run["results"]:
        if result["scenario"] == "raw_ceiling":
            raw_client = get(result, "client_cpu_seconds_per_1000_requests")
        elif "raw_ceiling" in result:  # compared with the raw ceiling measured just before it
            server = get(result, "cpu_seconds_per_1000_deliveries")
            if server and raw_client:
                result["server_cpu_in_raw_requests"] = round(server / raw_client, 2)
        by_scenario.setdefault(result["scenario"], []).append(result)
for scenario, results in by_scenario.items():
    line = []
    for figure in FIGURES:
        values = [v for v in (get(r, figure) for r in results) if v is not None]
        if values:
            line.append(f"{figure}={statistics.median(values):g}")
    print(f"{scenario} (n={len(results)}): " + ", ".join(line))
