#!/usr/bin/env bash
# The load test: builds the release binary and runs `tocsin-bench` (tools/bench) (it starts its own sink and
# servers on 127.0.0.1). Results are printed and written as JSON.
#
#   scripts/bench.sh                                  # SQLite, scenarios a,b,c,e
#   scripts/bench.sh --scenario all                   # including the 1M backlog (d)
#   scripts/bench.sh --database postgres://tocsin:tocsin@127.0.0.1/postgres --servers 2
#
# Run it three times and report the medians: the machine is shared and noisy.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --workspace
exec ./target/release/tocsin-bench "$@"
