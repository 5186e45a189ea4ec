#!/usr/bin/env bash
# AI verdicts through the fake provider: tokens and cost in the records, failover, a rerun
# that sends nothing, offline replay, the EICAR floor, prompts without raw bytes, and keys
# that appear nowhere.
source "$(dirname "$0")/providers_lib.sh"

mkdir -p "$WORK/tree"
for i in $(seq 1 8); do
    printf 'plain note number %d\n' "$i" >"$WORK/tree/note$i.txt"
done
# Assembled from parts so that this script itself is not an EICAR file.
printf '%s%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$' 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' \
    >"$WORK/tree/eicar.com"
head -c 30000 /dev/urandom >"$WORK/tree/random.bin"
age_files "$WORK/tree"
file_count=10

# First run: every file goes to anthropic, the first provider.
run_athena scan --providers anthropic,openai --json "$WORK/tree"
expect_eq "first run exit (EICAR is malicious)" "$RC" 1
expect_eq "records" "$(jq -c 'select(.type=="file")' <<<"$OUT" | wc -l)" "$file_count"
expect_eq "anthropic requests" "$(fake_requests anthropic)" "$file_count"
expect_eq "openai requests" "$(fake_requests openai)" 0
expect_eq "note provider" "$(file_field note1.txt .provider)" anthropic
expect_eq "note model" "$(file_field note1.txt .model)" claude-sonnet-4-5
expect_eq "note not a fallback" "$(file_field note1.txt .fallback)" false
expect_match "note input tokens" "$(file_field note1.txt .tokens.input)" '^[1-9][0-9]*$'
expect_match "note output tokens" "$(file_field note1.txt .tokens.output)" '^[1-9][0-9]*$'
expect_match "note cost" "$(file_field note1.txt .cost_usd)" '^0\.0[0-9]*[1-9]'
# 3 USD per million input tokens and 15 per million output tokens.
expect_eq "note cost from the price table" \
    "$(file_field note1.txt '((.tokens.input * 3 + .tokens.output * 15) / 1e6 * 1e9 | round) == (.cost_usd * 1e9 | round)')" \
    true
expect_eq "summary requests" "$(provider_field anthropic .requests)" "$file_count"
expect_match "summary cost" "$(summary_field .analysis.cost_usd)" '^0\.[0-9]+'
expect_match "report line" "$ERR" "ai +anthropic/claude-sonnet-4-5: $file_count requests"

# The model says benign, the EICAR signature says malicious: the higher level stands.
expect_eq "eicar level floored" "$(file_field eicar.com .verdict.threat_level)" malicious
expect_match "eicar signature kept" "$(file_field eicar.com .verdict.signatures)" eicar_test_file
expect_eq "eicar from the model" "$(file_field eicar.com .provider)" anthropic

# No request body carries the binary file's bytes: compare against its hex and base64.
bodies=$(fake_stat '.bodies_tail | join("\n")')
expect_eq "body sizes recorded" "$(fake_stat '.body_sizes | length')" "$file_count"
for encoded in "$(head -c 24 "$WORK/tree/random.bin" | xxd -p | tr -d '\n')" \
    "$(head -c 24 "$WORK/tree/random.bin" | base64 | tr -d '\n')"; do
    checks=$((checks + 1))
    if grep -qF -- "$encoded" <<<"$bodies"; then
        fail "a request body contains bytes of random.bin"
    fi
done
expect_eq "largest body smaller than the binary" \
    "$(fake_stat '[.body_sizes[]] | max < 30000')" true
expect_match "system prompt marks untrusted data" "$bodies" "untrusted data"
checks=$((checks + 1))
if grep -qF -- "$WORK" <<<"$bodies"; then
    fail "a request body contains a file path"
fi

# A rerun is answered by the cache and sends nothing.
fake_reset
run_athena scan --providers anthropic,openai --json --sort path "$WORK/tree"
expect_eq "second run requests" "$(fake_stat .requests_total)" 0
expect_eq "second run analyses" "$(summary_field .analyses)" 0
expect_eq "second run provider kept" "$(file_field note1.txt .provider)" anthropic
online_records=$(jq -c 'select(.type=="file") | del(.duration_ms)' <<<"$OUT")

# Offline replays the same records with no key at all.
run_athena_offline() {
    env -u ANTHROPIC_API_KEY -u OPENAI_API_KEY "$ATHENA" "$@" >"$WORK/.out" 2>"$WORK/.err"
}
set +e
run_athena_offline scan --offline --providers anthropic,openai --json --sort path "$WORK/tree"
RC=$?
set -e
OUT=$(cat "$WORK/.out")
expect_eq "offline requests" "$(fake_stat .requests_total)" 0
expect_eq "offline records equal the online ones" \
    "$(jq -c 'select(.type=="file") | del(.duration_ms)' <<<"$OUT")" "$online_records"

