#!/usr/bin/env bash
# Fleet single-flight: two runners with separate cache folders scan the same tree at once
# against one Redis. Each unique file is analysed once in total, counted at the fake AI
# provider (requests per SHA-256) and, for the builtin analyser, in the runners' summaries;
# both runners print every verdict.
source "$(dirname "$0")/providers_lib.sh"
source "$(dirname "$0")/../redis_server.sh"

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "SKIP: needs redis-server and redis-cli" >&2
    exit 77
fi
trap 'redis_stop_all; stop_fake_provider' EXIT
unset REDIS_ENABLED FEATURE_ENABLEREDISCACHE REDIS_HOST REDIS_PORT REDIS_PASSWORD REDIS_DB \
    REDIS_KEY_PREFIX ATHENA_REDIS_URL ATHENA_CACHE_SECRET ATHENA_REDIS_READ_ONLY

redis_start MAIN

UNIQUE=200
mkdir -p "$WORK/tree/copies"
for i in $(seq 1 "$UNIQUE"); do
    printf 'fleet file number %d\n' "$i" >"$WORK/tree/f$i.txt"
done
# Duplicates inside the tree: still one analysis per content.
for i in $(seq 1 40); do
    cp "$WORK/tree/f$i.txt" "$WORK/tree/copies/f$i.txt"
done
FILES=$((UNIQUE + 40))

# run_pair NAME ARGS...: runs two scans at once, runner a and b, each with its own cache
# folder; their NDJSON goes to $WORK/NAME-a.json and $WORK/NAME-b.json.
run_pair() {
    local name=$1
    shift
    ATHENA_CACHE_DIR=$WORK/$name-cache-a "$ATHENA" scan --json --redis "$REDIS_MAIN_URL" "$@" \
        "$WORK/tree" >"$WORK/$name-a.json" 2>"$WORK/$name-a.err" &
    local pid_a=$!
    ATHENA_CACHE_DIR=$WORK/$name-cache-b "$ATHENA" scan --json --redis "$REDIS_MAIN_URL" "$@" \
        "$WORK/tree" >"$WORK/$name-b.json" 2>"$WORK/$name-b.err" &
    local pid_b=$!
    set +e
    wait "$pid_a"
    RC_A=$?
    wait "$pid_b"
    RC_B=$?
    set -e
}

# pair_sum NAME JQ: the sum of a summary field over both runners.
pair_sum() {
    jq -s "map(select(.type==\"summary\") | $2) | add" "$WORK/$1-a.json" "$WORK/$1-b.json"
}

# check_pair NAME: exit codes, and every record with a verdict in both runners' output.
check_pair() {
    local name=$1 runner
    expect_eq "$name: runner a exit" "$RC_A" 0
    expect_eq "$name: runner b exit" "$RC_B" 0
    for runner in a b; do
        expect_eq "$name: runner $runner verdicts" \
            "$(jq -c 'select(.type=="file" and .verdict != null)' "$WORK/$name-$runner.json" |
                wc -l)" "$FILES"
        expect_eq "$name: runner $runner warnings" \
            "$(grep -c warning "$WORK/$name-$runner.err" || true)" 0
    done
    expect_eq "$name: leases released" \
        "$(redis_cli MAIN --scan --pattern "${PREFIX}lease:*" | wc -l)" 0
}

# The builtin analyser: counted by the runners themselves.
PREFIX="builtin:"
run_pair builtin --redis-key-prefix "$PREFIX"
check_pair builtin
expect_eq "builtin: analysed once in total" \
    "$(pair_sum builtin .analysis.redis.leases.analysed)" "$UNIQUE"
expect_eq "builtin: the rest came from the other runner or Redis" \
    "$(pair_sum builtin '.analysis.redis.leases.from_other_runners + .cache.hits')" \
    "$((2 * FILES - UNIQUE))"
expect_eq "builtin: verdicts in Redis" \
    "$(redis_cli MAIN --scan --pattern "${PREFIX}*" | wc -l)" "$UNIQUE"

# An AI provider: counted where it costs, at the provider. A short delay keeps both runners
# asking about the same files at the same time.
PREFIX="ai:"
fake_reset
fake_config '{"delay_ms": 30}'
run_pair ai --redis-key-prefix "$PREFIX" --providers openai
check_pair ai
expect_eq "ai: requests in total" "$(fake_stat '.by_sha256 | map(.) | add')" "$UNIQUE"
expect_eq "ai: digests asked about" "$(fake_stat '.by_sha256 | length')" "$UNIQUE"
expect_eq "ai: no digest asked twice" "$(fake_stat '[.by_sha256[] | select(. > 1)] | length')" 0
expect_eq "ai: every record names the provider" \
    "$(jq -s -c '.[] | select(.type=="file" and .provider != "openai")' \
        "$WORK/ai-a.json" "$WORK/ai-b.json" | wc -l)" 0
for runner in a b; do
    expect_no_secret "ai: runner $runner output" "$(cat "$WORK/ai-$runner.json" \
        "$WORK/ai-$runner.err")"
done

finish
