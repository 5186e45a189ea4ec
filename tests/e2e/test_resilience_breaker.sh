#!/usr/bin/env bash
# A provider that fails every call gets exactly failure_threshold requests, then its breaker
# opens and every file goes to the next provider or the builtin analyser. The 529 storm and
# the 429 with retry-after end the same way, and the breaker timeline in the NDJSON summary
# names what happened. Request counts come from the fake provider's own statistics.
source "$(dirname "$0")/providers_lib.sh"

file_count=20
mkdir -p "$WORK/tree"
for i in $(seq 1 "$file_count"); do
    printf 'breaker test file %s\n' "$i" >"$WORK/tree/f$i.txt"
done

# scenario NAME CONFIG ARGS...: a fresh cache, the fake provider's faults, then a scan. One
# slot in anthropic's bulkhead sends its attempts one at a time, so the breaker has seen
# each outcome before the next attempt is admitted.
scenario() {
    local name=$1 config=$2
    shift 2
    fake_reset
    fake_config "$config"
    export ATHENA_CACHE_DIR="$WORK/cache-$name"
    run_athena scan --json --anthropic-bulkhead-max-concurrent 1 "$@" "$WORK/tree"
}

breaker_field() {
    summary_field ".analysis.resilience.breakers[] | select(.provider==\"$1\") | $2"
}

# timeline PROVIDER: the breaker's transitions as "from>to: reason", joined by "; ".
timeline() {
    breaker_field "$1" '[.timeline[] | "\(.from)>\(.to): \(.reason)"] | join("; ")'
}

# count_files JQ: file records that match the condition.
count_files() {
    jq -r "select(.type==\"file\" and ($1)) | .path" <<<"$OUT" | grep -c '' || true
}

# Fail always, no retries: three requests, then every file fails over to openai.
scenario fail_always '{"per_format": {"anthropic": {"default_fault": "status_500"}}}' \
    --providers anthropic,openai --max-retries 0
expect_eq "fail always: exit status" "$RC" 0
expect_eq "fail always: anthropic requests" "$(fake_requests anthropic)" 3
expect_eq "fail always: openai requests" "$(fake_requests openai)" "$file_count"
expect_eq "fail always: verdicts from openai" \
    "$(count_files '.provider=="openai" and .verdict != null')" "$file_count"
expect_eq "fail always: opened" "$(breaker_field anthropic .opened)" 1
expect_eq "fail always: rejected" "$(breaker_field anthropic .rejected)" $((file_count - 3))
expect_eq "fail always: probes" "$(breaker_field anthropic .probes)" 0
expect_eq "fail always: state" "$(breaker_field anthropic .state)" open
expect_eq "fail always: timeline" "$(timeline anthropic)" "closed>open: 3 consecutive failures"
expect_eq "fail always: rejections fail over" \
    "$(provider_field anthropic .errors_by_kind.breaker_open)" $((file_count - 3))
expect_eq "fail always: openai breaker untouched" "$(breaker_field openai .opened)" 0
expect_match "fail always: one warning" "$ERR" \
    "warning: circuit breaker for anthropic opened \(3 consecutive failures\)"
expect_match "fail always: report timeline" "$ERR" \
    "breaker   anthropic  \+[0-9.]+ s  closed -> open: 3 consecutive failures"

# The per-provider threshold applies, here from the config file.
mkdir -p "$WORK/config/athena"
cat >"$WORK/config/athena/config.toml" <<'EOF'
[providers.anthropic.breaker]
failure_threshold = 5
EOF
scenario threshold_5 '{"per_format": {"anthropic": {"default_fault": "status_503"}}}' \
    --providers anthropic,openai --max-retries 0
rm "$WORK/config/athena/config.toml"
expect_eq "threshold 5: anthropic requests" "$(fake_requests anthropic)" 5
expect_eq "threshold 5: timeline" "$(timeline anthropic)" "closed>open: 5 consecutive failures"

# With no other provider the builtin analyser gives every verdict.
scenario builtin '{"per_format": {"anthropic": {"default_fault": "status_500"}}}' \
    --providers anthropic --max-retries 0
expect_eq "builtin: anthropic requests" "$(fake_requests anthropic)" 3
expect_eq "builtin: fallbacks" "$(count_files '.fallback == true and .verdict != null')" \
    "$file_count"

