#!/usr/bin/env bash
# Check that the benchmark scripts still run end to end on tiny corpora (1000 small files,
# 200 mixed files, one 8 MiB file, one timed run each). It asserts nothing about speed and
# fails only when a script or a measurement fails. It took 30-50 s on a 2-core VM at load
# average 10-13, and 76 s at 32.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
exec "$BENCH_DIR/run.sh" --quick --files 1000 --mixed-files 200 --big-files 1 --big-size 8M \
    --runs 1 --openssl-seconds 1 --out "$BENCH_DIR/out/smoke" "$@"
