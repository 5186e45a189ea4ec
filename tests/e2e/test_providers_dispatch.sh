#!/usr/bin/env bash
# Dispatch: many requests in flight from one event loop, capped by --max-concurrency; the
# evidence cut to --max-input-tokens; an interrupt that ends requests still in flight.
source "$(dirname "$0")/providers_lib.sh"

# 60 files against a provider that answers after 300 ms, 20 at a time: 3 rounds.
mkdir -p "$WORK/many"
for i in $(seq 1 60); do
    printf 'dispatch file %d\n' "$i" >"$WORK/many/f$i.txt"
done
fake_config '{"delay_ms": 300}'
run_athena scan --providers anthropic --max-concurrency 20 --json "$WORK/many"
expect_eq "all answered" "$(fake_requests anthropic)" 60
expect_eq "peak at most the limit" "$(fake_stat '.peak_in_flight <= 20')" true
expect_eq "peak reaches the limit" "$(fake_stat '.peak_in_flight >= 15')" true
expect_eq "our own peak" "$(summary_field '.analysis.peak_in_flight')" 20
# Ideal: 3 rounds of 300 ms. One request at a time would take 18 s.
expect_eq "requests overlap" "$(summary_field '.duration_ms < 4000')" true

# The evidence is cut to the token budget, and the prompt says how much was left out.
mkdir -p "$WORK/big"
python3 - "$WORK/big/notes.txt" <<'PY'
import sys
with open(sys.argv[1], "w") as out:
    for i in range(400):
        out.write(f"line {i}: see https://host{i}.example.test/path and call helper_{i}\n")
PY
fake_reset
export ATHENA_CACHE_DIR="$WORK/cache-big"
run_athena scan --providers openai --max-input-tokens 100000 --json "$WORK/big"
full_size=$(fake_stat '.body_sizes[0]')
fake_reset
export ATHENA_CACHE_DIR="$WORK/cache-small"
run_athena scan --providers openai --max-input-tokens 1500 --json "$WORK/big"
small_size=$(fake_stat '.body_sizes[0]')
expect_eq "a smaller budget sends less" "$((small_size < full_size))" 1
expect_match "the cut is stated" "$(fake_stat '.bodies_tail[0]')" "omitted_to_fit_budget"
expect_eq "still a verdict" "$(file_field notes.txt .provider)" openai

# An interrupt while requests hang: the run drains briefly, then ends them.
mkdir -p "$WORK/hang"
for i in 1 2 3; do
    printf 'hanging file %d\n' "$i" >"$WORK/hang/f$i.txt"
done
fake_reset
fake_config '{"delay_ms": 30000}'
export ATHENA_CACHE_DIR="$WORK/cache-hang"
"$ATHENA" scan --providers anthropic --json "$WORK/hang" >"$WORK/hang.out" 2>"$WORK/hang.err" &
pid=$!
for _ in $(seq 1 100); do
    [[ $(fake_stat .in_flight) -ge 3 ]] && break
    sleep 0.05
done
started=$(date +%s)
kill -INT "$pid"
set +e
wait "$pid"
rc=$?
set -e
expect_eq "interrupt exit" "$rc" 130
expect_eq "interrupt ends within the drain time" "$(($(date +%s) - started < 10))" 1
expect_eq "interrupted records" \
    "$(jq -c 'select(.type=="file" and .error.kind=="interrupted")' "$WORK/hang.out" | wc -l)" 3

finish
