#!/usr/bin/env bash
# Every fault the fake provider can inject: the record produced, and whether a retry, a
# repair or a failover happened, told by the request counts the fake provider keeps.
source "$(dirname "$0")/providers_lib.sh"

# scenario NAME CONFIG [ARGS...]: a fresh cache and one new file, then a scan with the
# priority list anthropic,openai from the environment (ARGS may add --providers to override).
scenario() {
    local name=$1 config=$2
    shift 2
    fake_reset
    fake_config "$config"
    mkdir -p "$WORK/$name"
    printf 'content of scenario %s\n' "$name" >"$WORK/$name/file.txt"
    export ATHENA_CACHE_DIR="$WORK/cache-$name"
    FEATURE_AIPROVIDERPRIORITY=anthropic,openai run_athena scan --json "$@" "$WORK/$name"
}

# expect_counts NAME ANTHROPIC OPENAI PROVIDER: request counts and who answered.
expect_counts() {
    expect_eq "$1: anthropic requests" "$(fake_requests anthropic)" "$2"
    expect_eq "$1: openai requests" "$(fake_requests openai)" "$3"
    expect_eq "$1: provider" "$(file_field file.txt .provider)" "$4"
    expect_eq "$1: has a verdict" "$(file_field file.txt '.verdict != null')" true
}

# Transient failures are retried on the same provider.
scenario status_500 '{"faults": [{"name": "status_500"}]}'
expect_counts status_500 2 0 anthropic
expect_eq "status_500: retry counted" "$(provider_field anthropic .retries)" 1
expect_eq "status_500: error kind counted" "$(provider_field anthropic .errors_by_kind.http_status)" 1

scenario overloaded_529 '{"faults": ["overloaded_529"]}'
expect_counts overloaded_529 2 0 anthropic

scenario status_502_html '{"faults": ["status_502_html"]}'
expect_counts status_502_html 2 0 anthropic

scenario reset_mid_body '{"faults": ["reset_mid_body"]}'
expect_counts reset_mid_body 2 0 anthropic
expect_eq "reset_mid_body: kind" "$(provider_field anthropic .errors_by_kind.connection)" 1

ATHENA_STALL_TIMEOUT=1s scenario stall_after_headers \
    '{"faults": [{"name": "stall_after_headers", "seconds": 4}]}'
expect_counts stall_after_headers 2 0 anthropic
expect_eq "stall_after_headers: kind" "$(provider_field anthropic .errors_by_kind.timeout)" 1
expect_eq "stall_after_headers: abandoned early" \
    "$(file_field file.txt '.duration_ms < 3500')" true

ATHENA_ANTHROPIC_TIMEOUT=1s scenario timeout '{"faults": [{"name": "slow", "ms": 3000}]}'
expect_counts timeout 2 0 anthropic
expect_eq "timeout: kind" "$(provider_field anthropic .errors_by_kind.timeout)" 1

# The retry count is bounded; then the next provider answers.
scenario bounded_retries '{"per_format": {"anthropic": {"default_fault": "status_503"}}}' \
    --max-retries 2
expect_counts bounded_retries 3 1 openai
expect_eq "bounded_retries: retries" "$(provider_field anthropic .retries)" 2

# Waits the server asks for are honoured.
scenario retry_after '{"faults": [{"name": "rate_limit_429", "retry_after": 1}]}'
expect_counts retry_after 2 0 anthropic
expect_eq "retry_after: waited" "$(file_field file.txt '.duration_ms >= 950')" true
expect_eq "retry_after: kind" "$(provider_field anthropic .errors_by_kind.rate_limited)" 1

scenario retry_after_ms '{"faults": [{"name": "rate_limit_429", "retry_after_ms": 400}]}'
expect_counts retry_after_ms 2 0 anthropic
expect_eq "retry_after_ms: waited" "$(file_field file.txt '.duration_ms >= 380')" true

scenario retry_after_date '{"faults": [{"name": "rate_limit_429", "retry_after_date": 2}]}'
expect_counts retry_after_date 2 0 anthropic
expect_eq "retry_after_date: waited" "$(file_field file.txt '.duration_ms >= 900')" true

scenario gemini_retry_info \
    '{"faults": [{"name": "gemini_retry_info_429", "delay": "0.6s"}]}' --providers gemini,openai
expect_eq "gemini_retry_info: gemini requests" "$(fake_requests gemini)" 2
expect_eq "gemini_retry_info: provider" "$(file_field file.txt .provider)" gemini
expect_eq "gemini_retry_info: waited" "$(file_field file.txt '.duration_ms >= 580')" true

# A wait longer than the retry budget is not waited for: the next provider answers.
ATHENA_MAX_RETRY_WAIT=1s scenario long_retry_after \
    '{"faults": [{"name": "rate_limit_429", "retry_after": 30}]}'
expect_counts long_retry_after 1 1 openai
expect_eq "long_retry_after: did not wait" "$(file_field file.txt '.duration_ms < 5000')" true

# Answers that fail validation get one repair attempt at the same provider.
for fault in truncated unknown_level confidence_out_of_range invalid_utf8; do
    scenario "$fault" "{\"faults\": [\"$fault\"]}"
    expect_counts "$fault" 2 0 anthropic
    expect_eq "$fault: repair counted" "$(provider_field anthropic .repairs)" 1
    expect_eq "$fault: rejection counted" \
        "$(provider_field anthropic .errors_by_kind.invalid_answer)" 1
done
repair_body=$(fake_stat '.bodies_tail[1]')
expect_match "repair request names the rejection" "$repair_body" "previous answer was rejected"
expect_match "repair request is valid UTF-8 JSON" "$(jq -r .model <<<"$repair_body")" claude