# Offline with a file the cache has never seen: the builtin answers, nothing is sent.
printf 'a note the cache has not seen\n' >"$WORK/tree/new.txt"
run_athena scan --offline --providers anthropic,openai --json "$WORK/tree"
expect_eq "offline new file provider" "$(file_field new.txt .provider)" builtin
expect_eq "offline new file is a fallback" "$(file_field new.txt .fallback)" true
expect_eq "offline sends nothing" "$(fake_stat .requests_total)" 0
run_athena scan --offline --no-builtin --providers anthropic,openai --json "$WORK/tree"
expect_eq "offline without builtin" "$(file_field new.txt .error.kind)" not_cached
expect_eq "offline without builtin exit" "$RC" 2
rm "$WORK/tree/new.txt"

# Failover: anthropic answers 400 to everything, so each file goes to openai.
fake_reset
fake_config '{"per_format": {"anthropic": {"default_fault": "status_400"}}}'
run_athena scan --providers anthropic,openai --openai-model gpt-e2e --json "$WORK/tree"
expect_eq "failover anthropic requests" "$(fake_requests anthropic)" "$file_count"
expect_eq "failover openai requests" "$(fake_requests openai)" "$file_count"
expect_eq "failover provider" "$(file_field note2.txt .provider)" openai
expect_eq "failover model" "$(file_field note2.txt .model)" gpt-e2e
expect_eq "failover counted" "$(provider_field anthropic .failovers)" "$file_count"
expect_eq "failover errors by kind" "$(provider_field anthropic .errors_by_kind.http_status)" \
    "$file_count"

# A new model is a new profile: the files are analysed again.
fake_reset
run_athena scan --providers anthropic,openai --anthropic-model claude-e2e-2 --json "$WORK/tree"
expect_eq "new model re-analyses" "$(fake_requests anthropic)" "$file_count"
expect_eq "new model in the record" "$(file_field note3.txt .model)" claude-e2e-2

# Gemini speaks its own format.
fake_reset
run_athena scan --providers gemini --json "$WORK/tree/note4.txt"
expect_eq "gemini requests" "$(fake_requests gemini)" 1
expect_eq "gemini provider" "$(file_field note4.txt .provider)" gemini
expect_eq "gemini key header" "$(fake_stat '.requests_tail[0].credential')" x-goog-api-key

# Local presets need no key.
fake_reset
run_athena scan --providers ollama --json "$WORK/tree/note5.txt"
expect_eq "ollama provider" "$(file_field note5.txt .provider)" ollama
expect_eq "ollama cost" "$(file_field note5.txt .cost_usd)" 0

# A provider without a key is skipped with a warning; with none left, the builtin runs.
run_athena_nokey() {
    set +e
    env -u DEEPSEEK_API_KEY "$ATHENA" "$@" >"$WORK/.out" 2>"$WORK/.err"
    RC=$?
    set -e
    OUT=$(cat "$WORK/.out")
    ERR=$(cat "$WORK/.err")
}
fake_reset
run_athena_nokey scan --providers deepseek --json "$WORK/tree/note6.txt"
expect_match "no key warning" "$ERR" "no provider in the priority list has an API key"
expect_eq "no key provider" "$(file_field note6.txt .provider)" builtin
expect_eq "no key sends nothing" "$(fake_stat .requests_total)" 0

# athena providers masks keys; --check reports each provider.
run_athena providers --providers anthropic,openai
expect_match "providers lists anthropic" "$OUT" "^anthropic +claude-sonnet-4-5 +1 +…e5f6"
expect_match "providers base URL" "$OUT" "127.0.0.1:$FAKE_PORT"
fake_reset
fake_config '{"per_format": {"openai": {"default_fault": "status_401"}}}'
run_athena providers --check --json --providers anthropic,openai
expect_eq "check exit with a failure" "$RC" 1
expect_eq "check anthropic ok" "$(jq -r '.[] | select(.name=="anthropic") | .check.ok' <<<"$OUT")" \
    true
expect_eq "check openai status" \
    "$(jq -r '.[] | select(.name=="openai") | .check.http_status' <<<"$OUT")" 401
expect_match "check openai reason" \
    "$(jq -r '.[] | select(.name=="openai") | .check.message' <<<"$OUT")" "OPENAI_API_KEY"
expect_eq "check sent one request each" "$(fake_stat .requests_total)" 2
expect_no_secret "providers output" "$OUT$ERR"

# Keys appear in no output and no cache file.
fake_reset
fake_config '{"default_fault": "status_401"}'
run_athena scan --providers anthropic,openai --json "$WORK/tree"
expect_no_secret "stdout and stderr" "$OUT$ERR"
expect_no_secret "cache files" "$(cat "$WORK"/cache/* 2>/dev/null | tr -d '\0')"
run_athena flags
expect_no_secret "athena flags" "$OUT$ERR"

finish
