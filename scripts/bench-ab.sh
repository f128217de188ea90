#!/usr/bin/env bash
# A/B comparison of builds of `tocsin` on the load test. The machine is shared and noisy, so the
# builds run alternately, RUNS times each, and each run also reports the CPU seconds of the
# server's threads (writer, checkpointer, Tokio workers) during its first scenario.
#
#   git stash; cargo build --release; cp target/release/tocsin /tmp/tocsin-before; git stash pop
#   cargo build --release; cp target/release/tocsin /tmp/tocsin-after
#   scripts/bench-ab.sh 3 a /tmp/tocsin-before /tmp/tocsin-after
#
# The load-test tool (BENCH_TOOL, default target/release/tocsin-bench, built by
# `cargo build --release --workspace`) is the same for both builds; only the server differs.
#
# Environment: EVENTS (default 100000), STEADY (seconds of scenario e, default 20),
# OUT (directory of the JSON results, default target/bench/ab).
set -euo pipefail
runs=$1
scenarios=$2
shift 2
out=${OUT:-target/bench/ab}
mkdir -p "$out"

# Samples /proc/<pid>/task/*/stat and io of the first `tocsin serve` until it exits; prints CPU
# seconds per thread name, and the bytes each thread wrote where over 1 MB (the SQLite writer's
# are the WAL it appended).
thread_cpu() {
    local pid="" snap="" sample
    for _ in $(seq 1 600); do
        pid=$(ps -eo pid,args | awk '$2 ~ /tocsin/ && $3 == "serve" {print $1; exit}')
        [ -n "$pid" ] && break
        sleep 0.1
    done
    [ -z "$pid" ] && return 0
    while [ -d "/proc/$pid" ]; do
        sample=$(for t in /proc/"$pid"/task/*; do
            name=$(cat "$t/comm" 2>/dev/null) || continue
            read -r -a f < <(sed 's/.*) //' "$t/stat" 2>/dev/null) || continue
            written=$(awk '/^wchar:/ {print $2}' "$t/io" 2>/dev/null)
            echo "$name ${f[11]} ${f[12]} ${written:-0}"
        done | awk '{cpu[$1] += $2 + $3; w[$1] += $4}
            END {for (k in cpu) printf "%s=%.2fs%s ", k, cpu[k] / 100, (w[k] >= 1e6 ? sprintf("/%.0fMB", w[k] / 1e6) : "")}')
        case "$sample" in *sqlite-writer*|*tokio*) snap="$sample" ;; esac
        sleep 0.2
    done
    echo "$snap"
}

for run in $(seq 1 "$runs"); do
    for bin in "$@"; do
        name=$(basename "$bin")
        thread_cpu > "$out/$name-$run.threads" &
        sampler=$!
        TOCSIN_BENCH_SERVER="$bin" "${BENCH_TOOL:-target/release/tocsin-bench}" --scenario "$scenarios" --events "${EVENTS:-100000}" --steady-secs "${STEADY:-20}" \
            --out "$out/$name-$run.json" > "$out/$name-$run.log" 2>&1 || echo "$name run $run failed: see $out/$name-$run.log"
        wait "$sampler" || true
        python3 - "$out/$name-$run.json" "$name" "$(cat "$out/$name-$run.threads")" <<'EOF'
import json, sys
path, name, threads = sys.argv[1:4]
parts = []
for s in json.load(open(path))["results"]:
    if s["scenario"] == "raw_ceiling":
        parts.append(f"raw {s['requests_per_sec']:.0f}/s")
        continue
    p = f"{s['scenario']} {s.get('deliveries_per_sec', '-')}/s ratio {s.get('ratio_to_raw_ceiling', '-')} cpu/1000 {s.get('cpu_seconds_per_1000_deliveries', '-')}"
    if s["scenario"] == "e":
        p += f" p50 {s['latency_ms']['p50']:.1f} p99 {s['latency_ms']['p99']:.1f} ms"
    parts.append(p)
print(f"{name}: " + " | ".join(parts) + f" | threads: {threads}")
EOF
    done
done