# A second rejection ends the provider's turn.
scenario repair_fails '{"faults": [{"name": "unknown_level", "count": 2}]}'
expect_counts repair_fails 2 1 openai

# Fenced and gzip answers are fine as they are.
scenario fenced '{"faults": ["fenced"]}'
expect_counts fenced 1 0 anthropic
scenario gzip '{"faults": ["gzip"]}'
expect_counts gzip 1 0 anthropic

# Broken bodies, refusals and 400s go straight to the next provider.
for fault in empty_200 garbage_200 refusal status_400 status_404; do
    scenario "$fault" "{\"faults\": [\"$fault\"]}"
    expect_counts "$fault" 1 1 openai
    expect_eq "$fault: failover counted" "$(provider_field anthropic .failovers)" 1
done
expect_eq "empty_200 leaves no cached verdict for anthropic" \
    "$(summary_field .analysis.providers[0].verdicts)" 0

for mode in candidate prompt; do
    scenario "safety_$mode" "{\"faults\": [{\"name\": \"safety\", \"mode\": \"$mode\"}]}" \
        --providers gemini,openai
    expect_eq "safety $mode: gemini requests" "$(fake_requests gemini)" 1
    expect_eq "safety $mode: openai requests" "$(fake_requests openai)" 1
    expect_eq "safety $mode: provider" "$(file_field file.txt .provider)" openai
    expect_eq "safety $mode: kind" "$(provider_field gemini .errors_by_kind.refused)" 1
done

# 401 and a per-day quota disable the provider for the run, with one message.
for fault in status_401 quota_day_429; do
    fake_reset
    fake_config "{\"per_format\": {\"anthropic\": {\"default_fault\": \"$fault\"}}}"
    mkdir -p "$WORK/$fault"
    for i in 1 2 3 4; do
        printf 'scenario %s file %d\n' "$fault" "$i" >"$WORK/$fault/f$i.txt"
    done
    export ATHENA_CACHE_DIR="$WORK/cache-$fault"
    run_athena scan --providers anthropic,openai --json --max-concurrency 1 "$WORK/$fault"
    expect_eq "$fault: anthropic asked once" "$(fake_requests anthropic)" 1
    expect_eq "$fault: openai answers the rest" "$(fake_requests openai)" 4
    expect_eq "$fault: one message" "$(grep -c 'disabled for the rest of this run' <<<"$ERR")" 1
    expect_match "$fault: summary says disabled" "$(provider_field anthropic .disabled)" '.+'
done
expect_match "quota message" "$ERR" "quota"

# --no-failover: the first provider's failure goes to the builtin fallback.
scenario no_failover '{"per_format": {"anthropic": {"default_fault": "status_400"}}}' \
    --no-failover
expect_counts no_failover 1 0 builtin
expect_eq "no_failover: fallback" "$(file_field file.txt .fallback)" true

# Every provider fails and --no-builtin: an error record naming both.
scenario all_fail '{"default_fault": "status_400"}' --no-builtin
expect_eq "all_fail: exit" "$RC" 2
expect_eq "all_fail: kind" "$(file_field file.txt .error.kind)" http_status
expect_match "all_fail: message names anthropic" "$(file_field file.txt .error.message)" \
    "anthropic: POST http://127.0.0.1:$FAKE_PORT/v1/messages: HTTP 400"
expect_match "all_fail: message names openai" "$(file_field file.txt .error.message)" \
    "openai: POST"

# A fallback verdict is printed but not cached: a rerun asks the providers again.
scenario not_cached '{"default_fault": "status_400"}'
expect_eq "not_cached: fallback" "$(file_field file.txt .fallback)" true
fake_reset
fake_config '{"default_fault": "status_400"}'
run_athena scan --providers anthropic,openai --json "$WORK/not_cached"
expect_eq "not_cached: rerun asks anthropic" "$(fake_requests anthropic)" 1
expect_eq "not_cached: rerun asks openai" "$(fake_requests openai)" 1
expect_eq "not_cached: rerun misses" "$(summary_field .cache.misses)" 1

# --max-cost: no request once the spend would pass it; the files left get "budget".
fake_reset
mkdir -p "$WORK/budget"
for i in $(seq 1 12); do
    printf 'budget file %d\n' "$i" >"$WORK/budget/f$i.txt"
done
export ATHENA_CACHE_DIR="$WORK/cache-budget"
run_athena scan --providers anthropic --json --max-cost 0.05 "$WORK/budget"
answered=$(jq -c 'select(.type=="file" and .verdict != null)' <<<"$OUT" | wc -l)
refused=$(jq -c 'select(.type=="file" and .error.kind == "budget")' <<<"$OUT" | wc -l)
expect_eq "budget: every file has a record" "$((answered + refused))" 12
expect_eq "budget: some analysed" "$((answered > 0))" 1
expect_eq "budget: some refused" "$((refused > 0))" 1
expect_eq "budget: requests match verdicts" "$(fake_requests anthropic)" "$answered"
expect_eq "budget: spend within the limit" "$(summary_field '.analysis.cost_usd <= 0.05')" true
expect_eq "budget: stopped" "$(summary_field .analysis.budget.stopped)" true
expect_eq "budget: exit" "$RC" 2

fake_reset
export ATHENA_CACHE_DIR="$WORK/cache-budget-zero"
run_athena scan --providers anthropic --json --max-cost 0 "$WORK/budget"
expect_eq "zero budget: no request" "$(fake_stat .requests_total)" 0
expect_eq "zero budget: all refused" \
    "$(jq -c 'select(.type=="file" and .error.kind == "budget")' <<<"$OUT" | wc -l)" 12

expect_no_secret "fault runs" "$OUT$ERR"
finish
