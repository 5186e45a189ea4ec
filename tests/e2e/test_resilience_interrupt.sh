#!/usr/bin/env bash
# Interrupting a scan whose files wait for a slow provider: no new request starts, the ones in
# flight finish within the drain timeout, and the run exits 130 (143 for SIGTERM). A rerun
# takes every finished file from the cache and sends only the files that were not done.
source "$(dirname "$0")/providers_lib.sh"

file_count=60
mkdir -p "$WORK/tree"
for i in $(seq 1 "$file_count"); do
    printf 'interrupt test file %s\n' "$i" >"$WORK/tree/f$i.txt"
done

# interrupt_scan SIGNAL OUTPUT ARGS...: starts a scan, sends SIGNAL once 8 files are out and
# stores the exit status in RC and the seconds from the signal to the exit in STOP_SECONDS.
interrupt_scan() {
    local signal=$1 output=$2
    shift 2
    "$ATHENA" scan --json --providers anthropic --anthropic-bulkhead-max-concurrent 4 "$@" \
        "$WORK/tree" >"$output" 2>"$output.err" &
    local pid=$!
    for _ in $(seq 1 400); do
        if (($(wc -l <"$output") >= 8)); then
            break
        fi
        sleep 0.05
    done
    local signalled_at
    signalled_at=$(date +%s%N)
    kill "-$signal" "$pid"
    set +e
    wait "$pid"
    RC=$?
    set -e
    STOP_SECONDS=$((($(date +%s%N) - signalled_at) / 1000000000))
}

# count_in FILE JQ: file records of FILE that match the condition.
count_in() {
    jq -r "select(.type==\"file\" and ($2)) | .path" "$1" | grep -c '' || true
}

# Each response takes 500 ms and four are in flight, so the whole run would take 7.5 s.
fake_config '{"per_format": {"anthropic": {"default_fault": {"name": "slow", "ms": 500}}}}'
interrupt_scan INT "$WORK/run1.json" --drain-timeout 5s
finished=$(count_in "$WORK/run1.json" '.verdict != null')
sent=$(fake_requests anthropic)
expect_eq "SIGINT: exit status" "$RC" 130
expect_eq "SIGINT: summary says interrupted" \
    "$(jq -r 'select(.type=="summary") | .interrupted' "$WORK/run1.json")" true
checks=$((checks + 1))
if ((STOP_SECONDS > 3)); then
    fail "SIGINT: the run took $STOP_SECONDS s to stop; queued files were still sent"
fi
checks=$((checks + 1))
if ((finished >= file_count)); then
    fail "SIGINT: the run finished before the signal; nothing was interrupted"
fi
expect_eq "SIGINT: every request sent finished within the drain" "$finished" "$sent"
expect_eq "SIGINT: the rest are interrupted" \
    "$(count_in "$WORK/run1.json" '.error.kind == "interrupted"')" $((file_count - finished))

# The rerun takes the finished files from the cache and sends only the others.
fake_reset
run_athena scan --json --providers anthropic "$WORK/tree"
expect_eq "rerun: exit status" "$RC" 0
expect_eq "rerun: requests" "$(fake_requests anthropic)" $((file_count - finished))
printed=$(jq -r 'select(.type=="file" and .verdict != null) | .path' "$WORK/run1.json" | sort)
missed=$(jq -r 'select(.type=="file" and .cache=="miss") | .path' <<<"$OUT" | sort)
expect_eq "rerun: finished files come from the cache" \
    "$(comm -12 <(printf '%s\n' "$printed") <(printf '%s\n' "$missed") | grep -c . || true)" 0
expect_eq "rerun: every file has a verdict" "$(summary_field .files)" "$file_count"

# SIGTERM with no drain time: the calls in flight are cancelled, and the run exits 143.
export ATHENA_CACHE_DIR="$WORK/cache-term"
fake_reset
fake_config '{"per_format": {"anthropic": {"default_fault": {"name": "slow", "ms": 500}}}}'
interrupt_scan TERM "$WORK/run2.json" --drain-timeout 0
finished=$(count_in "$WORK/run2.json" '.verdict != null')
expect_eq "SIGTERM: exit status" "$RC" 143
checks=$((checks + 1))
if ((STOP_SECONDS > 2)); then
    fail "SIGTERM: the run took $STOP_SECONDS s to stop without a drain time"
fi
expect_eq "SIGTERM: the rest are interrupted" \
    "$(count_in "$WORK/run2.json" '.error.kind == "interrupted"')" $((file_count - finished))
fake_reset
run_athena scan --json --providers anthropic "$WORK/tree"
expect_eq "SIGTERM rerun: requests" "$(fake_requests anthropic)" $((file_count - finished))

finish