# Without the builtin analyser every file ends with a clear error instead.
scenario no_builtin '{"per_format": {"anthropic": {"default_fault": "status_500"}}}' \
    --providers anthropic --max-retries 0 --no-builtin
expect_eq "no builtin: exit status" "$RC" 2
expect_eq "no builtin: anthropic requests" "$(fake_requests anthropic)" 3
expect_eq "no builtin: http errors" "$(count_files '.error.kind == "http_status"')" 3
expect_eq "no builtin: breaker errors" "$(count_files '.error.kind == "breaker_open"')" \
    $((file_count - 3))
expect_match "no builtin: message names the provider" \
    "$(jq -r 'select(.type=="file" and .error.kind=="breaker_open") | .error.message' \
        <<<"$OUT" | head -n 1)" "circuit breaker for provider anthropic is open"

# Retries are attempts too: with one retry per file, the third failed attempt opens it.
scenario storm_529 '{"per_format": {"anthropic": {"default_fault": "overloaded_529"}}}' \
    --providers anthropic,openai --max-retries 1
expect_eq "529 storm: anthropic requests" "$(fake_requests anthropic)" 3
expect_eq "529 storm: verdicts" "$(count_files '.verdict != null')" "$file_count"
expect_eq "529 storm: verdicts from openai" "$(count_files '.provider == "openai"')" \
    "$file_count"
expect_eq "529 storm: timeline" "$(timeline anthropic)" "closed>open: 3 consecutive failures"
expect_eq "529 storm: failures" "$(breaker_field anthropic .failures)" 3

# A 429 with retry-after is a failure too. The retry waits, then finds the breaker open.
rate_limit='{"name": "rate_limit_429", "retry_after": 1}'
scenario rate_limited "{\"per_format\": {\"anthropic\": {\"default_fault\": $rate_limit}}}" \
    --providers anthropic,openai
expect_eq "429: anthropic requests" "$(fake_requests anthropic)" 3
expect_eq "429: verdicts" "$(count_files '.verdict != null')" "$file_count"
expect_eq "429: rate limits counted" "$(provider_field anthropic .errors_by_kind.rate_limited)" 3
expect_eq "429: timeline" "$(timeline anthropic)" "closed>open: 3 consecutive failures"

# One 429 is retried after its wait and does not open the breaker.
scenario one_429 '{"faults": [{"name": "rate_limit_429", "retry_after": 1}]}' \
    --providers anthropic,openai
expect_eq "one 429: anthropic requests" "$(fake_requests anthropic)" $((file_count + 1))
expect_eq "one 429: openai requests" "$(fake_requests openai)" 0
expect_eq "one 429: never opened" "$(breaker_field anthropic .opened)" 0
expect_eq "one 429: verdicts from anthropic" "$(count_files '.provider == "anthropic"')" \
    "$file_count"

# 4xx responses are the request's fault: the breaker ignores them, so every file is tried.
scenario status_400 '{"per_format": {"anthropic": {"default_fault": "status_400"}}}' \
    --providers anthropic,openai
expect_eq "400: anthropic requests" "$(fake_requests anthropic)" "$file_count"
expect_eq "400: never opened" "$(breaker_field anthropic .opened)" 0
expect_eq "400: ignored" "$(breaker_field anthropic .ignored)" "$file_count"

# --disable circuit-breaker: every file is tried at the failing provider.
scenario disabled '{"per_format": {"anthropic": {"default_fault": "status_500"}}}' \
    --providers anthropic,openai --max-retries 0 --disable circuit-breaker
expect_eq "disabled: anthropic requests" "$(fake_requests anthropic)" "$file_count"
expect_eq "disabled: no breakers" "$(summary_field '.analysis.resilience.breakers | length')" 0
expect_eq "disabled: verdicts" "$(count_files '.verdict != null')" "$file_count"

# An invalid setting is a usage error naming the setting.
run_athena scan --json --providers anthropic --breaker-failure-threshold 0 "$WORK/tree"
expect_eq "invalid threshold: exit status" "$RC" 2
expect_match "invalid threshold: message" "$ERR" "invalid breaker-failure-threshold '0'"

finish
