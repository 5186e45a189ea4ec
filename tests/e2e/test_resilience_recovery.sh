#!/usr/bin/env bash
# Fail, then recover: anthropic fails until its breaker opens, then the test switches the
# fault off through the fake provider's /_config. After the short reset timeout, half-open
# probes find it healthy, the breaker closes and the files still to come go to anthropic.
#
# While the breaker is open, every file waiting for dispatch fails over at once, so only
# files submitted later can bring traffic back. The router keeps at most 256 files in
# progress, so the files after the first 256 are submitted as earlier ones end. With openai
# responding in 40 ms, two at a time, they reach the providers seconds later.
source "$(dirname "$0")/providers_lib.sh"

file_count=400
mkdir -p "$WORK/tree"
for i in $(seq 1 "$file_count"); do
    printf 'recovery test file %s\n' "$i" >"$WORK/tree/f$i.txt"
done

breaker_field() {
    summary_field ".analysis.resilience.breakers[] | select(.provider==\"$1\") | $2"
}

count_files() {
    jq -r "select(.type==\"file\" and ($1)) | .path" <<<"$OUT" | grep -c '' || true
}

# transition N: the breaker's transition N as "from>to: reason".
transition() {
    breaker_field anthropic ".timeline[$1] | \"\(.from)>\(.to): \(.reason)\""
}

fake_config '{"per_format": {"anthropic": {"default_fault": "status_500"},
                             "openai": {"default_fault": {"name": "slow", "ms": 40}}}}'
"$ATHENA" scan --json --providers anthropic,openai --max-retries 0 --max-concurrency 2 \
    --anthropic-bulkhead-max-concurrent 1 --breaker-reset-timeout 300ms \
    --breaker-max-reset-timeout 1s --breaker-jitter 0 "$WORK/tree" \
    >"$WORK/run.json" 2>"$WORK/run.err" &
athena_pid=$!

# Switch the fault off once the breaker has had its failures.
for _ in $(seq 1 500); do
    if (($(fake_requests anthropic) >= 3)); then
        break
    fi
    sleep 0.02
done
fake_config '{"per_format": {"anthropic": {"default_fault": "ok"}}}'
set +e
wait "$athena_pid"
RC=$?
set -e
OUT=$(cat "$WORK/run.json")
ERR=$(cat "$WORK/run.err")

expect_eq "exit status" "$RC" 0
expect_eq "every file has a verdict" "$(count_files '.verdict != null')" "$file_count"
expect_eq "first transition" "$(transition 0)" "closed>open: 3 consecutive failures"
expect_eq "second transition" "$(transition 1)" "open>half_open: reset timeout 300 ms elapsed"
expect_eq "third transition" "$(transition 2)" "half_open>closed: 2 probe successes"
expect_eq "transitions" "$(breaker_field anthropic .transitions_total)" 3
expect_eq "state at the end" "$(breaker_field anthropic .state)" closed
expect_eq "opened once" "$(breaker_field anthropic .opened)" 1
expect_eq "closed once" "$(breaker_field anthropic .closed)" 1
expect_eq "probes" "$(breaker_field anthropic .probes)" 2

# Exactly three failed requests before traffic stopped, then one request per verdict from
# anthropic: the two probes and the files after the close.
answered=$(count_files '.provider == "anthropic"')
expect_eq "anthropic requests" "$(fake_requests anthropic)" $((3 + answered))
expect_eq "failures" "$(breaker_field anthropic .failures)" 3
expect_eq "answers by anthropic" "$answered" "$(breaker_field anthropic .successes)"
# The two probes are the first traffic back. Whether later files also reach anthropic
# depends on how many were still waiting when the breaker closed, which varies with the
# machine's load, so only the probes are required here.
checks=$((checks + 1))
if ((answered < 2)); then
    fail "traffic did not return to anthropic: it answered $answered files"
fi
expect_eq "the rest failed over" "$(count_files '.provider == "openai"')" \
    $((file_count - answered))
expect_match "report line" "$ERR" \
    "breaker   anthropic: closed now; opened 1, rejected [0-9]+, probes 2, closed 1"

finish
