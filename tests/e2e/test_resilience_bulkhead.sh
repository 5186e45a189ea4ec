#!/usr/bin/env bash
# Bulkheads: the peak number of requests in flight that the fake provider counts never
# exceeds the per-provider or the global limit; a full queue and a queue timeout fail the file over
# to the next provider; --disable bulkhead lifts the limits.
source "$(dirname "$0")/providers_lib.sh"

file_count=24
mkdir -p "$WORK/tree" "$WORK/small"
for i in $(seq 1 "$file_count"); do
    printf 'bulkhead test file %s\n' "$i" >"$WORK/tree/f$i.txt"
done
for i in $(seq 1 6); do
    printf 'bulkhead test small file %s\n' "$i" >"$WORK/small/f$i.txt"
done

# scenario NAME CONFIG ARGS...: a fresh cache, the fake provider's faults, then a scan.
scenario() {
    local name=$1 config=$2
    shift 2
    fake_reset
    fake_config "$config"
    export ATHENA_CACHE_DIR="$WORK/cache-$name"
    run_athena scan --json "$@"
}

bulkhead_field() {
    summary_field ".analysis.resilience.bulkheads[] | select(.name==\"$1\") | $2"
}

count_files() {
    jq -r "select(.type==\"file\" and ($1)) | .path" <<<"$OUT" | grep -c '' || true
}

# Per provider: four slots, however many files are ready.
scenario provider_limit '{"delay_ms": 300}' --providers anthropic \
    --anthropic-bulkhead-max-concurrent 4 "$WORK/tree"
expect_eq "provider limit: exit status" "$RC" 0
expect_eq "provider limit: peak in flight" "$(fake_stat .peak_in_flight)" 4
expect_eq "provider limit: requests" "$(fake_requests anthropic)" "$file_count"
expect_eq "provider limit: verdicts" "$(count_files '.provider == "anthropic"')" "$file_count"
expect_eq "provider limit: peak active" "$(bulkhead_field anthropic .peak_active)" 4
expect_eq "provider limit: acquired" "$(bulkhead_field anthropic .acquired)" "$file_count"
checks=$((checks + 1))
if (($(bulkhead_field anthropic .peak_queued) == 0)); then
    fail "provider limit: no call ever waited in the queue"
fi
checks=$((checks + 1))
if (($(bulkhead_field anthropic .wait_ms.p99) == 0)); then
    fail "provider limit: the wait percentiles show no wait"
fi
expect_match "provider limit: report line" "$ERR" \
    "bulkhead  anthropic: max 4, peak 4 active and [0-9]+ queued; $file_count acquired"

# Global: three slots across both providers. anthropic takes two calls at a time and
# rejects the rest at once (no queue), so the rest fail over to openai.
scenario global_limit '{"delay_ms": 300}' --providers anthropic,openai \
    --bulkhead-global-concurrency 3 --anthropic-bulkhead-max-concurrent 2 \
    --anthropic-bulkhead-queue-size 0 "$WORK/tree"
expect_eq "global limit: exit status" "$RC" 0
expect_eq "global limit: peak in flight" "$(fake_stat .peak_in_flight)" 3
expect_eq "global limit: verdicts" "$(count_files '.verdict != null')" "$file_count"
expect_eq "global limit: peak active" "$(bulkhead_field global .peak_active)" 3
expect_eq "global limit: every file answered once" \
    $(($(fake_requests anthropic) + $(fake_requests openai))) "$file_count"
full=$(bulkhead_field anthropic .rejected)
checks=$((checks + 1))
if ((full == 0)); then
    fail "global limit: anthropic's full queue rejected nothing"
fi
expect_eq "global limit: rejections failed over" "$(fake_requests openai)" "$full"
expect_eq "global limit: rejections counted" \
    "$(provider_field anthropic .errors_by_kind.bulkhead_full)" "$full"

# Queue timeout: one slot held for a second; the other files give up after 200 ms.
slow='{"name": "slow", "ms": 1000}'
scenario queue_timeout "{\"per_format\": {\"anthropic\": {\"default_fault\": $slow}}}" \
    --providers anthropic,openai --anthropic-bulkhead-max-concurrent 1 \
    --anthropic-bulkhead-queue-timeout 200ms "$WORK/small"
expect_eq "queue timeout: exit status" "$RC" 0
expect_eq "queue timeout: anthropic requests" "$(fake_requests anthropic)" 1
expect_eq "queue timeout: openai requests" "$(fake_requests openai)" 5
expect_eq "queue timeout: timed out" "$(bulkhead_field anthropic .timed_out)" 5
expect_eq "queue timeout: kind counted" \
    "$(provider_field anthropic .errors_by_kind.bulkhead_timeout)" 5
expect_eq "queue timeout: verdicts" "$(count_files '.verdict != null')" 6

# --disable bulkhead: only the router's own concurrency limits the files in flight.
scenario disabled '{"delay_ms": 300}' --providers anthropic --disable bulkhead \
    --bulkhead-max-concurrent 2 "$WORK/tree"
expect_eq "disabled: exit status" "$RC" 0
expect_eq "disabled: no bulkheads" "$(summary_field '.analysis.resilience.bulkheads | length')" 0
checks=$((checks + 1))
if (($(fake_stat .peak_in_flight) <= 2)); then
    fail "disabled: peak in flight $(fake_stat .peak_in_flight) still within the limit"
fi

finish
