#!/usr/bin/env bash
# A provider that slows down trips the adaptive breaker while its calls are still in flight.
# The first calls hang for 3 s. Once they have run past the slow-call threshold, the breaker
# opens and the queued files go to the next provider.
source "$(dirname "$0")/providers_lib.sh"

file_count=20
mkdir -p "$WORK/tree" "$WORK/small"
for i in $(seq 1 "$file_count"); do
    printf 'slow test file %s\n' "$i" >"$WORK/tree/f$i.txt"
done
for i in 1 2 3; do
    printf 'slow test small file %s\n' "$i" >"$WORK/small/f$i.txt"
done

breaker_field() {
    summary_field ".analysis.resilience.breakers[] | select(.provider==\"$1\") | $2"
}

count_files() {
    jq -r "select(.type==\"file\" and ($1)) | .path" <<<"$OUT" | grep -c '' || true
}

# The per-provider settings come from the config file's tables: calls over 200 ms are slow,
# three calls are enough to judge, and three run at a time.
mkdir -p "$WORK/config/athena"
cat >"$WORK/config/athena/config.toml" <<'EOF'
[providers.anthropic.breaker]
target_response = "100ms"
response_threshold = "2.0"
minimum_calls = 3

[providers.anthropic.bulkhead]
max_concurrent = 3
EOF
run_athena flags
expect_match "flags show the table's value" "$OUT" \
    "anthropic-breaker-target-response +100 +config .*config.toml:2"

fake_config '{"per_format": {"anthropic": {"default_fault": {"name": "slow", "ms": 3000}}}}'
run_athena scan --json --providers anthropic,openai --max-retries 0 "$WORK/tree"
expect_eq "exit status" "$RC" 0
expect_eq "anthropic requests" "$(fake_requests anthropic)" 3
expect_eq "openai requests" "$(fake_requests openai)" $((file_count - 3))
expect_eq "every file has a verdict" "$(count_files '.verdict != null')" "$file_count"
expect_eq "the slow calls still answered" "$(count_files '.provider == "anthropic"')" 3
expect_eq "opened once" "$(breaker_field anthropic .opened)" 1
expect_eq "reason" "$(breaker_field anthropic '.timeline[0].reason')" \
    "slow-call rate 100 % over 3 calls"
opened_at=$(breaker_field anthropic '.timeline[0].at_ms')
checks=$((checks + 1))
if ((opened_at >= 2500)); then
    fail "the breaker opened at $opened_at ms, after the slow calls had ended"
fi
expect_match "report names the reason" "$ERR" \
    "breaker   anthropic  \+[0-9.]+ s  closed -> open: slow-call rate 100 % over 3 calls"

# --disable adaptive-breaker: a slow response still counts as a success, so every file
# waits for anthropic.
fake_reset
fake_config '{"per_format": {"anthropic": {"default_fault": {"name": "slow", "ms": 1000}}}}'
run_athena scan --json --providers anthropic,openai --disable adaptive-breaker "$WORK/small"
expect_eq "adaptive off: anthropic requests" "$(fake_requests anthropic)" 3
expect_eq "adaptive off: never opened" "$(breaker_field anthropic .opened)" 0
expect_eq "adaptive off: answered by anthropic" "$(count_files '.provider == "anthropic"')" 3
expect_eq "adaptive off: config" "$(breaker_field anthropic .config.adaptive)" false

finish
